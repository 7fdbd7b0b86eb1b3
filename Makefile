# Two commands on a fresh machine: `make run` and `make test`. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
HOST ?= 127.0.0.1
WEB_CONCURRENCY ?= 4
# Runs a command with the project-local PostgreSQL and Redis when DATABASE_URL / REDIS_URL are unset.
WITH_SERVICES := $(PY) -m todo_project.devservices --
STAMP := $(VENV)/.installed

export PORT HOST WEB_CONCURRENCY

.PHONY: help install run serve test lint format migrate clean bench

help:
	@echo "make run    - set up, migrate, seed the demo user and serve with DEBUG on (127.0.0.1:$(PORT))"
	@echo "make test   - set up, then the whole test suite with coverage (fails below 90%)"
	@echo "make serve  - the production server: gunicorn, $(WEB_CONCURRENCY) workers, DEBUG off"
	@echo "make lint   - ruff check and ruff format --check"
	@echo "make bench  - the benchmark (see bench/README.md)"

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: install
	DEBUG=1 HTTPS=0 $(WITH_SERVICES) bash -c '\
	  $(PY) manage.py migrate --noinput && \
	  $(PY) manage.py seed_demo --with-admin && \
	  echo && echo "API      http://127.0.0.1:$(PORT)/api/v1/" && \
	  echo "Docs     http://127.0.0.1:$(PORT)/api/docs/" && \
	  echo "Admin    http://127.0.0.1:$(PORT)/admin/" && \
	  echo "API user demo@example.com / demo-password-2026" && \
	  echo "Admin    admin@example.com / admin-password-2026 (local superuser)" && echo && \
	  exec $(PY) manage.py runserver 127.0.0.1:$(PORT)'

# A local stand-in for the production server: DEBUG off, plain HTTP on loopback.
serve: install
	@mkdir -p .data && test -s .data/secret_key || $(PY) -c 'import secrets; print(secrets.token_urlsafe(50))' > .data/secret_key
	DEBUG=0 HTTPS=0 SECRET_KEY=$${SECRET_KEY:-$$(cat .data/secret_key)} $(WITH_SERVICES) bash -c '\
	  $(PY) manage.py migrate --noinput && \
	  exec $(VENV)/bin/gunicorn todo_project.wsgi:application -c gunicorn.conf.py'

test: install
	$(VENV)/bin/pytest --cov --cov-report=term-missing:skip-covered --cov-fail-under=90

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Seeds 1.1M tasks once (skipped later), then about 3 minutes of load; BENCH_ARGS=--help lists options.
bench: install
	@command -v wrk >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y wrk || { $$SUDO apt-get update && $$SUDO apt-get install -y wrk; }; }
	@# A new data directory takes todo_project.devservices' PostgreSQL settings from its second start.
	$(WITH_SERVICES) true
	$(WITH_SERVICES) $(PY) -m bench.run $(BENCH_ARGS)

migrate: install
	$(WITH_SERVICES) $(PY) manage.py migrate --noinput

clean:
	rm -rf $(VENV) .data staticfiles .coverage .pytest_cache .ruff_cache
