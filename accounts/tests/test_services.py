import io
import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from django.core import mail
from django.db import connection
from django.utils.http import urlsafe_base64_decode
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import User
from accounts.services import (
    user_deactivate,
    user_delete,
    user_send_password_reset,
    user_set_password,
)
from accounts.tests.helpers import give_colliding_data
from accounts.tokens import RefreshToken, reset_link_tokens
from tasks.models import Tag, Task, TaskList
from todo_project.tests.helpers import statement_timeout, statistics_of_an_emptied_table

pytestmark = pytest.mark.django_db


def test_password_reset_mail_carries_a_valid_frontend_link(user, settings):
    settings.FRONTEND_URL = "https://app.example.com"
    user_send_password_reset(user=user)
    (message,) = mail.outbox
    assert message.to == [user.email]
    link = next(w for w in message.body.split() if w.startswith("https://app.example.com/"))
    parsed = urlparse(link)
    assert parsed.path == "/reset-password"
    query = parse_qs(parsed.query)
    assert urlsafe_base64_decode(query["uid"][0]).decode() == str(user.pk)
    assert reset_link_tokens.check_token(user, query["token"][0])
    # Support's action, so it says who sent it: not "someone (hopefully you)".
    assert message.body.startswith("Our support team sent you this link")


def test_deactivate_marks_the_user_inactive(user):
    user_deactivate(user=user)
    user.refresh_from_db()
    assert user.is_active is False


def test_deactivate_also_revokes_every_token(user):
    user_deactivate(user=user)
    user.refresh_from_db()
    assert user.token_generation == 1


def test_revocations_from_instances_read_at_once_both_count(user):
    # A password change and a deactivation at the same moment, each with the row as it was
    # before the other: the second used to write the same generation as the first, so tokens
    # issued between them lived on, and its save undid the other's change.
    first, second = User.objects.get(pk=user.pk), User.objects.get(pk=user.pk)

    user_deactivate(user=first)
    user_set_password(user=second, password="a-brand-new-passphrase")

    user.refresh_from_db()
    assert (user.token_generation, user.is_active) == (2, False)


@pytest.mark.django_db(transaction=True)
def test_flushexpiredtokens_drops_expired_tokens_only_however_many(user):
    """65,536 expired, some blacklisted: simplejwt's command deleted through Django's collector,
    an id per parameter of one statement, and failed past 65,535 every day from then on
    (review 29f); accounts' replaces it under the same name."""
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils.timezone import now

    insert_expired = (
        "INSERT INTO token_blacklist_outstandingtoken (user_id, jti, token, created_at,"
        " expires_at) SELECT %s, 'old-' || n, 'x', now() - interval '20 days',"
        " now() - interval '6 days' FROM generate_series(1, 65535) n"
    )
    # From such statistics the planner joined the whole table against each batch, 5,000 ×
    # 65,536 rows, over 20 s a batch (review 36c saw 3 minutes).
    statistics_of_an_emptied_table(
        connection,
        insert_expired,
        [user.pk],
        "token_blacklist_outstandingtoken",
        "token_blacklist_blacklistedtoken",
    )
    live = RefreshToken.for_user(user)
    live.blacklist()
    expired = RefreshToken.for_user(user)
    expired.blacklist()
    OutstandingToken.objects.filter(jti=expired["jti"]).update(expires_at=now() - timedelta(days=1))
    with connection.cursor() as cursor:
        cursor.execute(insert_expired, [user.pk])
    out = io.StringIO()
    with statement_timeout(connection, "10s"):  # a batch takes ~20 ms
        call_command("flushexpiredtokens", verbosity=2, stdout=out)
    assert out.getvalue() == "Deleted 65536 expired refresh token(s).\n"
    assert list(OutstandingToken.objects.values_list("jti", flat=True)) == [live["jti"]]
    assert list(BlacklistedToken.objects.values_list("token__jti", flat=True)) == [live["jti"]]


def test_the_readmes_periodic_jobs_and_both_crontabs_run_every_purge():
    """Django's `clearsessions` was in neither: expired admin sessions (a staff member's id,
    admin messages that can list users' emails) stayed in django_session for good (review 30j).
    The crontabs named flushexpiredtokens only."""
    root = Path(__file__).resolve().parents[2]
    purges = {path.stem for path in (root / "tasks/management/commands").glob("purge_*.py")}
    commands = sorted({*purges, "flushexpiredtokens", "clearsessions"})
    section = (root / "README.md").read_text().split("Periodic jobs (cron or your scheduler)")[1]
    jobs, crontabs = re.findall(r"```sh\n(.*?)```", section.split("\n## ")[0], re.DOTALL)[:2]
    docker = [line for line in crontabs.splitlines() if " docker exec todo " in line]
    host = [line for line in crontabs.splitlines() if "/etc/todo.env" in line]
    for command in commands:
        assert f"python manage.py {command}" in jobs, command
        assert [line for line in docker if f"manage.py {command}" in line], command
        assert [line for line in host if f"manage.py {command}" in line], command
    assert len(docker) == len(host) == len(commands)


def test_deleting_an_account_whose_list_and_inbox_tasks_share_positions(user, other_user):
    # The cascade would first move the list's tasks into the Inbox (Task.list is SET_NULL),
    # onto the Inbox tasks' positions: task_position_unique_in_group refused, a 500 in the API.
    give_colliding_data(user)
    theirs = Task.objects.create(owner=other_user, title="Theirs", position=1024)

    user_delete(user=user)

    assert not User.objects.filter(pk=user.pk).exists()
    assert list(Task.objects.all()) == [theirs]
    assert not TaskList.objects.exists()
    assert not Tag.objects.exists()
    assert not OutstandingToken.objects.exists()
