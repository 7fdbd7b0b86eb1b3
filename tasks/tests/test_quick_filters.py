"""Review 39c: the filtered list reads its plain, valid parameters without django-filter's
FilterSet and form (filters.quick_filter_values), and leaves every other case to TaskFilter.

What must hold: whenever quick_filter_values() answers, TaskFilter's form is valid and cleans
the parameters to the very same values (so the same criteria, SQL, answers and ETags); when
TaskFilter finds an error, quick_filter_values() never answers (so every 400 stays its words);
the benchmark's five filtered URLs take the quick way; and the answers are byte for byte those
of the FilterSet's way. These tests fail on main before the change (no quick_filter_values)."""

import itertools
import random
from urllib.parse import quote

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext

from tasks import fast_read
from tasks.fast_read import Requester
from tasks.filters import (
    MAX_TAG_FILTERS,
    SEARCH_MAX_LENGTH,
    TaskFilter,
    filter_criteria,
    quick_filter_values,
)
from tasks.models import TAG_NAME_MAX_LENGTH, Task

pytestmark = pytest.mark.django_db

# bench/wrk/scenario.lua's FILTERED: the `list filtered` scenario.
BENCH_FILTERED = [
    "completed=false&priority=high,medium&ordering=due_date",
    "search=report&ordering=-priority",
    "tag=home&has_due=true&ordering=due_date,-priority",
    "completed=false&search=meeting&ordering=-updated_at",
    "priority=high&overdue=true&ordering=title",
]

# Values each parameter may be given: valid ones, and what is almost valid.
VALUES = {
    "completed": ["true", "false", "True", "1", "", " true", "false ", "yes"],
    "overdue": ["true", "false", "TRUE", "", "0"],
    "has_due": ["true", "false", "", "no"],
    "priority": [
        "high",
        "high,medium",
        "none,low,medium,high",
        "high,high",
        "High",
        "high,",
        ",high",
        "high, low",
        " high",
        "urgent",
        "",
        ",",
    ],
    "ordering": [
        "title",
        "-title",
        "due_date,-priority",
        "position",
        "-position,created_at",
        "title,title",
        "-updated_at",
        "Title",
        "title,",
        "title, -priority",
        "--title",
        "-",
        "id",
        "",
    ],
    "search": [
        "report",
        "  report  ",
        "pay ren",
        "",
        "   ",
        "!!!",
        "a\x00b",
        "é" * SEARCH_MAX_LENGTH,
        " " + "a" * SEARCH_MAX_LENGTH + " ",
        "a" * (SEARCH_MAX_LENGTH + 1),
        "\u2003report\u2003",
        "\u200breport",
    ],
    "tag": [
        "home",
        " home ",
        "",
        " ",
        "\u200b",
        "a\x00",
        "e\u0301",
        "x" * TAG_NAME_MAX_LENGTH,
        "x" * (TAG_NAME_MAX_LENGTH + 1),
        "e\u0301" * TAG_NAME_MAX_LENGTH,
    ],
    "limit": ["10", "abc", ""],
    "offset": ["0", "-1"],
    # Not read quickly: TaskFilter's always.
    "due_after": ["2026-01-01", "2026-1-1"],
    "list": ["inbox"],
    "parent": ["none"],
    "updated_since": ["2026-01-01T00:00:00Z"],
    "format": ["json"],
    "unknown": ["x"],
}


def form_values(user, query: QueryDict):
    """TaskFilter's cleaned values, or None when its form finds an error."""
    filters = TaskFilter(query, Task.objects.none(), request=Requester(user))
    return filters.form.cleaned_data if filters.is_valid() else None


def assert_quick_is_the_forms(user, query: QueryDict) -> bool:
    quick = quick_filter_values(query)
    if quick is None:
        return False
    form = form_values(user, query)
    assert form is not None, f"quick answered an invalid {query.urlencode()!r}"
    assert quick == form, query.urlencode()
    assert list(quick) == list(form), query.urlencode()  # the same order of criteria too
    return True


