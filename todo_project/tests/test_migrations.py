"""The migrations describe the models exactly: a model change without its migration fails here,
not on a deploy (`makemigrations --check` exits non-zero when it would write one)."""

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_the_models_need_no_new_migration(capsys):
    try:
        call_command("makemigrations", "--check", "--dry-run")
    except SystemExit:
        pytest.fail(f"makemigrations would write a migration:\n{capsys.readouterr().out}")
