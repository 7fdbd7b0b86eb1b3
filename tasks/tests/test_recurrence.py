import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from django.core.exceptions import ValidationError
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.models import Task
from tasks.recurrence import (
    next_due_date,
    past_times_of_day,
    repeats,
    same_series,
    today_in,
    validate_rule,
)


def next_after(rule, series_start, current_due=None, today=None, due_time=None, tz_name="UTC"):
    return next_due_date(
        rule=rule,
        series_start=series_start,
        current_due=current_due or series_start,
        today=today or series_start,
        due_time=due_time,
        tz_name=tz_name,
    )


# validate_rule


@pytest.mark.parametrize(
    ("value", "normalized"),
    [
        ("FREQ=DAILY", "FREQ=DAILY"),
        ("rrule:freq=weekly;byday=mo,we", "FREQ=WEEKLY;BYDAY=MO,WE"),
        ("  RRULE:FREQ=MONTHLY;BYMONTHDAY=31  ", "FREQ=MONTHLY;BYMONTHDAY=31"),
        ("FREQ=MONTHLY;BYDAY=1MO,-1FR", "FREQ=MONTHLY;BYDAY=1MO,-1FR"),
        ("FREQ=MONTHLY;BYMONTHDAY=-1;INTERVAL=3", "FREQ=MONTHLY;BYMONTHDAY=-1;INTERVAL=3"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29"),
        ("FREQ=YEARLY;BYDAY=53MO", "FREQ=YEARLY;BYDAY=53MO"),
        ("FREQ=YEARLY;BYMONTH=11;BYDAY=4TH", "FREQ=YEARLY;BYMONTH=11;BYDAY=4TH"),
        ("FREQ=WEEKLY;INTERVAL=1000;COUNT=1000", "FREQ=WEEKLY;INTERVAL=1000;COUNT=1000"),
        ("FREQ=DAILY;UNTIL=20300101", "FREQ=DAILY;UNTIL=20300101"),
        ("FREQ=DAILY;UNTIL=20300101T120000Z", "FREQ=DAILY;UNTIL=20300101T120000Z"),
        ("FREQ=DAILY;BYMONTH=1,7;BYDAY=SA,SU", "FREQ=DAILY;BYMONTH=1,7;BYDAY=SA,SU"),
    ],
)
def test_validate_rule_accepts_the_contract_subset_and_normalizes_it(value, normalized):
    assert validate_rule(value) == normalized
    # What it returns is itself valid and stable, so it can be stored and re-read.
    assert validate_rule(normalized) == normalized


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "it is empty"),
        ("RRULE:", "it is empty"),
        ("INTERVAL=2", "FREQ is required"),
        ("FREQ=HOURLY", "FREQ must be one of DAILY, WEEKLY, MONTHLY, YEARLY"),
        ("FREQ=daily;FREQ=WEEKLY", "FREQ is given more than once"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL must be a whole number from 1 to 1000"),
        ("FREQ=DAILY;INTERVAL=1001", "INTERVAL must be a whole number from 1 to 1000"),
        ("FREQ=DAILY;INTERVAL=-1", "INTERVAL must be a whole number from 1 to 1000"),
        ("FREQ=DAILY;INTERVAL=two", "INTERVAL must be a whole number from 1 to 1000"),
        ("FREQ=DAILY;COUNT=0", "COUNT must be a whole number from 1 to 1000"),
        ("FREQ=DAILY;COUNT=1001", "COUNT must be a whole number from 1 to 1000"),
        ("FREQ=DAILY;COUNT=3;UNTIL=20300101", "COUNT and UNTIL cannot be used together"),
        ("FREQ=DAILY;UNTIL=20250230", "UNTIL must be a date (YYYYMMDD)"),
        ("FREQ=DAILY;UNTIL=2025-01-01", "UNTIL must be a date (YYYYMMDD)"),
        ("FREQ=DAILY;UNTIL=20250101T120000", "UNTIL must be a date (YYYYMMDD)"),
        ("FREQ=DAILY;UNTIL=20250101T250000Z", "UNTIL must be a date (YYYYMMDD)"),
        ("FREQ=DAILY;WKST=MO", "unknown part 'WKST'"),
        ("FREQ=DAILY;BYHOUR=9", "unknown part 'BYHOUR'"),
        ("FREQ=DAILY;BYSETPOS=1", "unknown part 'BYSETPOS'"),
        ("DTSTART:20250101T000000\nRRULE:FREQ=DAILY", "DTSTART is not allowed"),
        ("FREQ=DAILY;DTSTART=20250101", "DTSTART is not allowed"),
        ("FREQ=DAILY;", "'' is not a KEY=VALUE part"),
        ("FREQ=DAILY;;COUNT=2", "'' is not a KEY=VALUE part"),
        ("FREQ=", "'FREQ=' is not a KEY=VALUE part"),
        ("=DAILY", "'=DAILY' is not a KEY=VALUE part"),
        ("FREQ=DAILY=WEEKLY", "is not a KEY=VALUE part"),
        ("FREQ = DAILY", "unknown part 'FREQ '"),
        ("garbage", "'GARBAGE' is not a KEY=VALUE part"),
        ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY value 0 is out of range"),
        ("FREQ=MONTHLY;BYMONTHDAY=32", "BYMONTHDAY value 32 is out of range"),
        ("FREQ=MONTHLY;BYMONTHDAY=-32", "BYMONTHDAY value -32 is out of range"),
        ("FREQ=MONTHLY;BYMONTHDAY=1,,2", "BYMONTHDAY must be a comma-separated list"),
        ("FREQ=YEARLY;BYMONTH=13", "BYMONTH value 13 is out of range"),
        ("FREQ=YEARLY;BYMONTH=0", "BYMONTH value 0 is out of range"),
        ("FREQ=YEARLY;BYMONTH=-1", "BYMONTH must be a comma-separated list"),
        ("FREQ=WEEKLY;BYDAY=XX", "BYDAY item 'XX' is not a weekday"),
        ("FREQ=WEEKLY;BYDAY=MO(+1)", "BYDAY item 'MO(+1)' is not a weekday"),
        ("FREQ=WEEKLY;BYDAY=", "'BYDAY=' is not a KEY=VALUE part"),
        ("FREQ=WEEKLY;BYDAY=1MO", "a numbered weekday needs MONTHLY or YEARLY"),
        ("FREQ=DAILY;BYDAY=-1FR", "a numbered weekday needs MONTHLY or YEARLY"),
        ("FREQ=MONTHLY;BYDAY=6MO", "the number is out of range for MONTHLY"),
        ("FREQ=MONTHLY;BYDAY=0MO", "the number is out of range for MONTHLY"),
        ("FREQ=YEARLY;BYDAY=54MO", "the number is out of range for YEARLY"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "it never produces a date"),
        ("FREQ=DAILY;BYMONTH=4,6;BYMONTHDAY=31", "it never produces a date"),
        ("FREQ=MONTHLY;BYDAY=1MO;BYMONTHDAY=15", "it never produces a date"),
        ("FREQ=DAILY;" + "BYMONTHDAY=1;" * 60 + "COUNT=1", "at most 500 characters"),
    ],
)
def test_validate_rule_rejects_with_a_message_naming_the_problem(value, message):
    with pytest.raises(ValidationError) as raised:
        validate_rule(value)
    assert raised.value.code == "invalid_recurrence"
    assert raised.value.messages[0].startswith("Invalid recurrence rule: ")
    assert message in raised.value.messages[0]


