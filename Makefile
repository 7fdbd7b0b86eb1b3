# Two commands on a fresh machine: `make run` and `make test`. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
# The embedded PostgreSQL and Redis have wheels for these only: with another, pip failed with
# "ResolutionImpossible" and not a word about Python.
PYTHON_VERSIONS := 3.11 3.12
python_version = $$($(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
VENV := .venv
PY := $(VENV)/bin/python
# An empty value is unset, as for every variable (README.md): `?=` would keep it empty, and
# `override` applies it to one given on make's command line (`make serve PORT=`) too.
override PORT := $(or $(PORT),8000)
override HOST := $(or $(HOST),127.0.0.1)
override WEB_CONCURRENCY := $(or $(WEB_CONCURRENCY),4)
# Runs a command with the project-local PostgreSQL and Redis when DATABASE_URL / REDIS_URL are unset.
WITH_SERVICES := $(PY) -m todo_project.devservices --
STAMP := $(VENV)/.installed
# pip itself, pinned as constraints.txt pins the rest (pip freeze leaves pip out of it).
PIP_VERSION := 26.3
# With DEBUG off the settings need a SECRET_KEY: when the environment has none, serve, migrate
# and manage use one kept here, created on first use readable by its owner only (umask 077):
# in the project-local data directory, TODO_DATA_DIR's when set (as the database's).
KEY_FILE := $(or $(TODO_DATA_DIR),.data)/secret_key
ENSURE_KEY := mkdir -p $(dir $(KEY_FILE)) && { test -s $(KEY_FILE) || ( umask 077 && \
  $(PY) -c 'import secrets; print(secrets.token_urlsafe(50))' > $(KEY_FILE) ); } && \
  chmod 600 $(KEY_FILE)
WITH_KEY := SECRET_KEY=$${SECRET_KEY:-$$(cat $(KEY_FILE))}
# Where `make run` serves the admin: the settings read ADMIN_URL from the environment too.
ADMIN_PATH := $(patsubst %//,%/,/$(patsubst /%,%,$(or $(ADMIN_URL),admin/))/)
# make run's line with the demo superuser's credentials, only when they work: seed_demo does not
# create it on a database other than the project-local one (DATABASE_URL set).
SHOW_DEMO_ADMIN := from accounts.models import User; \
  from tasks.management.commands.seed_demo import DEMO_ADMIN_EMAIL as E, DEMO_ADMIN_PASSWORD as P; \
  u = User.objects.filter(email=E, is_superuser=True, is_active=True).first(); \
  print(f\"Admin    {E} / {P} (local superuser)\" if u and u.check_password(P) else \
  \"Admin    no demo superuser on this database (manage.py createsuperuser makes one)\")

export PORT HOST WEB_CONCURRENCY

.PHONY: help install run serve test lint format migrate manage clean bench

help:
	@echo "make run     - set up, migrate, seed the demo user and serve with DEBUG on (127.0.0.1:$(PORT))"
	@echo "make test    - set up, then the whole test suite with coverage (fails below 90%)"
	@echo "make serve   - the production server: gunicorn, $(WEB_CONCURRENCY) workers, DEBUG off"
	@echo "make install - create .venv and install the requirements (the other targets do it too)"
	@echo "make migrate - apply migrations to DATABASE_URL, or the project-local database"
	@echo "make manage ARGS=\"...\" - a manage.py command, as make migrate runs it"
	@echo "make lint    - ruff check and ruff format --check"
	@echo "make format  - fix what ruff can"
	@echo "make bench   - the benchmark (see bench/README.md)"
	@echo "make clean   - remove .venv, .data (the local database; a TODO_DATA_DIR elsewhere stays), caches and bench outputs"

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	@v=$(call python_version,$(PYTHON)); case " $(PYTHON_VERSIONS) " in *" $$v "*) ;; *) \
	  echo "Python 3.11 or 3.12 is needed; $(or $(PYTHON),python3) is $${v:-not found}:" \
	    "install python3.11, or give its path: make PYTHON=/path/to/python3.11" >&2; exit 1;; esac
	@v=$(call python_version,$(PY)); test ! -e $(VENV) || case " $(PYTHON_VERSIONS) " in \
	  *" $$v "*) ;; *) echo "$(VENV) has Python $${v:-that does not run}: making it again"; rm -rf $(VENV);; esac
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet pip==$(PIP_VERSION)
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

