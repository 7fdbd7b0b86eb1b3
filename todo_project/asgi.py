# The views are synchronous: gunicorn's sync workers serve them faster than an ASGI server
# (README, "Deploy"). This entry point exists for deployments that need ASGI anyway; it has
# no read fast lane (wsgi.py). todo_project/tests/test_asgi.py serves it with uvicorn.
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "todo_project.settings")

application = get_asgi_application()
