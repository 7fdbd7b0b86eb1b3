# syntax=docker/dockerfile:1
# Two stages of the same slim image, neither with a compiler: the first installs the requirements
# (from prebuilt wheels) into /opt/venv, the second copies that venv and the code.
# One full version for both stages (the venv copied below runs on the build stage's Python), so a
# rebuild does not silently move to another Python or Debian release. Bump it deliberately.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY requirements.txt constraints.txt ./
# constraints.txt pins the transitive dependencies too: the versions CI tested.
# pip as the Makefile pins it (PIP_VERSION), not whichever the base image bundles.
RUN python -m venv /opt/venv && /opt/venv/bin/pip install pip==26.3 && \
    /opt/venv/bin/pip install -r requirements.txt -c constraints.txt

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    WEB_CONCURRENCY=4
# A home of its own, as /app is not writable.
RUN useradd --system --uid 10001 --create-home --home-dir /home/app --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Owned by root, readable by all: the app user runs the code but cannot rewrite it. Nothing at
# run time writes under /app (static files are collected below, at build time).
COPY . .
# The bytecode, compiled once here: at run time Python could not write it (root owns /app, and
# PYTHONDONTWRITEBYTECODE is set), so every start would compile the app again.
RUN python -m compileall -q .
# The static files (the admin's, Swagger UI's) collected into /app/staticfiles, each with a
# gzip copy that whitenoise serves to clients that accept it (settings.py, STORAGES). With
# DEBUG off the settings refuse to start without the variables production requires: throwaway
# values for this step only (collectstatic connects to nothing). Never put a real secret here,
# it would stay in the image; the real ones come from the environment at run time.
RUN SECRET_KEY=collectstatic-at-build-time-only-never-used-to-sign-anything-0123456789 \
    DATABASE_URL=postgres://build@127.0.0.1:1/none \
    REDIS_URL=redis://127.0.0.1:1/0 ALLOWED_HOSTS=build.invalid FRONTEND_URL=https://build.invalid \
    python manage.py collectstatic --noinput
USER app
EXPOSE 8000
# Needs DATABASE_URL, REDIS_URL, SECRET_KEY, ALLOWED_HOSTS and FRONTEND_URL; see .env.example.
# The start period covers `migrate`, which runs before gunicorn listens: a long migration
# (tasks.0004 rewrites the tasks table, 2-3 minutes per million tasks) must not mark the
# container unhealthy. Longer ones: run migrate once first, as a release step (README.md).
HEALTHCHECK --interval=30s --timeout=3s --start-period=5m --retries=3 \
  CMD ["python", "-m", "todo_project.healthcheck"]
# sh is PID 1 until gunicorn replaces it, and PID 1 ignores a signal it does not handle: the
# trap passes `docker stop` on to migrate (else 10 s, then SIGKILL), and migrate's PostgreSQL
# session (14+) ends within a second of it, its locks and the migrate lock let go. An empty HOST, PORT or
# WEB_CONCURRENCY (`HOST=` in an env file) is the image's value above, as every empty variable
# is its default: the code's HOST default is loopback (unreachable from outside the container),
# and gunicorn itself reads WEB_CONCURRENCY with int() before its config file runs ("" crashed).
CMD ["sh", "-c", "export HOST=${HOST:-0.0.0.0} PORT=${PORT:-8000} WEB_CONCURRENCY=${WEB_CONCURRENCY:-4}; trap 'kill $m; wait $m; exit 143' TERM INT; python manage.py migrate --noinput & m=$!; wait $m || exit $?; trap - TERM INT; exec gunicorn todo_project.wsgi:application -c gunicorn.conf.py"]
