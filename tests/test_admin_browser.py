"""A support agent's day in a real browser: Debian's Chromium, headless, driven by Playwright.

Sign in, find a user by email, open their tasks, complete one, deactivate the user; and no
delete button or staff / superuser field anywhere on the way. A failure leaves a screenshot in
test-artifacts/. Without Chromium the test is skipped, except in CI (CI=true), where it fails.
"""

import importlib
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import call_command

from accounts.models import User
from tasks import services
from tasks.models import Priority, Task
from tests.missing import tool_missing

CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"  # empty: unset, as everywhere
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TIMEOUT_MS = 10_000

pytestmark = pytest.mark.browser


@pytest.fixture
def chromium() -> str:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        tool_missing(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
def support_password(transactional_db) -> str:
    """A support user made as an operator would: `manage.py create_support_user`."""
    # A transactional test's flush removes the migration's Support group: put it back the same
    # way the migration does.
    migration = importlib.import_module("accounts.migrations.0003_support_group")
    migration.create_support_group(apps, None)
    out = StringIO()
    call_command("create_support_user", "support@example.com", stdout=out, stderr=StringIO())
    return out.getvalue().strip()


@pytest.fixture
def customer(transactional_db) -> User:
    alice = User.objects.create_user(email="alice@example.com", password="x" * 12)
    services.task_create(user=alice, data={"title": "Pay rent"})
    services.task_create(user=alice, data={"title": "Buy milk"})
    return alice


@contextmanager
def browser_page(chromium: str, name: str) -> Iterator:
    """A fresh page; if the block fails, a full-page screenshot goes to test-artifacts/."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        try:
            yield page
        except BaseException:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
            raise
        finally:
            browser.close()


def policy_violations(page) -> list[str]:
    """What the page's Content-Security-Policy refuses from now on, as Chromium logs it, but
    Redoc's logo from cdn.redoc.ly, refused by design (templates/redoc.html) whenever Redoc
    gets to it."""

    def seen(message) -> None:
        text = message.text
        if "Content Security Policy" in text and "https://cdn.redoc.ly/" not in text:
            refused.append(text)

    refused: list[str] = []
    page.on("console", seen)
    return refused


def run_action(page, name: str, row_text: str) -> None:
    row = page.locator("#result_list tbody tr", has_text=row_text)
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", name)
    page.click("button[name=index]")


def test_a_support_agent_finds_a_user_completes_a_task_and_deactivates_them(
    live_server, chromium, support_password, customer, request
):
    with browser_page(chromium, request.node.name) as page:
        refused = policy_violations(page)
        support_agents_day(page, live_server.url, support_password)
    assert refused == []  # the admin runs whole under the pages' CSP

    # What the browser saw is what the database holds (read once the browser is closed: the
    # ORM refuses to run inside Playwright's event loop).
    customer.refresh_from_db()
    assert not customer.is_active
    assert [(t.title, t.completed) for t in Task.objects.order_by("title")] == [
        ("Buy milk", False),
        ("Pay rent", True),
    ]


def support_agents_day(page, url: str, password: str) -> None:
    from playwright.sync_api import expect

    # Sign in.
    page.goto(f"{url}/admin/")
    page.fill("#id_username", "support@example.com")
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_have_text("Todo support")

    # Find the user by email, open their page: the email read-only, no access fields, no delete.
    page.goto(f"{url}/admin/accounts/user/")
    page.fill("#searchbar", "alice@example.com")
    page.press("#searchbar", "Enter")
    page.click("#result_list a:text-is('alice@example.com')")
    expect(page.locator(".field-email .readonly")).to_have_text("alice@example.com")
    expect(page.locator("[name=email]")).to_have_count(0)
    for field in ("is_staff", "is_superuser", "groups", "user_permissions"):
        expect(page.locator(f"[name={field}]")).to_have_count(0)
    expect(page.locator("a.deletelink, .deletelink-box")).to_have_count(0)

    # Their tasks, one completed through the action.
    page.click("a:text-is('2 tasks, 2 open')")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    actions = page.locator("select[name=action] option").all_inner_texts()
    assert not any("Delete" in text for text in actions)
    run_action(page, "complete", "Pay rent")
    expect(page.locator(".messagelist")).to_contain_text("Completed 1 task(s).")
    pay_rent = page.locator("#result_list tbody tr", has_text="Pay rent")
    expect(pay_rent.locator("td.field-completed img")).to_have_attribute("alt", "True")

    # A task page: read-only state, no delete.
    page.click("#result_list a:text-is('Pay rent')")
    expect(page.locator("[name=version]")).to_have_count(0)
    expect(page.locator(".field-version .readonly")).to_have_text("2")
    expect(page.locator("a.deletelink")).to_have_count(0)

    # Lock the account.
    page.goto(f"{url}/admin/accounts/user/?q=alice%40example.com")
    run_action(page, "deactivate", "alice@example.com")
    expect(page.locator("#content")).to_contain_text("alice@example.com")  # asked first
    page.click("input[type=submit][value^='Yes']")
    expect(page.locator(".messagelist")).to_contain_text("Deactivated 1 user(s).")
    alice = page.locator("#result_list tbody tr", has_text="alice@example.com")
    expect(alice.locator("td.field-is_active img")).to_have_attribute("alt", "False")
    expect(page.locator("body")).not_to_contain_text(re.compile("Delete selected"))


def test_the_api_docs_render_under_the_pages_policy(live_server, chromium, request):
    from playwright.sync_api import expect

    with browser_page(chromium, request.node.name) as page:
        refused = policy_violations(page)
        page.goto(f"{live_server.url}/api/docs/")
        expect(page.locator(".opblock-summary-path", has_text="/api/v1/tasks/bulk/")).to_have_count(
            1
        )
        page.goto(f"{live_server.url}/api/redoc/")
        expect(page.locator("h2", has_text="Sign out")).to_have_count(1)
    assert refused == []


def test_a_stored_title_with_a_line_break_survives_a_save_in_a_real_browser(
    live_server, chromium, support_password, customer, request
):
    # Chromium drops a line break from a one-line box: the title shows in a textarea instead
    # (tasks.admin.StoredLineBreaksKept), whose CRLF is the stored LF, not "Payrent".
    from playwright.sync_api import expect

    task = Task.objects.get(title="Pay rent")
    Task.objects.filter(pk=task.pk).update(title="Pay\nrent")  # stored before the rule
    with browser_page(chromium, request.node.name) as page:
        page.goto(f"{live_server.url}/admin/")
        page.fill("#id_username", "support@example.com")
        page.fill("#id_password", support_password)
        page.click("input[type=submit]")
        page.goto(f"{live_server.url}/admin/tasks/task/{task.pk}/change/")
        assert page.input_value("#id_title") == "Pay\nrent"  # shown, and sent, with its break
        page.select_option("#id_priority", "high")
        page.click("input[name=_save]")
        expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    task.refresh_from_db()
    assert (task.title, task.priority) == ("Pay\nrent", Priority.HIGH)
