# The views are synchronous: gunicorn's sync workers serve them faster than an ASGI server
# (see bench/README.md). This entry point exists for deployments that need ASGI anyway.
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "todo_project.settings")

application = get_asgi_application()
