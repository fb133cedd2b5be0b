"""Small-number suppression of the director's counts: every small count is withheld, counts of k or more are
exact unless withheld to protect another, and no withheld count can be recovered from the totals shown."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medplat.domain.director.controllers import EventStats, event_stats, tabulate
from medplat.domain.director.suppression import Suppressed, published, suppress


def compositions(total: int, parts: int) -> Iterator[tuple[int, ...]]:
    """Every way to write `total` as `parts` counts of at least 1 (a withheld count is never 0: zeros are shown)."""
    if parts == 0:
        if total == 0:
            yield ()
        return
    for first in range(1, total - parts + 2):
        for rest in compositions(total - first, parts - 1):
            yield (first, *rest)


def recoverable(shown: Mapping[str, int | None], total: int) -> dict[str, set[int]]:
    """What a reader can tell about each withheld (null) count from the shown ones and the group's total: the
    set of values it can take. A set of one value means the count was recovered."""
    withheld = [key for key, n in shown.items() if n is None]
    rest = total - sum(n for n in shown.values() if n is not None)
    values: dict[str, set[int]] = {key: set() for key in withheld}
    for assignment in compositions(rest, len(withheld)):
        for key, n in zip(withheld, assignment, strict=True):
            values[key].add(n)
    return values


@pytest.mark.parametrize(
    ("cells", "threshold", "expected"),
    [
        ({"a": 12, "b": 9, "c": 7}, 5, Suppressed(frozenset(), False)),  # nothing small: all exact
        ({"a": 12, "b": 9, "c": 3}, 5, Suppressed(frozenset({"c", "b"}), False)),  # the next smallest goes with it
        ({"a": 12, "b": 2, "c": 3}, 5, Suppressed(frozenset({"b", "c"}), False)),  # two small ones, together 5: enough
        ({"a": 12, "b": 1, "c": 2}, 5, Suppressed(frozenset({"a", "b", "c"}), False)),  # together 3 < 5: one more
        ({"a": 9, "b": 1, "c": 1, "d": 1, "e": 1, "f": 1}, 5, Suppressed(frozenset("abcdef"), False)),  # five 1s: not alone
        ({"a": 1, "b": 1, "c": 1, "d": 1, "e": 1}, 5, Suppressed(frozenset("abcde"), True)),  # nothing left: the total goes
        ({"a": 7, "b": 0, "c": 4}, 5, Suppressed(frozenset({"a", "c"}), False)),  # a zero is shown and protects nothing
        ({"a": 4}, 5, Suppressed(frozenset({"a"}), True)),
        ({"a": 1, "b": 1}, 2, Suppressed(frozenset({"a", "b"}), True)),  # k = 2: two 1s would still be known
        ({"a": 2, "b": 1, "c": 6}, 3, Suppressed(frozenset({"a", "b"}), False)),  # the region's own k
        ({"x": 6, "a": 6, "b": 1}, 5, Suppressed(frozenset({"a", "b"}), False)),  # ties broken by key
    ],
)
def test_the_rule_on_examples(cells: dict[str, int], threshold: int, expected: Suppressed) -> None:
    assert suppress(cells, threshold) == expected


@given(
    cells=st.dictionaries(st.sampled_from("abcde"), st.integers(min_value=0, max_value=14), min_size=1),
    threshold=st.integers(min_value=2, max_value=10),
)
def test_no_withheld_count_can_be_recovered_from_the_total(cells: dict[str, int], threshold: int) -> None:
    result = suppress(cells, threshold)
    shown = published(cells, result.cells)
    assert all(shown[key] is None for key, n in cells.items() if 0 < n < threshold)  # primary
    assert all(n == 0 or n >= threshold for n in shown.values() if n is not None)
    if result.total:  # the total is withheld too: nothing to subtract from, and every count is withheld
        assert all(n is None for key, n in shown.items() if cells[key])
        return
    for key, values in recoverable(shown, sum(cells.values())).items():
        assert cells[key] in values
        assert len(values) > 1, f"{key} = {cells[key]} recoverable from {shown} and total {sum(cells.values())}"


def test_the_doctors_total_is_exact_when_safe_and_the_statuses_add_up_to_it() -> None:
    stats = tabulate(
        "kz", 5, by_status={"unverified": 9, "pending": 2, "verified": 14}, by_specialization={"dermatology": 25}, cases={}, events=[]
    )
    assert (stats.doctors_total, stats.doctors_by_verification_status) == (25, {"unverified": None, "pending": None, "verified": 14})
    assert recoverable(stats.doctors_by_verification_status, 25) == {"unverified": set(range(1, 11)), "pending": set(range(1, 11))}


def test_a_withheld_total_takes_the_statuses_with_it() -> None:
    # six doctors with one specialization each, none shared: every specialization is 1, and if each doctor has
    # one the total says so; the total is withheld, and the statuses, which would add up to it, with it
    stats = tabulate("kz", 5, by_status={"unverified": 6}, by_specialization={s: 1 for s in "abcdef"}, cases={}, events=[])
    assert stats.doctors_total is None
    assert stats.doctors_by_verification_status == {"unverified": None}
    assert set(stats.doctors_by_specialization.values()) == {None}


@pytest.mark.parametrize(
    ("registered", "cancelled", "attended", "expected"),
    [
        (20, 7, 12, (20, 7, 12)),
        (20, 3, 12, (20, None, 12)),
        (20, 0, 17, (20, 0, None)),  # 3 did not come: the attended would tell it
        (20, 0, 20, (20, 0, 20)),  # everybody came: a zero absent is shown
        (6, 0, 1, (6, 0, None)),
        (4, 0, 0, (None, 0, 0)),
        (2, 9, 1, (None, 9, None)),
    ],
)
def test_an_event_withholds_few_attendees_and_few_absentees(
    registered: int, cancelled: int, attended: int, expected: tuple[int | None, int | None, int | None]
) -> None:
    event_id = uuid.uuid4()
    row = SimpleNamespace(id=event_id, title="Congress", status="published", registered=registered, cancelled=cancelled, attended=attended)
    assert event_stats(row, 5) == EventStats(event_id, "Congress", "published", *expected)
    shown = {"attended": expected[2], "absent": None}
    if expected[0] is not None and expected[2] is None:
        assert len(recoverable(shown, registered)["attended"]) > 1