install: $(STAMP)

run: install
	DEBUG=1 HTTPS=0 $(WITH_SERVICES) bash -c '\
	  $(PY) manage.py migrate --noinput && \
	  $(PY) manage.py seed_demo --with-admin && \
	  echo && echo "Docs     http://127.0.0.1:$(PORT)/api/docs/" && \
	  echo "API      http://127.0.0.1:$(PORT)/api/v1/tasks/ (Bearer token from POST /api/v1/auth/token/)" && \
	  echo "Admin    http://127.0.0.1:$(PORT)$(ADMIN_PATH)" && \
	  echo "API user demo@example.com / demo-password-2026" && \
	  $(PY) manage.py shell --no-imports -c "$(SHOW_DEMO_ADMIN)" && echo && \
	  exec $(PY) manage.py runserver 127.0.0.1:$(PORT)'

# A local stand-in for the production server: DEBUG off, plain HTTP on loopback.
serve: install
	@$(ENSURE_KEY)
	DEBUG=0 HTTPS=0 $(WITH_KEY) $(WITH_SERVICES) bash -c '\
	  $(PY) manage.py migrate --noinput && \
	  exec $(VENV)/bin/gunicorn todo_project.wsgi:application -c gunicorn.conf.py'

# One pytest worker per core, four at most (each migrates a test database of its own).
# Then the API's statements again with client-side binding, as behind PgBouncer before 1.21
# (DB_PREPARED_STATEMENTS=0, README): raw SQL that only worked prepared would fail there alone.
CLIENT_BINDING_TESTS := tasks/tests/test_tasks_api.py tasks/tests/test_bulk.py \
	tasks/tests/test_move.py tasks/tests/test_completion.py tasks/tests/test_lists_api.py \
	tasks/tests/test_tags_api.py tasks/tests/test_sync.py tasks/tests/test_fast_read.py \
	accounts/tests/test_views.py todo_project/tests/test_idempotency.py \
	todo_project/tests/test_purges.py todo_project/tests/test_postgresql_backend.py

# With PYTHONDONTWRITEBYTECODE set (as on the machines here), each pytest process rewrote and
# compiled every test module anew: its collection took 9.0 s against 3.4 s reading them cached.
test: install
	PYTHONDONTWRITEBYTECODE= $(VENV)/bin/pytest -n auto --maxprocesses=4 --cov \
	  --cov-report=term-missing:skip-covered --cov-fail-under=90
	PYTHONDONTWRITEBYTECODE= DB_PREPARED_STATEMENTS=0 $(VENV)/bin/pytest -n auto --maxprocesses=4 -q \
	  $(CLIENT_BINDING_TESTS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Seeds 1.1M tasks once (skipped later), then about 4 minutes of load; BENCH_ARGS=--help lists options.
bench: install
	@command -v wrk >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y wrk || { $$SUDO apt-get update && $$SUDO apt-get install -y wrk; }; }
	@# A new data directory takes todo_project.devservices' PostgreSQL settings from its second start.
	$(WITH_SERVICES) true
	$(WITH_SERVICES) $(PY) -m bench.run $(BENCH_ARGS)

migrate: install
	@$(ENSURE_KEY)
	$(WITH_KEY) $(WITH_SERVICES) $(PY) manage.py migrate --noinput

# Any manage.py command, e.g. make manage ARGS="create_support_user agent@example.com". DEBUG
# stays as the environment has it (off by default), so DEBUG-only commands need DEBUG=1.
manage: install
	@$(ENSURE_KEY)
	@$(WITH_KEY) $(WITH_SERVICES) $(PY) manage.py $(ARGS)

# Generated local state only; the reports kept in git (bench/results/*.md) stay, and so does a
# TODO_DATA_DIR outside the checkout (a directory a variable names is not ours to delete).
clean:
	rm -rf $(VENV) .data staticfiles htmlcov test-artifacts .coverage .pytest_cache .ruff_cache \
	  .hypothesis .schemathesis bench/results/data.lua bench/results/*.log bench/results/*.raw
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
