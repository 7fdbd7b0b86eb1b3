import pytest
from django.db import DatabaseError, IntegrityError
from psycopg import errors

from todo_project import retry


def failing(sqlstate: str, times: int, error_class=DatabaseError):
    calls = []

    def handler(*args, **kwargs):
        calls.append((args, kwargs))
        if len(calls) <= times:
            error = error_class("clash")
            error.__cause__ = errors.lookup(sqlstate)()  # as Django wraps psycopg's
            raise error
        return "answer"

    return handler, calls


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(retry.time, "sleep", lambda seconds: None)


@pytest.mark.parametrize("sqlstate", ["40P01", "40001", "55P03", "23503"])
def test_a_write_ended_by_a_concurrent_change_runs_again_with_its_arguments(sqlstate):
    handler, calls = failing(sqlstate, times=retry.RETRIES)
    assert retry.run_again_on_concurrent_change(handler)("request", pk=1) == "answer"
    assert calls == [(("request",), {"pk": 1})] * (retry.RETRIES + 1)


def test_it_gives_up_after_the_retries_and_raises_the_last_error():
    handler, calls = failing("40P01", times=retry.RETRIES + 1)
    with pytest.raises(DatabaseError):
        retry.run_again_on_concurrent_change(handler)()
    assert len(calls) == retry.RETRIES + 1


def test_any_other_database_error_is_raised_at_once():
    handler, calls = failing("23505", times=1, error_class=IntegrityError)  # unique violation
    with pytest.raises(IntegrityError):
        retry.run_again_on_concurrent_change(handler)()
    assert len(calls) == 1


@pytest.mark.django_db  # the test's transaction: a write inside one cannot be run again
def test_inside_a_transaction_begun_before_the_handler_it_is_raised_at_once():
    handler, calls = failing("40P01", times=1)
    with pytest.raises(DatabaseError):
        retry.run_again_on_concurrent_change(handler)()
    assert len(calls) == 1


def test_a_write_that_gave_way_runs_again_when_its_wait_is_ended_by_a_deadlock():
    """Review 38c. The wait of a write that gave way holds nothing, but may queue for a row in
    a cycle of other transactions, and be the one PostgreSQL ends: its 40P01 went out of the
    handler as the request's 503, on its first attempt."""
    calls = []

    def wait():
        error = DatabaseError("clash")
        error.__cause__ = errors.lookup("40P01")()
        raise error

    def handler():
        calls.append(1)
        if len(calls) == 1:
            error = DatabaseError("held")
            error.__cause__ = errors.lookup("55P03")()
            error.wait_before_running_again = wait
            raise error
        return "answer"

    assert retry.run_again_on_concurrent_change(handler)() == "answer"
    assert len(calls) == 2