@pytest.mark.parametrize("value", [None, 5, b"FREQ=DAILY", ["FREQ=DAILY"]])
def test_validate_rule_rejects_what_is_not_a_string(value):
    with pytest.raises(ValidationError, match="it must be a string"):
        validate_rule(value)


_TOKENS = st.sampled_from(
    [
        "FREQ=", "DAILY", "WEEKLY", "MONTHLY", "YEARLY", "HOURLY", ";", "=", ",", ":", "RRULE:",
        "INTERVAL=", "COUNT=", "UNTIL=", "BYDAY=", "BYMONTH=", "BYMONTHDAY=", "DTSTART=",
        "MO", "FR", "1", "-1", "+5", "0", "31", "53", "1000", "99999", "20250229", "T120000Z",
        "(", ")", " ", "\n", "\x00", "é",
    ]
)  # fmt: skip


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.one_of(st.text(max_size=60), st.lists(_TOKENS, max_size=14).map("".join)))
def test_validate_rule_never_raises_anything_but_validation_error(value):
    try:
        normalized = validate_rule(value)
    except ValidationError:
        return
    # Whatever passes is something dateutil can evaluate from any start date.
    assert validate_rule(normalized) == normalized
    start = date(2024, 2, 29)
    result = next_after(normalized, start, today=date(2025, 1, 1))
    assert result is None or result > date(2025, 1, 1)


# next_due_date


def test_daily_next_is_the_next_day():
    assert next_after("FREQ=DAILY", date(2025, 3, 1)) == date(2025, 3, 2)


def test_overdue_daily_task_continues_from_today_not_from_its_old_due_date():
    today = date(2025, 3, 15)
    due = today - timedelta(days=7)
    assert next_after("FREQ=DAILY", due, current_due=due, today=today) == date(2025, 3, 16)


def test_task_due_in_the_future_continues_from_its_due_date():
    start = date(2025, 3, 20)
    assert next_after("FREQ=DAILY", start, today=date(2025, 3, 15)) == date(2025, 3, 21)


def test_weekly_with_byday_and_interval_two_skips_every_other_week():
    rule = "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH"
    start = date(2025, 3, 3)  # a Monday
    assert next_after(rule, start) == date(2025, 3, 6)
    assert next_after(rule, start, current_due=date(2025, 3, 6)) == date(2025, 3, 17)
    assert next_after(rule, start, current_due=date(2025, 3, 17)) == date(2025, 3, 20)


def test_weekly_without_byday_repeats_on_the_start_weekday():
    assert next_after("FREQ=WEEKLY", date(2025, 3, 5)) == date(2025, 3, 12)


def test_monthly_without_bymonthday_repeats_on_the_start_day_of_month():
    start = date(2025, 1, 15)
    assert next_after("FREQ=MONTHLY", start, today=date(2025, 4, 20)) == date(2025, 5, 15)


def test_monthly_from_the_31st_skips_months_without_one():
    start = date(2025, 1, 31)
    assert next_after("FREQ=MONTHLY", start) == date(2025, 3, 31)


def test_bymonthday_31_skips_months_without_a_31st():
    rule = "FREQ=MONTHLY;BYMONTHDAY=31"
    start = date(2025, 3, 31)
    assert next_after(rule, start) == date(2025, 5, 31)
    assert next_after(rule, start, current_due=date(2025, 5, 31)) == date(2025, 7, 31)
    assert next_after(rule, start, current_due=date(2025, 7, 31)) == date(2025, 8, 31)


