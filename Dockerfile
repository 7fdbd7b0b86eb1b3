# syntax=docker/dockerfile:1
# Multi-stage: wheels are built in the first stage, the runtime image has no compiler.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY requirements.txt .
RUN python -m venv /opt/venv && /opt/venv/bin/pip install -r requirements.txt

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    WEB_CONCURRENCY=4
# A home of its own: gunicorn keeps its control socket under $HOME, and /app is not writable.
RUN useradd --system --uid 10001 --create-home --home-dir /home/app --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=app:app . .
USER app
EXPOSE 8000
# Needs DATABASE_URL, REDIS_URL and SECRET_KEY; see .env.example for the rest.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-m", "todo_project.healthcheck"]
# sh is PID 1 until gunicorn replaces it, and PID 1 ignores a signal it does not handle: the
# trap passes `docker stop` on to migrate (else 10 s, then SIGKILL).
CMD ["sh", "-c", "trap 'kill $m; wait $m; exit 143' TERM INT; python manage.py migrate --noinput & m=$!; wait $m || exit $?; trap - TERM INT; exec gunicorn todo_project.wsgi:application -c gunicorn.conf.py"]