def test_each_value_alone_is_read_as_the_form_reads_it(user):
    quick = 0
    for name, values in VALUES.items():
        for value in values:
            quick += assert_quick_is_the_forms(user, QueryDict(f"{name}={quote(value)}"))
    assert quick > 30  # most valid values are read quickly


def test_repeated_and_combined_parameters(user):
    cases = [
        "completed=true&completed=true",
        "completed=true&completed=false",
        "search=a&search=b",
        "ordering=title&ordering=title",
        "priority=high&priority=low",
        "limit=5&limit=5",
        "offset=1&offset=2",
        "tag=a&tag=b",
        "tag=a&tag=a",
        "tag=a&tag=",
        "tag=&tag=a",
        "&".join(f"tag=t{n}" for n in range(MAX_TAG_FILTERS)),
        "&".join(f"tag=t{n}" for n in range(MAX_TAG_FILTERS + 1)),
        "search=report&tag=home&completed=false&priority=low&ordering=-title&limit=3",
        "ordering=title&search=x&completed=true",  # the query's order is not the form's
    ]
    for case in cases:
        assert_quick_is_the_forms(user, QueryDict(case))


def test_random_mixes_of_parameters(user):
    generator = random.Random(39)
    names = list(VALUES)
    for _ in range(400):
        chosen = generator.sample(names, generator.randint(1, 4))
        if generator.random() < 0.2:
            chosen.append(generator.choice(names))  # one given twice
        query = "&".join(f"{name}={quote(generator.choice(VALUES[name]))}" for name in chosen)
        assert_quick_is_the_forms(user, QueryDict(query))


def test_every_error_is_left_to_the_form(user):
    """No quick answer where the form finds an error: every 400 keeps TaskFilter's words."""
    for name, values in VALUES.items():
        for first, second in itertools.product(values, repeat=2):
            query = QueryDict(f"{name}={quote(first)}&{name}={quote(second)}")
            if form_values(user, query) is None:
                assert quick_filter_values(query) is None, query.urlencode()


def test_the_benchmarks_filtered_urls_are_read_quickly(user):
    for query in BENCH_FILTERED:
        assert assert_quick_is_the_forms(user, QueryDict(query)), query


@pytest.mark.parametrize("query", BENCH_FILTERED)
def test_the_benchmarks_filtered_lists_build_no_filterset(api_client, variety, monkeypatch, query):
    def refused(*args, **kwargs):
        raise AssertionError("a FilterSet was built")

    monkeypatch.setattr(fast_read, "TaskFilter", refused)
    assert api_client.get(f"/api/v1/tasks/?{query}").status_code == 200


QUERIES = [
    *BENCH_FILTERED,
    "search=rent",
    "search=%20%20pay%20ren%20&completed=false&ordering=-title",
    "search=!!!",
    "search=",
    "tag=money&tag=URGENT",
    "tag=nope",
    "tag=%20money%20",
    "tag=money&search=rent&limit=1",
    "priority=high,medium,high&ordering=-priority,title",
    "overdue=false&ordering=-due_date",
    "has_due=false&limit=1",
    "completed=false&offset=10",
    "ordering=title,title",
]


@pytest.mark.parametrize("query", QUERIES)
def test_the_quick_answers_are_the_filtersets_byte_for_byte(
    api_client, variety, monkeypatch, query
):
    quick = api_client.get(f"/api/v1/tasks/?{query}")
    with CaptureQueriesContext(connection) as quick_queries:
        api_client.get(f"/api/v1/tasks/?{query}")
    monkeypatch.setattr(fast_read, "quick_filter_values", lambda params: None)
    through_the_form = api_client.get(f"/api/v1/tasks/?{query}")
    with CaptureQueriesContext(connection) as form_queries:
        api_client.get(f"/api/v1/tasks/?{query}")

    assert quick.status_code == through_the_form.status_code == 200
    assert quick.content == through_the_form.content
    assert quick.get("ETag") == through_the_form.get("ETag")
    # The same statements in the same order (tags, tsquery, count, page): no query more.
    assert [q["sql"] for q in quick_queries] == [q["sql"] for q in form_queries]