def test_bymonthday_minus_one_is_the_last_day_of_each_month():
    rule = "FREQ=MONTHLY;BYMONTHDAY=-1"
    assert next_after(rule, date(2024, 1, 31)) == date(2024, 2, 29)
    assert next_after(rule, date(2025, 1, 31)) == date(2025, 2, 28)


def test_monthly_numbered_weekdays():
    rule = "FREQ=MONTHLY;BYDAY=-1FR"
    assert next_after(rule, date(2025, 1, 31)) == date(2025, 2, 28)
    assert next_after("FREQ=MONTHLY;BYDAY=1MO", date(2025, 3, 3)) == date(2025, 4, 7)


def test_yearly_on_29_february_comes_back_in_the_next_leap_year():
    start = date(2024, 2, 29)
    assert next_after("FREQ=YEARLY", start) == date(2028, 2, 29)
    # 2100 is not a leap year.
    late = date(2096, 2, 29)
    assert next_after("FREQ=YEARLY", start, current_due=late) == date(2104, 2, 29)


def test_yearly_with_bymonth_and_numbered_weekday():
    rule = "FREQ=YEARLY;BYMONTH=11;BYDAY=4TH"  # Thanksgiving
    assert next_after(rule, date(2025, 11, 27)) == date(2026, 11, 26)


def test_count_counts_the_series_from_its_first_task_even_from_a_later_occurrence():
    rule = "FREQ=WEEKLY;INTERVAL=2;COUNT=3"
    start = date(2025, 3, 3)
    assert next_after(rule, start) == date(2025, 3, 17)
    assert next_after(rule, start, current_due=date(2025, 3, 17)) == date(2025, 3, 31)
    assert next_after(rule, start, current_due=date(2025, 3, 31)) is None


def test_count_is_spent_when_today_is_past_the_last_occurrence():
    rule = "FREQ=DAILY;COUNT=3"
    start = date(2025, 3, 1)
    assert next_after(rule, start, today=date(2025, 3, 2)) == date(2025, 3, 3)
    assert next_after(rule, start, today=date(2025, 3, 3)) is None


def test_count_counts_a_first_task_that_is_off_the_rule_as_occurrence_one():
    rule = "FREQ=WEEKLY;BYDAY=MO;COUNT=2"
    start = date(2025, 3, 5)  # a Wednesday
    assert next_after(rule, start) == date(2025, 3, 10)
    assert next_after(rule, start, current_due=date(2025, 3, 10)) is None


def test_until_is_inclusive_and_then_spent():
    rule = "FREQ=DAILY;UNTIL=20250303"
    start = date(2025, 3, 1)
    assert next_after(rule, start, current_due=date(2025, 3, 2)) == date(2025, 3, 3)
    assert next_after(rule, start, current_due=date(2025, 3, 3)) is None


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("FREQ=DAILY", date(2025, 3, 10)),
        ("FREQ=DAILY;UNTIL=20250310", date(2025, 3, 10)),
        ("FREQ=DAILY;UNTIL=20250305", None),
        ("FREQ=DAILY;UNTIL=20250305T120000Z", None),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30;UNTIL=20250305", None),  # never occurs
    ],
)
def test_a_series_start_still_ahead_is_the_next_date_only_within_until(rule, expected):
    # A copy's due date moved before its series' start: the start itself is next, unless UNTIL
    # ended the series before it (that case used to return the start regardless).
    early = date(2025, 3, 1)
    assert next_after(rule, date(2025, 3, 10), current_due=early, today=early) == expected


def test_until_as_a_date_is_the_last_date_whatever_the_time_and_time_zone():
    rule = "FREQ=DAILY;UNTIL=20250303"
    start = date(2025, 3, 1)
    for due_time, tz_name in [(None, "UTC"), (time(23, 59), "Pacific/Kiritimati")]:
        on_the_day = next_after(rule, start, date(2025, 3, 2), due_time=due_time, tz_name=tz_name)
        assert on_the_day == date(2025, 3, 3)
        assert next_after(rule, start, date(2025, 3, 3), due_time=due_time, tz_name=tz_name) is None


def test_utc_until_ends_an_all_day_series_on_its_date_in_utc_for_a_utc_user():
    rule = "FREQ=DAILY;UNTIL=20250303T060000Z"
    start = date(2025, 3, 1)
    assert next_after(rule, start, current_due=date(2025, 3, 2)) == date(2025, 3, 3)
    assert next_after(rule, start, current_due=date(2025, 3, 3)) is None


@pytest.mark.parametrize(
    ("until", "tz_name", "last"),
    [
        # 03:00 UTC on 12 March is still 11 March in Los Angeles, and already 12 March in Tokyo.
        ("20250312T030000Z", "America/Los_Angeles", date(2025, 3, 11)),
        ("20250312T030000Z", "Asia/Tokyo", date(2025, 3, 12)),
        # 22:00 UTC on 11 March is 12 March in Tokyo (+9).
        ("20250311T220000Z", "Asia/Tokyo", date(2025, 3, 12)),
        ("20250311T220000Z", "UTC", date(2025, 3, 11)),
    ],
)
def test_utc_until_ends_an_all_day_series_on_its_local_date(until, tz_name, last):
    rule = f"FREQ=DAILY;UNTIL={until}"
    start = date(2025, 3, 1)
    before = last - timedelta(days=1)
    assert next_after(rule, start, current_due=before, tz_name=tz_name) == last
    assert next_after(rule, start, current_due=last, tz_name=tz_name) is None


