"""H1: next_due_date gives plain dateutil's answer for every rule and dates, at a bounded cost.

The oracle is the semantics the module always had: dateutil's dates from the series' start,
the first task counted as occurrence 1 even when it does not match the rule, then the first
date after the later of the due date and today (within COUNT or UNTIL). The cost is bounded
by counting work, never by timing: dateutil is not walked at all, and `_Series` looks at a
bounded number of years.
"""

import random
from datetime import date, datetime

import pytest
from dateutil.rrule import _iterinfo, rrulestr
from django.core.exceptions import ValidationError

from tasks import recurrence
from tasks.recurrence import next_due_date, repeats, validate_rule
from todo_project.tests.helpers import coverage_paused

_END = date(9999, 12, 31)


def plain_dateutil(rule: str, start: date, threshold: date) -> date | None:
    parts = dict(part.split("=") for part in rule.split(";"))
    count = int(parts.pop("COUNT")) if "COUNT" in parts else None
    until = parts.get("UNTIL")
    if start > threshold:
        return start if until is None or start.isoformat().replace("-", "") <= until else None
    series = rrulestr(
        ";".join(f"{key}={value}" for key, value in parts.items()),
        dtstart=datetime(start.year, start.month, start.day),
    )
    try:
        if count is None:
            following = series.after(datetime(threshold.year, threshold.month, threshold.day))
            return following.date() if following else None
        seen = 1
        for occurrence in series:
            day = occurrence.date()
            if day == start:
                continue
            if seen >= count:
                return None
            seen += 1
            if day > threshold:
                return day
    except ValueError:  # dateutil's WEEKLY steps past 9999-12-31: the calendar has ended
        return None
    return None


def next_after(rule: str, start: date, threshold: date) -> date | None:
    return next_due_date(
        rule=rule,
        series_start=start,
        current_due=threshold,
        today=threshold,
        due_time=None,
        tz_name="UTC",
    )


