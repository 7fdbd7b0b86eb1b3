"""RFC 5545 recurrence rules for tasks: the contract's subset, validated and evaluated on dates.

A task's rule is evaluated on calendar dates only: the series starts at the first task's due
date (`Task.recurrence_start`) and the caller copies `due_time` onto the next task, so the
wall-clock time survives DST changes by construction. Two things need the user's timezone:
"today" (`today_in`) and a UTC date-time UNTIL, which is turned into the last local date whose
occurrence (at `due_time`, or the whole day without one) is not after it (`_last_local_date`).

python-dateutil does the calendar arithmetic. Our own checks come first because dateutil is
lenient (it accepts DTSTART, BYHOUR, WKST, duplicate keys, lower case) and because some of its
failures are not ValueErrors; everything invalid leaves this module as a Django ValidationError.
"""

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, rrulestr
from django.core.exceptions import ValidationError
from django.utils import timezone

RULE_MAX_LENGTH = 500
MAX_INTERVAL = 1000
MAX_COUNT = 1000

_FREQUENCIES = {"DAILY": DAILY, "WEEKLY": WEEKLY, "MONTHLY": MONTHLY, "YEARLY": YEARLY}
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_KEYS = ("FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "COUNT", "UNTIL")
_POSITIVE = re.compile(r"\d{1,4}")
_SIGNED = re.compile(r"[+-]?\d{1,2}")
_BYDAY_ITEM = re.compile(r"(?P<ordinal>[+-]?\d{1,2})?(?P<day>MO|TU|WE|TH|FR|SA|SU)")
_UNTIL = re.compile(r"\d{8}(T\d{6}Z)?")
# Largest |n| of "the n-th weekday" inside the period BYDAY counts in (RFC 5545 3.3.10).
_MAX_ORDINAL = {"MONTHLY": 5, "YEARLY": 53}
# The Gregorian calendar repeats every 400 years: a probe over one cycle sees every
# combination of month, day of month and weekday there is.
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


def _check(parts: dict[str, str]) -> None:
    """Value checks dateutil would not make (ranges, ordinals, COUNT with UNTIL)."""
    freq = parts.get("FREQ")
    if freq is None:
        raise _invalid("FREQ is required.")
    if freq not in _FREQUENCIES:
        raise _invalid(f"FREQ must be one of {', '.join(_FREQUENCIES)}, not '{freq}'.")
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


def _text(parts: dict[str, str]) -> str:
    return ";".join(f"{key}={value}" for key, value in parts.items())


def _build(parts: dict[str, str], dtstart: datetime) -> rrule:
    text = _text(parts)
    try:
        # ignoretz: the series runs on naive dates; next_due_date makes a UTC UNTIL a date first.
        return rrulestr(text, dtstart=dtstart, ignoretz=True)
    except Exception as error:  # dateutil raises ValueError, KeyError, TypeError alike
        raise _invalid(str(error) or "it cannot be parsed.") from error


def _can_occur(parts: dict[str, str], start: date | None) -> bool:
    """Whether the rule's filters ever meet on a calendar date (e.g. not BYMONTH=2;BYMONTHDAY=30).

    dateutil looks for a matching date until the year 9999 without ever yielding (UNTIL is only
    checked on matches), which takes seconds for a DAILY rule; one 400-year cycle of a YEARLY or
    MONTHLY probe takes milliseconds. `start` adds the defaults dateutil derives from the first
    date: MONTHLY repeats on its day of the month, YEARLY on its day and month.
    """
    freq = parts["FREQ"]
    explicit_day = "BYDAY" in parts or "BYMONTHDAY" in parts
    probe = {key: parts[key] for key in ("BYDAY", "BYMONTHDAY", "BYMONTH") if key in parts}
    if not explicit_day:
        if freq in ("DAILY", "WEEKLY") or start is None:
            return True  # every month has days of every weekday
        probe["BYMONTHDAY"] = str(start.day)
        if freq == "YEARLY" and "BYMONTH" not in probe:
            probe["BYMONTH"] = str(start.month)
    probe_freq = "MONTHLY" if freq == "MONTHLY" else "YEARLY"  # BYDAY numbers count in these
    probe_rule = _build({"FREQ": probe_freq, **probe}, _PROBE_START)
    return probe_rule.after(_PROBE_START, inc=True) is not None


def validate_rule(value: str) -> str:
    """Returns the normalized rule (upper case, no 'RRULE:' prefix) or raises ValidationError.

    Accepts only the contract's subset: FREQ (DAILY, WEEKLY, MONTHLY, YEARLY; required),
    INTERVAL (1..1000), BYDAY (MO,TU; numbered like 1MO or -1FR only for MONTHLY and YEARLY),
    BYMONTHDAY (1..31, -31..-1), BYMONTH (1..12), COUNT (1..1000) or UNTIL (YYYYMMDD or
    YYYYMMDDTHHMMSSZ). A rule whose parts never meet on any date is invalid too.
    """
    parts = _parts(value)
    _check(parts)
    _build(parts, _PROBE_START)
    if not _can_occur(parts, None):
        raise _invalid("it never produces a date (BYMONTH, BYMONTHDAY and BYDAY never meet).")
    return _text(parts)


def repeats(rule: str, start: date) -> bool:
    """Whether a series of this (valid) rule that starts at `start` has a later date, COUNT and
    UNTIL aside: every 4 years on 29 February from a year that is no leap year has none, and
    validate_rule cannot tell, since it depends on the start. As costly as the completion that
    would otherwise find out: ~0.2 ms for a rule that repeats, up to ~150 ms (dateutil searching
    until 9999) for one that never does."""
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
    and where COUNT counts from); the answer is its first occurrence strictly after the later of
    `current_due` and `today`, so an overdue task does not spawn copies that are overdue too.

    A date UNTIL (YYYYMMDD) is the last date of the series. A UTC date-time UNTIL bounds the
    occurrence's start, inclusively (RFC 5545): with `due_time`, an occurrence is in the series
    when that wall-clock time in `tz_name` on its date is not after UNTIL; without one (an
    all-day task) when its date is not after UNTIL's date in `tz_name`.
    """
    parts = _parts(rule)
    _check(parts)
    threshold = max(current_due, today)
    if "T" in parts.get("UNTIL", ""):
        last = _last_local_date(parts["UNTIL"], due_time, ZoneInfo(tz_name))
        if last is None:
            return None
        parts["UNTIL"] = last.isoformat().replace("-", "")  # isoformat pads years below 1000
    # The series' start is the answer when it is still ahead (a copy whose due date was moved
    # before it); dateutil is not asked then, so UNTIL is checked here.
    start_ahead = series_start > threshold and (
        "UNTIL" not in parts or series_start.isoformat().replace("-", "") <= parts["UNTIL"]
    )
    if not _can_occur(parts, series_start) or not _phase_can_meet(parts, series_start):
        return series_start if start_ahead else None
    dtstart = datetime(series_start.year, series_start.month, series_start.day)
    if "COUNT" in parts:
        return _next_counted(parts, dtstart, threshold)
    parts, dtstart = _fast_forward(parts, dtstart, threshold)
    if dtstart.date() > threshold:
        return series_start if start_ahead else None
    occurrence = _build(parts, dtstart).after(datetime.combine(threshold, datetime.min.time()))
    return occurrence.date() if occurrence else None


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


def _next_counted(parts: dict[str, str], dtstart: datetime, threshold: date) -> date | None:
    # The first task is occurrence 1 even when its date does not match the rule (RFC 5545 leaves
    # that case undefined; the task exists, so it counts). At most COUNT (<= 1000) iterations.
    uncounted = {key: value for key, value in parts.items() if key != "COUNT"}
    count = int(parts["COUNT"])
    start = dtstart.date()
    if start > threshold:
        return start
    seen = 1
    occurrences = iter(_build(uncounted, dtstart))
    while seen < count:
        occurrence = next(occurrences, None)
        if occurrence is None:  # the calendar ends in 9999
            return None
        day = occurrence.date()
        if day == start:
            continue
        seen += 1
        if day > threshold:
            return day
    return None


def _fast_forward(
    parts: dict[str, str], dtstart: datetime, threshold: date
) -> tuple[dict[str, str], datetime]:
    """Moves a series' start by whole intervals to a year or so before `threshold`.

    Iterating a series from years ago costs one step per period (per day for DAILY), and every
    completion of a long-lived series paid for all the periods behind it. A start moved by whole
    intervals keeps the series' phase, so it yields the same dates after `threshold`: DAILY and
    WEEKLY move by whole days and weeks (same weekday); MONTHLY and YEARLY by whole months and
    years, to the first of a month, after the day (and month) dateutil would take from the
    original start are written into the rule.
    """
    freq = parts["FREQ"]
    interval = int(parts.get("INTERVAL", "1"))
    if freq in ("DAILY", "WEEKLY"):
        step = interval * (7 if freq == "WEEKLY" else 1)
        # Keep a margin of a year of steps so the search starts well before threshold.
        steps = ((threshold - dtstart.date()).days - 366) // step
        return parts, dtstart + timedelta(days=steps * step) if steps > 0 else dtstart
    step = interval * (12 if freq == "YEARLY" else 1)  # in months
    months_behind = (threshold.year - dtstart.year) * 12 + threshold.month - dtstart.month
    steps = (months_behind - 13) // step  # a year's margin, and the start's month
    if steps <= 0:
        return parts, dtstart
    if "BYDAY" not in parts and "BYMONTHDAY" not in parts:
        # dateutil's defaults (RFC 5545 3.3.10): the start's day, and for YEARLY its month.
        parts = {**parts, "BYMONTHDAY": str(dtstart.day)}
        if freq == "YEARLY" and "BYMONTH" not in parts:
            parts["BYMONTH"] = str(dtstart.month)
    year, month = divmod(dtstart.month - 1 + steps * step, 12)
    return parts, datetime(dtstart.year + year, month + 1, 1)


def _phase_can_meet(parts: dict[str, str], series_start: date) -> bool:
    """False for a DAILY rule whose interval is whole weeks on a weekday BYDAY excludes.

    FREQ=DAILY;INTERVAL=7;BYDAY=MO starting on a Tuesday only ever lands on Tuesdays; dateutil
    would search until the year 9999 for a Monday.
    """
    if parts["FREQ"] != "DAILY" or "BYDAY" not in parts:
        return True
    if int(parts.get("INTERVAL", "1")) % 7:
        return True
    return _WEEKDAYS[series_start.weekday()] in parts["BYDAY"].split(",")


def today_in(tz_name: str, now: datetime | None = None) -> date:
    """The user's current local date; `now` (aware) defaults to django.utils.timezone.now()."""
    now = timezone.now() if now is None else now
    if timezone.is_naive(now):
        raise ValueError("now must be timezone-aware")
    return now.astimezone(ZoneInfo(tz_name)).date()