def test_utc_until_bounds_the_occurrence_at_its_due_time():
    # The audit's case: 09:00 UTC on 11 December is an hour after UNTIL.
    rule = "FREQ=DAILY;UNTIL=20261211T080000Z"
    start = date(2026, 12, 10)
    assert next_after(rule, start, due_time=time(9, 0)) is None
    assert next_after(rule, start, due_time=time(7, 59)) == date(2026, 12, 11)


def test_utc_until_bounds_the_occurrence_in_the_users_time_zone():
    # 03:00 UTC on 12 December is 19:00 on the 11th in Los Angeles: 20:00 that day is too late.
    rule = "FREQ=DAILY;UNTIL=20261212T030000Z"
    start = date(2026, 12, 10)
    la = "America/Los_Angeles"
    assert next_after(rule, start, due_time=time(20, 0), tz_name=la) is None
    assert next_after(rule, start, due_time=time(19, 0), tz_name=la) == date(2026, 12, 11)
    # Without a time the whole 11th is in the series, the 12th is not.
    assert next_after(rule, start, tz_name=la) == date(2026, 12, 11)
    assert next_after(rule, start, current_due=date(2026, 12, 11), tz_name=la) is None


def test_an_occurrence_exactly_at_utc_until_is_in_the_series():
    rule = "FREQ=WEEKLY;UNTIL=20250317T080000Z"
    start = date(2025, 3, 10)  # 09:00 in Berlin is 08:00 UTC in winter
    berlin = "Europe/Berlin"
    assert next_after(rule, start, due_time=time(9, 0), tz_name=berlin) == date(2025, 3, 17)
    assert next_after(rule, start, due_time=time(9, 0, 1), tz_name=berlin) is None
    last = next_after(rule, start, current_due=date(2025, 3, 17), due_time=time(9), tz_name=berlin)
    assert last is None


def test_utc_until_across_the_dst_change_keeps_the_wall_clock_time():
    # Berlin moves to summer time on 30 March 2025: 09:00 is 08:00 UTC before, 07:00 UTC after.
    # UNTIL at 07:30 UTC on 31 March is after 09:00 CEST that day (with the winter offset of the
    # series' start it would be before): the 31st is the last one.
    rule = "FREQ=DAILY;UNTIL=20250331T073000Z"
    berlin = "Europe/Berlin"
    start = date(2025, 3, 28)
    assert next_after(rule, start, date(2025, 3, 30), due_time=time(9), tz_name=berlin) == (
        date(2025, 3, 31)
    )
    assert next_after(rule, start, date(2025, 3, 31), due_time=time(9), tz_name=berlin) is None
    # 09:31 CEST is 07:31 UTC, a minute after UNTIL.
    assert next_after(rule, start, date(2025, 3, 30), due_time=time(9, 31), tz_name=berlin) is None


@pytest.mark.parametrize(
    ("until", "due_time", "included"),
    [
        # 2:30 on 9 March 2025 does not exist in New York: read with the offset before the gap
        # (EST, fold=0), it is 07:30 UTC, i.e. 03:30 EDT.
        ("20250309T073000Z", time(2, 30), True),
        ("20250309T072959Z", time(2, 30), False),
        # 1:30 on 2 November 2025 happens twice: the first (EDT, 05:30 UTC) counts.
        ("20251102T053000Z", time(1, 30), True),
        ("20251102T052959Z", time(1, 30), False),
    ],
)
def test_utc_until_reads_skipped_and_repeated_times_with_the_offset_before_the_change(
    until, due_time, included
):
    rule = f"FREQ=DAILY;UNTIL={until}"
    day = datetime.strptime(until[:8], "%Y%m%d").date()
    before = day - timedelta(days=1)
    got = next_after(rule, before, before, due_time=due_time, tz_name="America/New_York")
    assert got == (day if included else None)


@pytest.mark.parametrize(
    ("until", "due_time", "tz_name", "expected"),
    [
        # UNTIL's local date is in the year 10000: every date of the calendar is before it.
        ("99991231T230000Z", time(9), "Asia/Tokyo", date(9999, 12, 31)),
        # Before the first date of the calendar in Los Angeles, or before 09:00 on it.
        ("00010101T000000Z", None, "America/Los_Angeles", None),
        ("00010101T000000Z", time(9), "UTC", None),
    ],
)
def test_utc_until_at_the_ends_of_the_calendar(until, due_time, tz_name, expected):
    start = date(9999, 12, 30) if expected else date(1, 1, 1)
    got = next_after(f"FREQ=DAILY;UNTIL={until}", start, due_time=due_time, tz_name=tz_name)
    assert got == expected


def test_utc_until_far_in_the_past_ends_the_series():
    rule = "FREQ=DAILY;UNTIL=20200101T000000Z"
    got = next_after(rule, date(2019, 12, 1), today=date(2025, 3, 1), due_time=time(9))
    assert got is None


def test_until_in_the_past_gives_none():
    rule = "FREQ=DAILY;UNTIL=20200101"
    assert next_after(rule, date(2019, 12, 1), today=date(2025, 3, 1)) is None
    assert next_after(rule, date(2025, 3, 1)) is None


def test_rule_that_never_meets_for_this_start_gives_none():
    # MONTHLY on the start's day (30) only in February; INTERVAL=7 days on a Tuesday never
    # reaches a Monday. Both would make dateutil search until the year 9999.
    assert next_after("FREQ=MONTHLY;BYMONTH=2", date(2025, 1, 30)) is None
    assert next_after("FREQ=DAILY;INTERVAL=7;BYDAY=MO", date(2025, 3, 4)) is None
    assert next_after("FREQ=DAILY;INTERVAL=7;BYDAY=TU", date(2025, 3, 4)) == date(2025, 3, 11)