def _random_rule(rng: random.Random) -> str:
    freq = rng.choice(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"])
    parts = [f"FREQ={freq}"]
    if rng.random() < 0.6:
        steps = [1, 2, 3, 5, 7, 9, 11, 14, 27, 60, 773, 997, 1000, rng.randint(1, 50)]
        parts.append(f"INTERVAL={rng.choice(steps)}")
    if rng.random() < 0.5:
        months = rng.sample(range(1, 13), rng.choice([1, 1, 2, 3]))
        parts.append("BYMONTH=" + ",".join(map(str, months)))
    if rng.random() < 0.5 and freq != "WEEKLY":
        days = rng.sample([1, 2, 15, 28, 29, 30, 31, -1, -2, -29, -31], rng.choice([1, 1, 2]))
        parts.append("BYMONTHDAY=" + ",".join(map(str, days)))
    if rng.random() < 0.6:
        weekdays = rng.sample(["MO", "TU", "WE", "TH", "FR", "SA", "SU"], rng.choice([1, 2, 3]))
        if freq in ("MONTHLY", "YEARLY") and rng.random() < 0.6:
            most = 53 if freq == "YEARLY" and "BYMONTH" not in parts[-1] else 5
            weekdays = [
                f"{rng.choice(['', '+', '-'])}{rng.randint(1, most)}{day}"
                if rng.random() < 0.8
                else day
                for day in weekdays
            ]
        parts.append("BYDAY=" + ",".join(weekdays))
    ending = rng.random()
    if ending < 0.5:
        parts.append(f"COUNT={rng.choice([1, 2, 5, 50, 1000, rng.randint(1, 1000)])}")
    elif ending < 0.65:
        parts.append(f"UNTIL={rng.randint(1, 9999):04d}{rng.randint(1, 12):02d}01")
    rng.shuffle(parts)
    return ";".join(parts)


def _random_day(rng: random.Random, low: int = 1, high: int = _END.toordinal()) -> date:
    return date.fromordinal(rng.randint(low, high))


def test_next_due_date_agrees_with_plain_dateutil_on_random_rules_and_dates():
    rng = random.Random(20261203)
    # dateutil walks DAILY rules day by day: their spans are kept short enough to run here.
    spans = {"DAILY": 100, "WEEKLY": 400, "MONTHLY": 2000, "YEARLY": 9999}
    checked = 0
    while checked < 600:
        try:
            rule = validate_rule(_random_rule(rng))
        except ValidationError:
            continue  # its parts never meet
        start = _random_day(rng)
        if rng.random() < 0.1:
            start = rng.choice(
                [date(1, 1, 1), date(4, 2, 29), date(2024, 2, 29), date(9996, 2, 29), _END]
            )
        span = spans[rule.split("FREQ=")[1].split(";")[0]]
        later = start.toordinal() + rng.randint(-400, span * 366)
        threshold = date.fromordinal(min(max(later, 1), _END.toordinal()))
        with coverage_paused():  # dateutil's walk, day by day: nothing of ours runs there
            expected = plain_dateutil(rule, start, threshold)
        assert next_after(rule, start, threshold) == expected, (
            rule,
            start,
            threshold,
        )
        checked += 1


# Rules whose filters rarely meet, started or due far from each other; the expected dates are
# what plain dateutil answers (computed once: walking them takes it seconds each).
@pytest.mark.parametrize(
    ("rule", "start", "threshold", "expected"),
    [
        # The audit's repro: a copy moved to 9999-01-01, COUNT never reached, no date left.
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=TH;COUNT=1000", "2024-02-29", "9999-01-01", None),
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=TH;COUNT=1000", "2024-02-29", "9000-01-01", "9016-02-29"),
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=TH;COUNT=200", "2024-02-29", "9000-01-01", None),
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;COUNT=1000", "0004-02-29", "0004-02-29", "0016-02-29"),
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;COUNT=1000", "0004-02-29", "5000-06-01", "5008-02-29"),
        ("FREQ=WEEKLY;BYMONTH=2;BYDAY=MO;COUNT=1000", "0001-01-01", "0200-01-01", "0200-02-03"),
        ("FREQ=DAILY;INTERVAL=2;BYMONTHDAY=31;BYDAY=MO;COUNT=1000", "2024-02-29", "9999-01-01", None),
        ("FREQ=DAILY;INTERVAL=2;BYMONTHDAY=31;BYDAY=MO;COUNT=1000", "2024-02-29", "2900-01-01", "2900-05-31"),
        ("FREQ=DAILY;INTERVAL=27;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO", "0004-02-29", "0004-02-29", "0332-02-29"),
        ("FREQ=DAILY;INTERVAL=2;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO", "0004-02-29", "5000-01-01", "5036-02-29"),
        ("FREQ=MONTHLY;INTERVAL=7;BYMONTH=2;BYMONTHDAY=29;BYDAY=TH;COUNT=1000", "0001-01-01", "9999-01-01", None),
        ("FREQ=WEEKLY;INTERVAL=997;BYDAY=SA;COUNT=1000", "0001-01-01", "9000-01-01", "9000-10-25"),
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=TH;COUNT=300", "0004-02-29", "8100-01-01", "8120-02-29"),
        ("FREQ=DAILY;INTERVAL=2;BYMONTHDAY=31;BYDAY=MO;COUNT=1000", "0001-01-01", "1700-01-01", "1701-01-31"),
    ],
)  # fmt: skip
def test_rare_rules_far_from_their_start(rule, start, threshold, expected):
    got = next_after(rule, date.fromisoformat(start), date.fromisoformat(threshold))
    assert got == (date.fromisoformat(expected) if expected else None)


class _Work:
    """Counts the periods dateutil examines (a day, week, month or year each) and the years
    `_Series` looks at: the work a call does, whatever the machine."""

    def __init__(self, monkeypatch):
        self.periods = 0
        self.years = 0
        for name in ("ddayset", "wdayset", "mdayset", "ydayset"):
            original = getattr(_iterinfo, name)

            def counting(info, *args, _original=original):
                self.periods += 1
                return _original(info, *args)

            monkeypatch.setattr(_iterinfo, name, counting)
        counts, dates = recurrence._Series._counts, recurrence._Series._dates

        def counted_counts(series, first, end):
            self.years += max(end - first, 0)
            return counts(series, first, end)

        def counted_dates(series, year):
            self.years += 1
            return dates(series, year)

        monkeypatch.setattr(recurrence._Series, "_counts", counted_counts)
        monkeypatch.setattr(recurrence._Series, "_dates", counted_dates)


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=TH;COUNT=1000",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=TH;COUNT=1000",
        "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=TH;COUNT=1000",
        "FREQ=DAILY;BYMONTHDAY=31;BYDAY=MO;INTERVAL=2;COUNT=1000",
        "FREQ=WEEKLY;BYMONTH=2;BYDAY=TH;COUNT=1000",
        "FREQ=DAILY;INTERVAL=997;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO",
        "FREQ=WEEKLY;INTERVAL=997;BYDAY=SA;COUNT=1000",
        "FREQ=MONTHLY;INTERVAL=997;BYDAY=-1FR;COUNT=1000",
        "FREQ=YEARLY;INTERVAL=997;BYMONTH=2;BYMONTHDAY=29",
    ],
)
@pytest.mark.parametrize(
    ("start", "threshold"),
    [
        (date(2024, 2, 29), date(9999, 1, 1)),
        (date(4, 2, 29), date(4, 2, 29)),
        (date(1, 1, 1), date(5000, 7, 1)),
        (date(9999, 12, 1), date(9999, 12, 30)),
    ],
)
def test_a_completion_does_bounded_work_whatever_the_rule_and_dates(
    monkeypatch, rule, start, threshold
):
    work = _Work(monkeypatch)
    next_after(rule, start, threshold)
    repeats(rule, start)
    assert work.periods == 0  # dateutil is never walked
    # Each call looks at each year at most twice (a count, then the next date), and at most a
    # period of 400 years twice for a rule whose step divides the cycle's.
    assert work.years <= 2 * 2 * (9999 + 2)
    if "INTERVAL" not in rule:
        assert work.years <= 2 * (4 * 400 + 4)
