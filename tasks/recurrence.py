"""RFC 5545 recurrence rules for tasks: the contract's subset, validated and evaluated on dates.

A task's rule is evaluated on calendar dates only: the series starts at the first task's due
date (`Task.recurrence_start`) and the caller copies `due_time` onto the next task, so the
wall-clock time survives DST changes by construction. Two things need the user's timezone:
"today" (`today_in`) and a UTC date-time UNTIL, which is turned into the last local date whose
occurrence (at `due_time`, or the whole day without one) is not after it (`_last_local_date`).

python-dateutil parses and checks a new rule; our own checks come first because dateutil is
lenient (it accepts DTSTART, BYHOUR, WKST, duplicate keys, lower case) and because some of its
failures are not ValueErrors; everything invalid leaves this module as a Django ValidationError.
The dates of a series are not found by walking dateutil's iterator, which tests every day (or
week, or month) from the series' start: that costs seconds for a rare rule far from its start.
`_Series` computes the same dates (dateutil's semantics, checked against it by the tests) year
by year from per-year tables, see its docstring.
"""

import re
from bisect import bisect_right
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from math import gcd
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr
from django.core.exceptions import ValidationError
from django.utils import timezone

RULE_MAX_LENGTH = 500
MAX_INTERVAL = 1000
MAX_COUNT = 1000

_FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_KEYS = ("FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "COUNT", "UNTIL")
# `\d` matches any Unicode digit and int() reads them; RFC 5545's DIGIT is ASCII. New rules must
# use 0-9 (`_check(new=True)`), rules stored before that check keep evaluating.
_POSITIVE = re.compile(r"\d{1,4}")
_SIGNED = re.compile(r"[+-]?\d{1,2}")
_BYDAY_ITEM = re.compile(r"(?P<ordinal>[+-]?\d{1,2})?(?P<day>MO|TU|WE|TH|FR|SA|SU)")
_UNTIL = re.compile(r"\d{8}(T\d{6}Z)?")
# Largest |n| of "the n-th weekday" inside the period BYDAY counts in (RFC 5545 3.3.10): the
# month for MONTHLY, and for YEARLY with BYMONTH; the year for YEARLY without BYMONTH.
_MAX_ORDINAL = {"MONTHLY": 5, "YEARLY": 53}
_MAX_ORDINAL_IN_MONTH = 5
# The Gregorian calendar repeats every 400 years: 146,097 days, 20,871 weeks, 4,800 months.
_CYCLE_DAYS = 146_097
_CYCLE_YEARS = 400
_LAST_YEAR = 9999
_PROBE_START = datetime(9600, 1, 1)


def _invalid(message: str) -> ValidationError:
    return ValidationError(f"Invalid recurrence rule: {message}", code="invalid_recurrence")


def _int_list(key: str, value: str, pattern: re.Pattern, low: int, high: int) -> None:
    for item in value.split(","):
        if not pattern.fullmatch(item):
            raise _invalid(f"{key} must be a comma-separated list of numbers, not '{value}'.")
        number = int(item)
        if not low <= abs(number) <= high:
            raise _invalid(f"{key} value {item} is out of range.")


def _parts(value: object) -> dict[str, str]:
    """Splits a rule into its KEY=VALUE parts, rejecting anything outside the contract's subset."""
    if not isinstance(value, str):
        raise _invalid("it must be a string.")
    if len(value) > RULE_MAX_LENGTH:
        raise _invalid(f"it must be at most {RULE_MAX_LENGTH} characters long.")
    text = value.strip().upper()
    text = text.removeprefix("RRULE:")
    if not text:
        raise _invalid("it is empty.")
    if "DTSTART" in text:
        raise _invalid("DTSTART is not allowed; the series starts at the task's due date.")
    parts: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, item = part.partition("=")
        if not sep or not key or not item or "=" in item:
            raise _invalid(f"'{part[:40]}' is not a KEY=VALUE part.")
        if key not in _KEYS:
            raise _invalid(f"unknown part '{key[:40]}'; allowed are {', '.join(_KEYS)}.")
        if key in parts:
            raise _invalid(f"{key} is given more than once.")
        parts[key] = item
    return parts


def _check(parts: dict[str, str], *, new: bool = True) -> None:
    """Value checks dateutil would not make (ranges, ordinals, COUNT with UNTIL).

    `new`: the checks added after rules were first stored (ASCII digits, no BYMONTHDAY with
    WEEKLY, numbered BYDAY within a month at most 5) apply to a rule being written; a rule
    already stored keeps evaluating (next_due_date passes new=False).
    """
    freq = parts.get("FREQ")
    if freq is None:
        raise _invalid("FREQ is required.")
    if freq not in _FREQUENCIES:
        raise _invalid(f"FREQ must be one of {', '.join(_FREQUENCIES)}, not '{freq}'.")
    if new and not "".join(parts.values()).isascii():
        raise _invalid("numbers must be written with the digits 0-9.")
    for key, high in (("INTERVAL", MAX_INTERVAL), ("COUNT", MAX_COUNT)):
        if key in parts and (
            not _POSITIVE.fullmatch(parts[key]) or not 1 <= int(parts[key]) <= high
        ):
            raise _invalid(f"{key} must be a whole number from 1 to {high}.")
    if "COUNT" in parts and "UNTIL" in parts:
        raise _invalid("COUNT and UNTIL cannot be used together.")
    if "UNTIL" in parts:
        until = parts["UNTIL"]
        try:
            if not _UNTIL.fullmatch(until):
                raise ValueError
            datetime.strptime(until, "%Y%m%dT%H%M%SZ" if "T" in until else "%Y%m%d")
        except ValueError:
            raise _invalid(
                "UNTIL must be a date (YYYYMMDD) or a UTC date-time (YYYYMMDDTHHMMSSZ)."
            ) from None
    if "BYMONTH" in parts:
        _int_list("BYMONTH", parts["BYMONTH"], _POSITIVE, 1, 12)
    if "BYMONTHDAY" in parts:
        if new and freq == "WEEKLY":
            raise _invalid("BYMONTHDAY cannot be used with FREQ=WEEKLY (RFC 5545).")
        _int_list("BYMONTHDAY", parts["BYMONTHDAY"], _SIGNED, 1, 31)
    if "BYDAY" in parts:
        for item in parts["BYDAY"].split(","):
            match = _BYDAY_ITEM.fullmatch(item)
            if not match:
                raise _invalid(f"BYDAY item '{item}' is not a weekday like MO or 1MO or -1FR.")
            if match["ordinal"] is not None:
                if freq not in _MAX_ORDINAL:
                    raise _invalid(f"BYDAY '{item}': a numbered weekday needs MONTHLY or YEARLY.")
                if not 1 <= abs(int(match["ordinal"])) <= _MAX_ORDINAL[freq]:
                    raise _invalid(f"BYDAY '{item}': the number is out of range for {freq}.")
                # YEARLY with BYMONTH counts the weekday within each month (dateutil raises an
                # IndexError past the end of the year instead).
                if new and "BYMONTH" in parts and abs(int(match["ordinal"])) > 5:
                    raise _invalid(
                        f"BYDAY '{item}': with BYMONTH the number counts within the month,"
                        f" from 1 to {_MAX_ORDINAL_IN_MONTH}."
                    )


def _text(parts: dict[str, str]) -> str:
    return ";".join(f"{key}={value}" for key, value in parts.items())


def _build(parts: dict[str, str], dtstart: datetime) -> rrule:
    text = _text(parts)
    try:
        # ignoretz: the series runs on naive dates; next_due_date makes a UTC UNTIL a date first.
        return rrulestr(text, dtstart=dtstart, ignoretz=True)
    except Exception as error:  # dateutil raises ValueError, KeyError, TypeError alike
        raise _invalid(str(error) or "it cannot be parsed.") from error


def validate_rule(value: str, *, stored: str | None = None) -> str:
    """Returns the normalized rule (upper case, no 'RRULE:' prefix) or raises ValidationError.

    Accepts only the contract's subset: FREQ (DAILY, WEEKLY, MONTHLY, YEARLY; required),
    INTERVAL (1..1000), BYDAY (MO,TU; numbered like 1MO or -1FR only for MONTHLY and YEARLY,
    at most 5 with BYMONTH), BYMONTHDAY (1..31, -31..-1; not with WEEKLY), BYMONTH (1..12),
    COUNT (1..1000) or UNTIL (YYYYMMDD or YYYYMMDDTHHMMSSZ), numbers in ASCII digits. A rule
    whose parts never meet on any date is invalid too.

    `stored`: the task's current rule. A value that normalizes to it is accepted even if it
    breaks the checks added since it was stored (ASCII digits, BYMONTHDAY with WEEKLY, a
    numbered BYDAY above 5 with BYMONTH), so a client sending an old task back unchanged
    (PUT) is not refused.
    """
    parts = _parts(value)
    _check(parts, new=False)
    normalized = _text(parts)
    if stored is None or normalized != _normalized(stored):
        _check(parts, new=True)
    _build(parts, _PROBE_START)  # whatever dateutil itself refuses is a 400 too
    if not _can_occur(parts):
        raise _invalid("it never produces a date (BYMONTH, BYMONTHDAY and BYDAY never meet).")
    return normalized


def _normalized(rule: str) -> str | None:
    try:
        return _text(_parts(rule))
    except ValidationError:
        return None


def same_series(a: str | None, b: str | None) -> bool:
    """Whether two rules describe the same series apart from COUNT and UNTIL.

    Compares meaning, not text: the order of the parts, INTERVAL=1 or none, leading zeros and
    a '+' sign, the order and repeats inside a list (BYDAY=TU,MO,MO is MO,TU). A change of only
    COUNT or UNTIL keeps the series (and its start, where COUNT counts from). None (no rule)
    is the same only as None; a rule that cannot be read is the same only as its own text.
    """
    if a is None or b is None:
        return a is b
    try:
        return _meaning(a) == _meaning(b)
    except ValidationError:
        return a == b


def _meaning(rule: str) -> tuple:
    parts = _parts(rule)
    _check(parts, new=False)
    numbers = {
        key: frozenset(int(item) for item in parts[key].split(","))
        for key in ("BYMONTH", "BYMONTHDAY")
        if key in parts
    }
    days = frozenset(
        (int(match["ordinal"] or 0), match["day"])
        for match in map(_BYDAY_ITEM.fullmatch, parts.get("BYDAY", "").split(","))
        if match
    )
    return (parts["FREQ"], int(parts.get("INTERVAL", "1")), days, sorted(numbers.items()))


def repeats(rule: str, start: date) -> bool:
    """Whether a series of this (valid) rule that starts at `start` has a later date, COUNT and
    UNTIL aside: every 4 years on 29 February from a year that is no leap year has none, and
    validate_rule cannot tell, since it depends on the start. The calendar ends in 9999: a
    series with no date left before its end does not repeat either. Costs what a completion
    does (see `_Series`)."""
    unbounded = {key: item for key, item in _parts(rule).items() if key not in ("COUNT", "UNTIL")}
    later = next_due_date(
        rule=_text(unbounded),
        series_start=start,
        current_due=start,
        today=start,
        due_time=None,
        tz_name="UTC",
    )
    return later is not None


def next_due_date(
    *,
    rule: str,
    series_start: date,
    current_due: date,
    today: date,
    due_time: time | None,
    tz_name: str,
) -> date | None:
    """The due date of the next occurrence, or None when COUNT or UNTIL is spent.

    The series starts at `series_start` (the first task's due date, which is its first occurrence
    and where COUNT counts from, even when it does not match the rule); the answer is its first
    occurrence strictly after the later of `current_due` and `today`, so an overdue task does
    not spawn copies that are overdue too. The calendar ends on 9999-12-31, and so does every
    series.

    A date UNTIL (YYYYMMDD) is the last date of the series. A UTC date-time UNTIL bounds the
    occurrence's start, inclusively (RFC 5545): with `due_time`, an occurrence is in the series
    when that wall-clock time in `tz_name` on its date is not after UNTIL; without one (an
    all-day task) when its date is not after UNTIL's date in `tz_name`.
    """
    parts = _parts(rule)
    _check(parts, new=False)  # a stored rule keeps evaluating
    threshold = max(current_due, today)
    until = date.max
    if "T" in parts.get("UNTIL", ""):
        until = _last_local_date(parts["UNTIL"], due_time, ZoneInfo(tz_name))
        if until is None:
            return None
    elif "UNTIL" in parts:
        until = datetime.strptime(parts["UNTIL"], "%Y%m%d").date()
    if series_start > threshold:
        # The series' start is still ahead (a copy whose due date was moved before it).
        return series_start if series_start <= until else None
    series = _Series(parts, series_start)
    if "COUNT" in parts:
        # The first task is occurrence 1 (RFC 5545 leaves a start off the rule undefined; the
        # task exists, so it counts), then the rule's dates after it.
        seen = 1 + series.count_after_start(threshold)
        if seen >= int(parts["COUNT"]):
            return None
    following = series.first_after(threshold)
    return following if following is not None and following <= until else None


def _last_local_date(until: str, due_time: time | None, tz: ZoneInfo) -> date | None:
    """The last local date whose occurrence starts at or before a UTC UNTIL; None if no date's does.

    Without `due_time` an occurrence is the whole day, so UNTIL's local date counts. With one, a
    wall-clock time the clocks skip or repeat on that date is read with fold=0, the offset before
    the change, as RFC 5545 (3.3.5) does: 02:30 on a spring-forward night in New York is 03:30
    EDT, and 01:30 on the fall-back night is the first 01:30 (EDT).
    """
    instant = datetime.strptime(until, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    try:
        last = instant.astimezone(tz).date()
        # Later wall-clock times on later dates are later instants, so stepping back from UNTIL's
        # own local date ends after a step or two. Comparing across zones never overflows.
        while due_time is not None and datetime.combine(last, due_time, tz) > instant:
            last -= timedelta(days=1)
    except OverflowError:  # UNTIL's local date is outside years 1..9999
        return date.max if instant.year == 9999 else None
    return last


def _can_occur(parts: dict[str, str]) -> bool:
    """Whether the rule's filters ever meet on a calendar date (e.g. not BYMONTH=2;BYMONTHDAY=30).

    Every kind of year occurs in the 400-year cycle, so a filter that no kind of year passes
    never does. A rule whose day comes from the series' start (MONTHLY, YEARLY or WEEKLY
    without BYDAY and BYMONTHDAY) is checked against the start by `repeats` instead.
    """
    filters = _filters(parts, None)
    return filters is None or any(_tables(filters))


# Filters, as dateutil applies them: (BYMONTH, BYMONTHDAY, plain BYDAY weekdays, numbered BYDAY
# (weekday, n), whether n counts within the year rather than within the month).
_Filters = tuple[
    tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[tuple[int, int], ...], bool
]
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _filters(parts: dict[str, str], start: date | None) -> _Filters | None:
    """The rule's day filters with dateutil's defaults from the start (RFC 5545 3.3.10): MONTHLY
    repeats on the start's day of the month, YEARLY on its day and month, WEEKLY on its weekday.
    None when a default is needed and `start` is None."""
    freq = parts["FREQ"]
    months = {int(item) for item in parts["BYMONTH"].split(",")} if "BYMONTH" in parts else set()
    monthdays = {int(item) for item in parts.get("BYMONTHDAY", "").split(",") if item}
    plain, numbered = set(), set()
    for item in parts.get("BYDAY", "").split(",") if "BYDAY" in parts else ():
        match = _BYDAY_ITEM.fullmatch(item)
        weekday = _WEEKDAYS.index(match["day"])
        if match["ordinal"] and freq in ("MONTHLY", "YEARLY"):
            numbered.add((weekday, int(match["ordinal"])))
        else:  # dateutil reads a number with WEEKLY or DAILY as a plain weekday
            plain.add(weekday)
    within_year = freq == "YEARLY" and not months
    if not (monthdays or plain or numbered) and freq != "DAILY":
        if start is None:
            return None
        if freq == "WEEKLY":
            plain = {start.weekday()}
        else:
            monthdays = {start.day}
            if freq == "YEARLY" and not months:
                months = {start.month}
    return (
        tuple(sorted(months)),
        tuple(sorted(monthdays)),
        tuple(sorted(plain)),
        tuple(sorted(numbered)),
        within_year,
    )


def _month_starts(leap: bool) -> list[int]:
    starts, day = [], 0
    for month, length in enumerate(_MONTH_DAYS):
        starts.append(day)
        day += length + (leap and month == 1)
    return starts


# Cache sizes bound a worker's memory whatever rules its users send (each distinct rule is an
# entry, refused ones too): a table entry is up to ~45 KB (14 × 366 days), a phase entry up to
# ~300 KB (14 Counters). A miss costs ~1-2 ms; the hits that matter are one series' completions.
@lru_cache(maxsize=128)
def _tables(filters: _Filters) -> tuple[tuple[int, ...], ...]:
    """For each kind of year (7 × leap + the weekday of 1 January), its days (0 = 1 January)
    that pass the filters, as dateutil's masks pass them: BYMONTH, then a plain weekday AND a
    numbered one when both are given (dateutil keeps both filters), then BYMONTHDAY."""
    months, monthdays, plain, numbered, within_year = filters
    tables = []
    for kind in range(14):
        leap, weekday = divmod(kind, 7)
        starts = _month_starts(bool(leap))
        lengths = [length + (leap and month == 1) for month, length in enumerate(_MONTH_DAYS)]
        chosen_months = months or range(1, 13)
        nth = None
        if numbered:
            if within_year:
                ranges = [(0, 364 + leap)]
            else:
                ranges = [
                    (starts[m - 1], starts[m - 1] + lengths[m - 1] - 1) for m in chosen_months
                ]
            nth = set()
            for first, last in ranges:
                for day, n in numbered:  # dateutil's nwdaymask
                    if n > 0:
                        i = first + (n - 1) * 7
                        i += (day - weekday - i) % 7
                    else:
                        i = last + (n + 1) * 7
                        i -= (weekday + i - day) % 7
                    if first <= i <= last:
                        nth.add(i)
        table = []
        for month in chosen_months:
            first, length = starts[month - 1], lengths[month - 1]
            days = range(1, length + 1)
            if monthdays:
                days = sorted(
                    {d if d > 0 else length + 1 + d for d in monthdays if abs(d) <= length}
                )
            for d in days:
                i = first + d - 1
                if (not plain or (weekday + i) % 7 in plain) and (nth is None or i in nth):
                    table.append(i)
        tables.append(tuple(table))
    return tuple(tables)


@lru_cache(maxsize=16)
def _phases(filters: _Filters, weekly: bool, modulus: int) -> tuple[Counter, ...]:
    """For each kind of year, how many of its days passing the filters fall on each phase: the
    day (DAILY) or the Monday of its week (WEEKLY) from 1 January, modulo the step in days."""
    return tuple(
        Counter((day - (kind % 7 + day) % 7 if weekly else day) % modulus for day in table)
        for kind, table in enumerate(_tables(filters))
    )


@lru_cache(maxsize=128)
def _per_month(filters: _Filters) -> tuple[tuple[int, ...], ...]:
    """For each kind of year, how many of its days passing the filters each month has."""
    result = []
    for kind, table in enumerate(_tables(filters)):
        starts, counts = _month_starts(kind >= 7), [0] * 12
        for day in table:
            counts[bisect_right(starts, day) - 1] += 1
        result.append(tuple(counts))
    return tuple(result)


@cache
def _years() -> tuple[list[int], list[int]]:
    """The ordinal of 1 January and the kind of each year 1..9999 (index: the year)."""
    ordinals, kinds = [0], [0]
    for year in range(1, _LAST_YEAR + 1):
        first = date(year, 1, 1)
        ordinals.append(first.toordinal())
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        kinds.append(7 * leap + first.weekday())
    return ordinals, kinds


class _Series:
    """The dates a rule gives from `start` (COUNT and UNTIL aside), as dateutil would yield them,
    computed a year at a time instead of a day (or week, or month) at a time.

    Why: dateutil tests every period from the series' start, so a rule whose filters rarely
    meet (FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=TH) costs seconds to count from year 4 to
    9999, and the COUNT path must count from the start. Here:

    - which days of a year pass the filters depends only on the kind of year (leap or not, and
      the weekday of 1 January): 14 tables (`_tables`), built once per rule;
    - the rule's step (INTERVAL days, weeks, months or years from the start) picks among them
      by arithmetic: how many days of a year are on the step is one look-up (`_phases`,
      `_per_month`), so counting costs one look-up per year, at most 9,999 of them;
    - the calendar repeats every 400 years (146,097 days, 20,871 weeks), so the per-year counts
      repeat every `period` years (the 400-year cycle and the step's common multiple): a longer
      span is counted as whole periods multiplied, and a series with no date within a period
      after a date has none at all.

    So a completion costs at most the tables (14 × 366 days) and twice min(span, 2 × period)
    look-ups: a few milliseconds whatever the rule and the dates (see the tests).
    """

    def __init__(self, parts: dict[str, str], start: date) -> None:
        self.freq = parts["FREQ"]
        self.interval = int(parts.get("INTERVAL", "1"))
        self.start = start
        self.filters = _filters(parts, start)
        self.tables = _tables(self.filters)
        self.totals = [len(table) for table in self.tables]
        if self.freq == "DAILY":
            anchor, modulus, cycle = start.toordinal(), self.interval, _CYCLE_DAYS
        elif self.freq == "WEEKLY":  # weeks start on Monday (WKST's default)
            anchor, modulus, cycle = (
                start.toordinal() - start.weekday(),
                7 * self.interval,
                _CYCLE_DAYS,
            )
        elif self.freq == "MONTHLY":
            anchor, modulus, cycle = 12 * start.year + start.month - 1, self.interval, 4800
        else:
            anchor, modulus, cycle = start.year, self.interval, _CYCLE_YEARS
        self.anchor, self.modulus = anchor, modulus
        self.period = _CYCLE_YEARS * (modulus // gcd(modulus, cycle))  # in years

    def _counts(self, first: int, end: int) -> list[int]:
        """How many dates of the series each year in [first, end) has."""
        ordinals, all_kinds = _years()
        kinds = all_kinds[first:end]
        anchor, modulus = self.anchor, self.modulus
        if self.interval == 1:
            return [self.totals[kind] for kind in kinds]
        if self.freq in ("DAILY", "WEEKLY"):
            phases = _phases(self.filters, self.freq == "WEEKLY", modulus)
            return [
                phases[kind].get((anchor - jan1) % modulus, 0)
                for jan1, kind in zip(ordinals[first:end], kinds, strict=True)
            ]
        if self.freq == "MONTHLY":
            per_month = _per_month(self.filters)
            return [
                sum(per_month[kind][(anchor - 12 * year) % modulus :: modulus])
                for year, kind in zip(range(first, end), kinds, strict=True)
            ]
        return [
            self.totals[kind] if (year - anchor) % modulus == 0 else 0
            for year, kind in zip(range(first, end), kinds, strict=True)
        ]

    def _dates(self, year: int) -> list[int]:
        """The ordinals of the series' dates in `year`, in order (the start's year: from 1 January)."""
        ordinals, kinds = _years()
        jan1, kind = ordinals[year], kinds[year]
        days = [jan1 + day for day in self.tables[kind]]
        anchor, modulus = self.anchor, self.modulus
        if self.interval == 1:
            return days
        if self.freq == "DAILY":
            return [day for day in days if (day - anchor) % modulus == 0]
        if self.freq == "WEEKLY":
            return [day for day in days if (day - (day + 6) % 7 - anchor) % modulus == 0]
        if self.freq == "MONTHLY":
            starts = _month_starts(kind >= 7)
            months = range((anchor - 12 * year) % modulus, 12, modulus)
            return [day for day in days if bisect_right(starts, day - jan1) - 1 in months]
        return days if (year - anchor) % modulus == 0 else []

    def _sum(self, first: int, end: int) -> int:
        """How many dates the years [first, end) have, whole periods counted once."""
        whole, rest = divmod(max(end - first, 0), self.period)
        if whole:
            return whole * sum(self._counts(first, first + self.period)) + sum(
                self._counts(first, first + rest)
            )
        return sum(self._counts(first, end))

    def count_after_start(self, until: date) -> int:
        """How many of the series' dates are after its start and not after `until`."""
        start, last = self.start.toordinal(), until.toordinal()
        if last <= start:
            return 0
        if self.start.year == until.year:
            return sum(start < day <= last for day in self._dates(until.year))
        return (
            sum(day > start for day in self._dates(self.start.year))
            + self._sum(self.start.year + 1, until.year)
            + sum(day <= last for day in self._dates(until.year))
        )

    def first_after(self, after: date) -> date | None:
        """The series' first date after `after` (not before its start), or None until 9999."""
        if not any(self.totals):
            return None
        threshold = after.toordinal()
        for day in self._dates(after.year):
            if day > threshold and day >= self.start.toordinal():
                return date.fromordinal(day)
        # The counts repeat every period: a period without a date means no date ever.
        year, last, size = after.year + 1, min(_LAST_YEAR, after.year + self.period), 4
        while year <= last:
            end = min(last + 1, year + size)
            for offset, count in enumerate(self._counts(year, end)):
                if count:
                    return date.fromordinal(self._dates(year + offset)[0])
            year, size = end, size * 4
        return None


def past_times_of_day(now: datetime) -> tuple[time, ...]:
    """The wall-clock times of `now`'s local date (`now` aware, in the user's zone) whose moment
    is before `now`, as flattened [start, end) pairs: a task due today at one of them is
    overdue. Most days that is (00:00, now's time). On a day the clocks change, a time they skip
    or repeat is read as UNTIL's are (`_last_local_date`, fold=0): 01:30 on New York's fall-back
    night is the first 01:30, past through the whole repeated hour; 02:30 on its spring-forward
    night is 03:30 EDT, not yet past at 03:10 while 03:05 is ((00:00, 02:10, 03:00, 03:10)).
    An end of `time.max` is the end of the day."""
    today, zone = now.date(), now.tzinfo
    first, last = datetime.combine(today, time.min, zone), datetime.combine(today, time.max, zone)
    # The second pass of the day's end too: Santiago's clocks go back at midnight, so 23:00 to
    # midnight is repeated, and both readings of 23:59 are needed to see it.
    if first.utcoffset() == last.utcoffset() == last.replace(fold=1).utcoffset():
        return (time.min, now.time())
    # The clocks change today: minute by minute (due times are whole minutes, and so are the
    # changes), each minute's times are past up to `now` on the clock of that minute's offset.
    utc_now = now.astimezone(UTC).replace(tzinfo=None)
    minute = timedelta(minutes=1)
    ranges: list[list[datetime]] = []
    start = datetime.combine(today, time.min)
    while start.date() == today:
        end = min(start + minute, utc_now + start.replace(tzinfo=zone).utcoffset())
        if end > start:
            if ranges and ranges[-1][1] == start:
                ranges[-1][1] = end
            else:
                ranges.append([start, end])
        start += minute
    return tuple(
        moment.time() if moment.date() == today else time.max for pair in ranges for moment in pair
    )


def today_in(tz_name: str, now: datetime | None = None) -> date:
    """The user's current local date; `now` (aware) defaults to django.utils.timezone.now()."""
    now = timezone.now() if now is None else now
    if timezone.is_naive(now):
        raise ValueError("now must be timezone-aware")
    return now.astimezone(ZoneInfo(tz_name)).date()