def test_next_due_date_accepts_a_stored_rule_with_prefix_and_lower_case():
    assert next_after("RRULE:freq=daily;interval=3", date(2025, 3, 1)) == date(2025, 3, 4)


@pytest.mark.parametrize(
    "rule", ["FREQ=DAILY", "FREQ=DAILY;COUNT=5", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29"]
)
def test_series_at_the_end_of_the_calendar_ends_quietly(rule):
    assert next_after(rule, date(9999, 12, 31)) is None


def test_next_due_date_rejects_an_invalid_rule_with_validation_error():
    with pytest.raises(ValidationError):
        next_after("FREQ=SOMETIMES", date(2025, 3, 1))


def test_series_started_long_ago_continue_in_their_phase():
    # The work they cost is bounded in test_recurrence_cost.py.
    today = date(2025, 6, 1)
    start = today - timedelta(days=3653)
    assert next_after("FREQ=DAILY", start, today=today) == date(2025, 6, 2)
    assert next_after("FREQ=DAILY;INTERVAL=3", start, today=today) == (
        start + timedelta(days=3 * ((today - start).days // 3 + 1))
    )
    assert next_after("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,SA", date(1, 1, 2), today=today) == (
        date(2025, 6, 10)  # what plain dateutil answers after walking 2,000 years
    )


@pytest.mark.parametrize(
    ("rule", "start", "expected"),
    [
        ("FREQ=MONTHLY", date(1990, 1, 31), date(2025, 7, 31)),  # the 31st, months that have one
        ("FREQ=MONTHLY;INTERVAL=5;BYMONTHDAY=1", date(1990, 3, 1), date(2025, 8, 1)),
        ("FREQ=MONTHLY;BYDAY=-1FR", date(1990, 1, 5), date(2025, 6, 27)),
        ("FREQ=YEARLY", date(1904, 2, 29), date(2028, 2, 29)),  # 29 February, leap years only
        ("FREQ=YEARLY;INTERVAL=3", date(1901, 6, 15), date(2027, 6, 15)),  # 1901 + 3 × 42
    ],
)
def test_monthly_and_yearly_series_from_long_ago_continue_in_their_phase(rule, start, expected):
    assert next_after(rule, start, today=date(2025, 6, 1)) == expected


def test_a_daily_count_spent_before_today_ends_the_series():
    start = date(2015, 6, 1)
    assert next_after("FREQ=DAILY;COUNT=1000", start, today=date(2025, 6, 1)) is None
    # The 1000th is 999 days after the first.
    assert next_after("FREQ=DAILY;COUNT=1000", start, today=date(2018, 2, 23)) == date(2018, 2, 24)
    assert next_after("FREQ=DAILY;COUNT=1000", start, today=date(2018, 2, 24)) is None


@settings(max_examples=300, deadline=None, database=None)
@given(
    freq=st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]),
    interval=st.integers(1, 30),
    byday=st.sets(st.sampled_from(["MO", "TU", "WE", "TH", "FR", "SA", "SU"]), max_size=3),
    bymonthday=st.sets(st.sampled_from([1, 15, 29, 30, 31, -1]), max_size=2),
    bymonth=st.sets(st.integers(1, 12), max_size=2),
    # Month ends and 29 February, where the start's own day is a default of the rule.
    start=st.one_of(
        st.dates(date(1990, 1, 1), date(2030, 12, 31)),
        st.sampled_from([date(2024, 2, 29), date(2023, 1, 31), date(2025, 8, 31)]),
    ),
    later_by=st.integers(0, 40 * 366),
)
def test_next_due_date_agrees_with_plain_dateutil(
    freq, interval, byday, bymonthday, bymonth, start, later_by
):
    rule = f"FREQ={freq};INTERVAL={interval}" + "".join(
        f";{key}={','.join(map(str, sorted(values)))}"
        for key, values in (("BYDAY", byday), ("BYMONTHDAY", bymonthday), ("BYMONTH", bymonth))
        if values
    )
    try:
        validate_rule(rule)
    except ValidationError:
        return  # its parts never meet (BYMONTH=2;BYMONTHDAY=30): not a rule a task can have
    today = start + timedelta(days=later_by)
    expected = rrulestr(rule, dtstart=datetime(start.year, start.month, start.day)).after(
        datetime(today.year, today.month, today.day)
    )
    got = next_after(rule, start, today=today)
    if freq == "DAILY" and byday and interval % 7 == 0:
        # dateutil finds the same answer, when there is one, only after a long search.
        assert got is None or got == expected.date()
    else:
        assert got == (expected.date() if expected else None)


# today_in


@pytest.mark.parametrize(
    ("now", "tz_name", "today"),
    [
        # Just before and after local midnight.
        (datetime(2025, 1, 14, 22, 59, tzinfo=UTC), "Europe/Berlin", date(2025, 1, 14)),
        (datetime(2025, 1, 14, 23, 0, tzinfo=UTC), "Europe/Berlin", date(2025, 1, 15)),
        (datetime(2025, 1, 15, 4, 59, tzinfo=UTC), "America/New_York", date(2025, 1, 14)),
        (datetime(2025, 1, 15, 5, 0, tzinfo=UTC), "America/New_York", date(2025, 1, 15)),
        # Summer time: midnight moves an hour earlier in UTC.
        (datetime(2025, 7, 14, 21, 59, tzinfo=UTC), "Europe/Berlin", date(2025, 7, 14)),
        (datetime(2025, 7, 14, 22, 0, tzinfo=UTC), "Europe/Berlin", date(2025, 7, 15)),
        (datetime(2025, 7, 15, 3, 59, tzinfo=UTC), "America/New_York", date(2025, 7, 14)),
        (datetime(2025, 7, 15, 4, 0, tzinfo=UTC), "America/New_York", date(2025, 7, 15)),
        # The nights the clocks change (Berlin 30 March / 26 October 2025, New York 9 March /
        # 2 November 2025): the midnight after the change is already on the new offset.
        (datetime(2025, 3, 30, 21, 59, tzinfo=UTC), "Europe/Berlin", date(2025, 3, 30)),
        (datetime(2025, 3, 30, 22, 0, tzinfo=UTC), "Europe/Berlin", date(2025, 3, 31)),
        (datetime(2025, 10, 26, 22, 59, tzinfo=UTC), "Europe/Berlin", date(2025, 10, 26)),
        (datetime(2025, 10, 26, 23, 0, tzinfo=UTC), "Europe/Berlin", date(2025, 10, 27)),
        (datetime(2025, 3, 10, 3, 59, tzinfo=UTC), "America/New_York", date(2025, 3, 9)),
        (datetime(2025, 3, 10, 4, 0, tzinfo=UTC), "America/New_York", date(2025, 3, 10)),
        (datetime(2025, 11, 3, 4, 59, tzinfo=UTC), "America/New_York", date(2025, 11, 2)),
        (datetime(2025, 11, 3, 5, 0, tzinfo=UTC), "America/New_York", date(2025, 11, 3)),
        (datetime(2025, 1, 14, 23, 30, tzinfo=UTC), "UTC", date(2025, 1, 14)),
    ],
)
def test_today_in_is_the_users_local_date(now, tz_name, today):
    assert today_in(tz_name, now) == today


def test_today_in_defaults_to_djangos_now(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: datetime(2025, 1, 15, 4, 30, tzinfo=UTC))
    assert today_in("America/New_York") == date(2025, 1, 14)
    assert today_in("Europe/Berlin") == date(2025, 1, 15)


def test_today_in_refuses_a_naive_now():
    with pytest.raises(ValueError, match="timezone-aware"):
        today_in("Europe/Berlin", datetime(2025, 1, 1, 12))


def test_overdue_daily_task_completed_late_at_night_in_new_york_across_dst():
    # 9 March 2025, 23:30 in New York (the day clocks sprang forward) is 10 March in UTC; the
    # next copy of a task due on 2 March is due on 10 March, the user's tomorrow.
    now = datetime(2025, 3, 10, 3, 30, tzinfo=UTC)
    today = today_in("America/New_York", now)
    assert today == date(2025, 3, 9)
    assert next_after("FREQ=DAILY", date(2025, 3, 2), today=today) == date(2025, 3, 10)


def test_weekly_task_keeps_its_weekday_across_the_berlin_dst_change():
    # Dates carry no offset, so Monday stays Monday on both sides of 30 March 2025; the caller
    # copies due_time, which keeps the wall-clock time.
    start = date(2025, 3, 24)
    assert next_after("FREQ=WEEKLY", start) == date(2025, 3, 31)
    assert next_after("FREQ=WEEKLY", start, current_due=date(2025, 10, 20)) == date(2025, 10, 27)


# M1: YEARLY + BYMONTH counts a numbered BYDAY within the month (dateutil raised IndexError).


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=YEARLY;BYMONTH=12;BYDAY=8MO",
        "FREQ=YEARLY;BYMONTH=6;BYDAY=-1FR,40FR",
        "FREQ=YEARLY;BYMONTH=2;BYDAY=53MO",
        "FREQ=YEARLY;BYMONTH=11;BYDAY=20FR",
        "FREQ=YEARLY;BYMONTH=1;BYDAY=-6MO",
    ],
)
def test_a_numbered_weekday_with_bymonth_counts_within_the_month(rule):
    with pytest.raises(ValidationError, match="counts within the month, from 1 to 5"):
        validate_rule(rule)


