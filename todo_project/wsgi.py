import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "todo_project.settings")

django_application = get_wsgi_application()

# After django.setup(): the lane imports models.
from todo_project.fast_lane import FastLane

# The API's plainest reads are answered in front of Django's handler (todo_project/fast_lane.py).
application = FastLane(django_application)