def test_filter_criteria_is_what_the_filterset_gives(user):
    query = QueryDict("completed=false&priority=high,medium&ordering=due_date")
    filters = TaskFilter(query, Task.objects.none(), request=Requester(user))
    assert filters.is_valid()
    assert filters.criteria() == filter_criteria(quick_filter_values(query), user)


# Review 39f: quick_filter_values() restates what TaskFilter's fields refuse (the booleans'
# strings, the names of priorities and orderings, a search's strip, length and null
# character, a tag name's). A rule added to a field (a character class refused, a value
# cleaned otherwise) that these restatements miss would make the quick way answer a 200 where
# TaskFilter answers the 400: no test of fixed VALUES sees it unless one of them breaks the
# new rule. So each parameter is tried with every character of the classes a rule is likely
# to be about, alone, around and inside a valid value.
def _characters() -> list[str]:
    """Latin-1 and its extension, every control, format, space and separator character of the
    BMP, and every fifth of its marks and punctuation."""
    import unicodedata

    every = {"Cc", "Cf", "Zs", "Zl", "Zp"}
    some = {"Mn", "Me", "Sk", "Pd", "Po"}
    picked, sampled = [], 0
    for code in range(0x10000):
        character = chr(code)
        category = unicodedata.category(character)
        if code < 0x250 or category in every:
            picked.append(character)
        elif category in some:
            sampled += 1
            if sampled % 5 == 0:
                picked.append(character)
    return picked


QUICK_VALID = {
    "completed": "true",
    "overdue": "false",
    "has_due": "true",
    "priority": "high,low",
    "ordering": "-due_date,title",
    "search": "pay rent",
    "tag": "home",
}


def test_every_character_in_a_quick_value_is_read_as_the_form_reads_it(user):
    checked = 0
    for name, valid in QUICK_VALID.items():
        for character in _characters():
            middle = len(valid) // 2
            for value in (
                character,
                character + valid,
                valid + character,
                valid[:middle] + character + valid[middle:],
            ):
                query = QueryDict(mutable=True)
                query.setlist(name, [value])
                checked += assert_quick_is_the_forms(user, query)
    assert checked > 1000


def test_the_fields_quick_filter_values_restates_are_as_it_knows_them():
    """A tripwire: quick_filter_values() mirrors these fields' rules. When one changes (its
    class, choices, length, strip, validators), change quick_filter_values() with it, then the
    expected values here. (A rule inside a field's code: the test above.)"""
    form = TaskFilter(QueryDict("&".join(f"{n}=x" for n in QUICK_VALID)), Task.objects.none())
    seen = {}
    for name in QUICK_VALID:
        field = form.form.fields[name]
        seen[name] = (
            type(field).__name__,
            sorted(str(key) for key, _ in getattr(field, "choices", [])),
            getattr(field, "max_length", None),
            getattr(field, "strip", None),
            sorted(type(validator).__name__ for validator in field.validators),
        )
    assert seen == EXPECTED_FIELDS


EXPECTED_FIELDS: dict = {
    "completed": ("TrueOrFalseFormField", ["false", "true"], None, None, []),
    "has_due": ("TrueOrFalseFormField", ["false", "true"], None, None, []),
    "ordering": (
        "ChoiceExactField",
        [
            "",
            "-created_at",
            "-due_date",
            "-position",
            "-priority",
            "-title",
            "-updated_at",
            "created_at",
            "due_date",
            "position",
            "priority",
            "title",
            "updated_at",
        ],
        None,
        None,
        [],
    ),
    "overdue": ("TrueOrFalseFormField", ["false", "true"], None, None, []),
    "priority": ("ChoiceInField", ["", "high", "low", "medium", "none"], None, None, []),
    "search": (
        "MaxLengthCharFormField",
        [],
        200,
        True,
        ["MaxLengthValidator", "ProhibitNullCharactersValidator"],
    ),
    "tag": ("TagNamesFormField", [], None, None, []),
}