def test_numbered_weekdays_up_to_5_with_bymonth_and_53_without_are_valid():
    assert validate_rule("FREQ=YEARLY;BYMONTH=12;BYDAY=-5MO,5FR") == (
        "FREQ=YEARLY;BYMONTH=12;BYDAY=-5MO,5FR"
    )
    assert validate_rule("FREQ=YEARLY;BYDAY=53MO") == "FREQ=YEARLY;BYDAY=53MO"
    # The 5th Friday of March: years whose March has five Fridays.
    rule = "FREQ=YEARLY;BYMONTH=3;BYDAY=5FR"
    assert next_after(rule, date(2024, 3, 29)) == date(2028, 3, 31)


def test_a_stored_rule_with_a_larger_number_with_bymonth_keeps_evaluating():
    # Accepted before the cap (dateutil evaluated 7MO in December without an error).
    rule = "FREQ=YEARLY;BYMONTH=12;BYDAY=1MO,7MO"
    assert next_after(rule, date(2025, 12, 1)) == date(2026, 12, 7)
    assert validate_rule(rule, stored=rule) == rule


# L1: the calendar ends on 9999-12-31, and so does every series (dateutil's WEEKLY steps raised
# "year 10000 is out of range").


@pytest.mark.parametrize(
    ("rule", "start"),
    [
        ("FREQ=WEEKLY;BYDAY=SU", date(9999, 12, 30)),
        ("FREQ=WEEKLY;BYDAY=SA", date(9999, 12, 28)),
        ("FREQ=WEEKLY;BYMONTH=1", date(9999, 7, 17)),
        ("FREQ=WEEKLY;BYDAY=SA;COUNT=5", date(9999, 12, 25)),
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,SU", date(9999, 12, 27)),
    ],
)
def test_a_weekly_series_at_the_end_of_the_calendar_has_no_next_date(rule, start):
    assert next_after(rule, start) is None
    assert repeats(rule, start) is False


