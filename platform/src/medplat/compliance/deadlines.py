"""Each country's deadline for answering a data-subject request, counted in working days with national holidays.

Working days are Monday to Friday minus the public holidays (and the substituted days off) the `holidays`
package lists for the country. Working Saturdays that a government decree moves into a holiday week are not
in the package, so such a Saturday counts as a day off here: a deadline can come out one day later than a
lawyer's count in those weeks (docs/compliance.md).
"""

from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

Unit = Literal["working", "calendar"]
KINDS = ("access", "rectification", "erasure")


@dataclass(frozen=True, slots=True)
class Rule:
    """How long a country's law gives the operator for one kind of request."""

    country: str
    kind: str
    days: int
    unit: Unit
    extension: int
    """Further days (same unit) allowed after a reasoned notice to the person; 0 when the law allows none."""
    source: str
    verified: bool
    """False where the rule is our reading without the statute's text at hand: counsel must confirm it."""


RULES: dict[tuple[str, str], Rule] = {
    (rule.country, rule.kind): rule
    for rule in (
        Rule("RU", "access", 10, "working", 5, "152-FZ art. 14 part 3 and art. 20 parts 1-2 (as amended by 266-FZ, 1 Sep 2022)", True),
        Rule("RU", "rectification", 7, "working", 0, "152-FZ art. 20 part 3 (changes within 7 working days of the proof)", True),
        Rule(
            "RU", "erasure", 7, "working", 0,
            "152-FZ art. 20 part 3 (destruction within 7 working days); art. 21 part 5 allows 30 days after consent is withdrawn: "
            "the stricter applies", True,
        ),
        Rule("KZ", "access", 3, "working", 0, "Law 94-V (information about the data held within three working days of the request)", True),
        Rule("KZ", "rectification", 3, "working", 0, "Law 94-V: assumed equal to the access deadline", False),
        Rule("KZ", "erasure", 3, "working", 0, "Law 94-V: assumed equal to the access deadline", False),
        Rule("UZ", "access", 10, "working", 0, "Law ZRU-547: placeholder equal to RU's, not found in the sources at hand", False),
        Rule("UZ", "rectification", 10, "working", 0, "Law ZRU-547: placeholder, see access", False),
        Rule("UZ", "erasure", 10, "working", 0, "Law ZRU-547: placeholder, see access", False),
    )
}  # fmt: skip


class UnknownRule(LookupError):
    pass


def rule_for(country: str, kind: str) -> Rule:
    try:
        return RULES[country, kind]
    except KeyError:
        raise UnknownRule(f"no data-subject request deadline is declared for {country} {kind}") from None


@functools.cache
def _holidays(country: str, year: int) -> frozenset[datetime.date]:
    return frozenset(holidays.country_holidays(country, years=year))


def is_working_day(country: str, day: datetime.date) -> bool:
    return day.weekday() < 5 and day not in _holidays(country, day.year)


def add_days(country: str, start: datetime.date, days: int, unit: Unit) -> datetime.date:
    """The day `days` days after `start` (which does not count), working or calendar."""
    if unit == "calendar":
        return start + datetime.timedelta(days=days)
    day = start
    left = days
    while left > 0:
        day += datetime.timedelta(days=1)
        if is_working_day(country, day):
            left -= 1
    return day


def working_days_between(country: str, start: datetime.date, end: datetime.date) -> int:
    """Working days after `start` up to and including `end` (negative when `end` is before `start`)."""
    if end < start:
        return -working_days_between(country, end, start)
    return sum(1 for n in range(1, (end - start).days + 1) if is_working_day(country, start + datetime.timedelta(days=n)))


def local_date(moment: datetime.datetime, timezone: str) -> datetime.date:
    return moment.astimezone(ZoneInfo(timezone)).date()


def due_on(country: str, kind: str, requested_at: datetime.datetime, timezone: str) -> datetime.date:
    """The last day to answer a request received at `requested_at` (counted from the node's local date)."""
    rule = rule_for(country, kind)
    return add_days(country, local_date(requested_at, timezone), rule.days, rule.unit)


def extended_due_on(country: str, kind: str, due: datetime.date) -> datetime.date | None:
    """The deadline after the law's extension, or None where the law allows none."""
    rule = rule_for(country, kind)
    return add_days(country, due, rule.extension, rule.unit) if rule.extension else None