def test_a_stored_weekly_bymonthday_rule_at_the_end_of_the_calendar_has_no_next_date():
    assert next_after("FREQ=WEEKLY;BYMONTHDAY=1", date(9999, 12, 3)) is None
    assert repeats("FREQ=WEEKLY;BYMONTHDAY=1", date(9999, 12, 3)) is False


def test_a_weekly_series_with_a_last_date_before_the_end_of_the_calendar_repeats():
    assert next_after("FREQ=WEEKLY;BYDAY=FR", date(9999, 12, 24)) == date(9999, 12, 31)
    assert repeats("FREQ=WEEKLY;BYDAY=FR", date(9999, 12, 24)) is True


# L3: numbers in ASCII digits only. L6: no BYMONTHDAY with WEEKLY (RFC 5545 3.3.10).


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;INTERVAL=\u0663",
        "FREQ=DAILY;COUNT=\u0662",
        "FREQ=MONTHLY;BYMONTHDAY=\u0661",
        "FREQ=MONTHLY;BYMONTHDAY=\uff13",
        "FREQ=YEARLY;BYMONTH=\u0661\u0662",
        "FREQ=MONTHLY;BYDAY=\u0661MO",
    ],
)
def test_numbers_must_be_ascii_digits(rule):
    with pytest.raises(ValidationError, match="digits 0-9"):
        validate_rule(rule)


def test_bymonthday_with_weekly_is_refused():
    with pytest.raises(ValidationError, match="BYMONTHDAY cannot be used with FREQ=WEEKLY"):
        validate_rule("FREQ=WEEKLY;BYMONTHDAY=15")


@pytest.mark.parametrize(
    ("stored", "sent"),
    [
        ("FREQ=WEEKLY;BYMONTHDAY=15", "FREQ=WEEKLY;BYMONTHDAY=15"),
        ("FREQ=WEEKLY;BYMONTHDAY=15", "rrule:freq=weekly;bymonthday=15 "),
        ("FREQ=DAILY;INTERVAL=\u0663", "FREQ=DAILY;INTERVAL=\u0663"),
        ("RRULE:FREQ=MONTHLY;BYMONTHDAY=\uff13", "FREQ=MONTHLY;BYMONTHDAY=\uff13"),
    ],
)
def test_a_stored_rule_sent_back_unchanged_is_accepted_and_keeps_evaluating(stored, sent):
    normalized = validate_rule(sent, stored=stored)
    assert normalized == sent.strip().upper().removeprefix("RRULE:")
    assert next_after(stored, date(2025, 3, 1)) is not None


@pytest.mark.parametrize(
    ("stored", "sent"),
    [
        ("FREQ=WEEKLY;BYMONTHDAY=15", "FREQ=WEEKLY;BYMONTHDAY=16"),
        ("FREQ=DAILY;INTERVAL=\u0663", "FREQ=DAILY;INTERVAL=\u0664"),
        (None, "FREQ=WEEKLY;BYMONTHDAY=15"),
        ("FREQ=DAILY", "FREQ=WEEKLY;BYMONTHDAY=15"),
    ],
)
def test_a_changed_rule_must_pass_the_new_checks(stored, sent):
    with pytest.raises(ValidationError):
        validate_rule(sent, stored=stored)


def test_stored_does_not_excuse_other_errors():
    with pytest.raises(ValidationError, match="out of range"):
        validate_rule("FREQ=MONTHLY;BYMONTHDAY=32", stored="FREQ=MONTHLY;BYMONTHDAY=32")


# M2 helper: same_series


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("FREQ=DAILY;COUNT=3", "COUNT=3;FREQ=DAILY"),
        ("FREQ=DAILY;COUNT=3", "FREQ=DAILY;INTERVAL=1;COUNT=3"),
        ("FREQ=DAILY;INTERVAL=3", "FREQ=DAILY;INTERVAL=03"),
        ("FREQ=MONTHLY", "INTERVAL=1;FREQ=MONTHLY"),
        ("FREQ=MONTHLY;BYDAY=1MO", "FREQ=MONTHLY;BYDAY=+1MO"),
        ("FREQ=WEEKLY;BYDAY=MO,TU", "FREQ=WEEKLY;BYDAY=TU,MO,MO"),
        ("FREQ=YEARLY;BYMONTH=1,12", "FREQ=YEARLY;BYMONTH=12,01"),
        ("FREQ=MONTHLY;BYMONTHDAY=-1,1", "FREQ=MONTHLY;BYMONTHDAY=01,-01"),
        ("FREQ=DAILY;COUNT=3", "FREQ=DAILY;COUNT=5"),
        ("FREQ=DAILY;COUNT=3", "FREQ=DAILY;UNTIL=20300101"),
        ("FREQ=DAILY", "rrule:freq=daily;until=20300101T000000Z"),
        (None, None),
    ],
)
def test_same_series_compares_meaning_apart_from_count_and_until(a, b):
    assert same_series(a, b) is True
    assert same_series(b, a) is True


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("FREQ=DAILY", "FREQ=WEEKLY"),
        ("FREQ=DAILY", "FREQ=DAILY;INTERVAL=2"),
        ("FREQ=MONTHLY;BYDAY=1MO", "FREQ=MONTHLY;BYDAY=MO"),
        ("FREQ=MONTHLY;BYDAY=1MO", "FREQ=MONTHLY;BYDAY=-1MO"),
        ("FREQ=WEEKLY;BYDAY=MO", "FREQ=WEEKLY;BYDAY=MO,TU"),
        ("FREQ=YEARLY;BYMONTH=1", "FREQ=YEARLY"),
        ("FREQ=MONTHLY;BYMONTHDAY=1", "FREQ=MONTHLY;BYMONTHDAY=-1"),
        ("FREQ=DAILY", None),
        (None, "FREQ=DAILY"),
        ("FREQ=DAILY", "FREQ=SOMETIMES"),
    ],
)
def test_same_series_tells_different_series_apart(a, b):
    assert same_series(a, b) is False
    assert same_series(b, a) is False


# Through the API: each of these was a 500.


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("due_date", "rule", "message"),
    [
        ("2026-12-10", "FREQ=YEARLY;BYMONTH=12;BYDAY=8MO", "counts within the month"),
        ("9999-12-30", "FREQ=WEEKLY;BYDAY=SU", "never repeats"),
        ("9999-07-17", "FREQ=WEEKLY;BYMONTH=1", "never repeats"),
    ],
)
def test_the_api_answers_400_where_it_answered_500(api_client, due_date, rule, message):
    answer = api_client.post(
        "/api/v1/tasks/", {"title": "t", "due_date": due_date, "recurrence": rule}
    )
    assert answer.status_code == 400
    assert message in answer.json()["errors"]["recurrence"][0]


@pytest.mark.django_db
def test_completing_a_weekly_task_at_the_end_of_the_calendar_makes_no_copy(api_client, make_task):
    task = make_task("t", due_date=date(2026, 12, 10), recurrence="FREQ=WEEKLY;BYDAY=SA")
    copy = api_client.patch(f"/api/v1/tasks/{task.pk}/", {"completed": True}).json()
    url = f"/api/v1/tasks/{copy['next_occurrence']}/"
    assert api_client.patch(url, {"due_date": "9999-12-28"}).status_code == 200
    done = api_client.patch(url, {"completed": True})
    assert done.status_code == 200 and done.json()["next_occurrence"] is None
    assert Task.objects.count() == 2


def _days_around_changes_of_the_clocks(zone: ZoneInfo, year: int) -> list[date]:
    """The two days around each change: between one's noon and the next's (in Santiago the
    clocks change at midnight, so the change is late on one or early on the other)."""
    noon = [
        datetime.combine(date(year, 1, 1) + timedelta(days=n), time(12), zone) for n in range(366)
    ]
    return [
        day
        for today, tomorrow in itertools.pairwise(noon)
        if today.utcoffset() != tomorrow.utcoffset()
        for day in (today.date(), tomorrow.date())
    ]


@pytest.mark.parametrize(
    "zone_name",
    # Changes of an hour at 02:00, of half an hour, and at midnight.
    ["America/New_York", "Australia/Lord_Howe", "America/Santiago", "Europe/Berlin"],
)
def test_past_times_of_day_are_the_times_whose_moment_is_before_now(zone_name):
    """Every whole minute of a day the clocks change, at moments through the day: in the
    ranges exactly when the moment of that wall-clock time (fold=0, as UNTIL reads it) is
    before now."""
    zone = ZoneInfo(zone_name)
    days = _days_around_changes_of_the_clocks(zone, 2026)
    assert len(days) == 4
    minutes = [time(*divmod(minute, 60)) for minute in range(24 * 60)]
    for day in days:
        start = datetime.combine(day, time.min, zone).astimezone(UTC)
        for step in range(0, 25 * 60, 37):
            now = (start + timedelta(minutes=step, seconds=20)).astimezone(zone)
            if now.date() != day:
                continue
            past = past_times_of_day(now)
            ranges = list(zip(past[::2], past[1::2], strict=True))
            for minute in minutes:
                # Against UTC: aware datetimes of one tzinfo compare as wall-clock times.
                expected = datetime.combine(day, minute, zone) < now.astimezone(UTC)
                assert any(a <= minute < b for a, b in ranges) == expected, (now, minute)


def test_past_times_of_day_on_other_days_are_the_day_up_to_now():
    now = datetime(2026, 6, 8, 16, 42, 5, tzinfo=ZoneInfo("Europe/Berlin"))
    assert past_times_of_day(now) == (time.min, time(16, 42, 5))


@pytest.mark.django_db
def test_a_recurring_task_created_completed_gets_its_next_occurrence(api_client):
    """Unpinned until review 31a (its mutant task_create's `if completed: _spawn_next_occurrences(...)` dropped): a task
    POSTed already completed with a rule is a completion too; its answer names the copy,
    which is open and due on the rule's next date. (README lists PATCH, PUT, bulk and the
    admin; the code also does it on create, and nothing pinned it.)"""
    response = api_client.post(
        "/api/v1/tasks/",
        {
            "title": "Water plants",
            "completed": True,
            "due_date": "2099-01-01",
            "recurrence": "FREQ=WEEKLY",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    copy_id = response.json()["next_occurrence"]
    assert copy_id is not None
    copy = api_client.get(f"/api/v1/tasks/{copy_id}/").json()
    assert (copy["title"], copy["completed"], copy["due_date"]) == (
        "Water plants",
        False,
        "2099-01-08",
    )
