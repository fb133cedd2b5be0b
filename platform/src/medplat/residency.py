"""Residency declarations: every mapped class says where its rows may live and what kind of data they hold.

Residency holds only when every model declares it and the build fails when one does not; the checks here are
run by the test suite (and later by the residency scanner) over every mapper of the node.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table
from sqlalchemy.orm import Mapper


class Residency(enum.StrEnum):
    """Where a table's rows may go."""

    PERSONAL = "personal"
    """Personal data of the node's own people: never leaves the node."""
    NODE_LOCAL = "node_local"
    """Not personal, but never leaves the node either (queues, outbox, audit, sessions)."""
    SHARED = "shared"
    """Shared content: may be replicated to other nodes, subject to policy."""


class DataCategory(enum.StrEnum):
    """What kind of data a table holds; the data map and the compliance reports are built from these."""

    IDENTITY = "identity"
    """Who a person is: names, contacts, government identifiers, date of birth."""
    PROFESSIONAL = "professional"
    """A doctor's professional profile: diplomas, specializations, workplaces."""
    HEALTH = "health"
    """Special-category data: clinical cases, even anonymised."""
    CONSENT = "consent"
    """Consents given by a person, per purpose."""
    CREDENTIAL = "credential"
    """Sign-in secrets and tokens of a person."""
    CONTENT = "content"
    """Editorial content meant for doctors: articles, courses, events, product notes."""
    MEDIA = "media"
    """Metadata of files in the object store."""
    FEDERATION = "federation"
    """Sync protocol state: outbox, inbox, channels, receipts, trust."""
    AUDIT = "audit"
    """The node's tamper-evident audit log and its checkpoints."""
    OPERATIONAL = "operational"
    """Everything else the node needs to run and that describes no person."""


class LegalBasis(enum.StrEnum):
    """Why the node may process a table's personal data (GDPR art. 6(1) / 152-FZ art. 6 part 1 / 94-V art. 7 / ZRU-547 art. 25)."""

    CONSENT = "consent"
    """The person's consent for the purpose (152-FZ art. 6 p. 1(1); GDPR 6(1)(a))."""
    CONTRACT = "contract"
    """Needed to perform the service the person signed up for (152-FZ art. 6 p. 1(5); GDPR 6(1)(b))."""
    LEGAL_OBLIGATION = "legal_obligation"
    """Required by law, e.g. evidence of a data-subject request (152-FZ art. 6 p. 1(2); GDPR 6(1)(c))."""
    LEGITIMATE_INTEREST = "legitimate_interest"
    """The operator's legitimate interest, e.g. security of sign-in (152-FZ art. 6 p. 1(7); GDPR 6(1)(f))."""
    NOT_PERSONAL = "not_personal"
    """The table holds no personal data: no legal basis is needed."""


@dataclass(frozen=True, slots=True)
class Retention:
    """How long rows are kept: a rule in words for the data map, and a fixed period in days when there is one."""

    rule: str
    days: int | None = None

    def __str__(self) -> str:
        return self.rule


OPERATIONAL_RETENTION = Retention("as long as the node needs it to operate; holds no person")
"""The default retention of tables that are not PERSONAL."""


SCHEMAS_BY_RESIDENCY: dict[Residency, frozenset[str]] = {
    Residency.PERSONAL: frozenset({"personal"}),
    Residency.SHARED: frozenset({"shared"}),
    Residency.NODE_LOCAL: frozenset({"federation", "audit", "node"}),
}
"""The PostgreSQL schemas mirror the residency classes; a table may live only in a schema of its class."""

ALL_SCHEMAS: tuple[str, ...] = ("personal", "shared", "federation", "audit", "node")


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken residency rule, with the mapped class or table it concerns."""

    subject: str
    problem: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.problem}"


def declared_residency(cls: type) -> Residency | None:
    value = cls.__dict__.get("__residency__")
    return value if isinstance(value, Residency) else None


def declared_category(cls: type) -> DataCategory | None:
    value = cls.__dict__.get("__data_category__")
    return value if isinstance(value, DataCategory) else None


def declared_legal_basis(cls: type) -> LegalBasis | None:
    """The class's own `__legal_basis__`; a table that is not PERSONAL defaults to NOT_PERSONAL."""
    value = cls.__dict__.get("__legal_basis__")
    if value is None and declared_residency(cls) not in (Residency.PERSONAL, None):
        return LegalBasis.NOT_PERSONAL
    return value if isinstance(value, LegalBasis) else None


def declared_retention(cls: type) -> Retention | None:
    """The class's own `__retention__`; a table that is not PERSONAL defaults to OPERATIONAL_RETENTION."""
    value = cls.__dict__.get("__retention__")
    if value is None and declared_residency(cls) not in (Residency.PERSONAL, None):
        return OPERATIONAL_RETENTION
    return value if isinstance(value, Retention) else None


def check_processing(mappers: Iterable[Mapper[object]]) -> list[Violation]:
    """Every PERSONAL class declares its own `__legal_basis__` and `__retention__` (the data map prints them).

    Classes that are not PERSONAL may omit both (NOT_PERSONAL, OPERATIONAL_RETENTION); a PERSONAL one may not
    claim NOT_PERSONAL.
    """
    violations: list[Violation] = []
    for mapper in mappers:
        cls = mapper.class_
        name = f"{cls.__module__}.{cls.__qualname__}"
        basis = declared_legal_basis(cls)
        personal = declared_residency(cls) is Residency.PERSONAL
        if basis is None:
            violations.append(Violation(name, "declares no valid __legal_basis__ (a LegalBasis)"))
        elif personal and basis is LegalBasis.NOT_PERSONAL:
            violations.append(Violation(name, "is PERSONAL but declares the legal basis NOT_PERSONAL"))
        if declared_retention(cls) is None:
            violations.append(Violation(name, "declares no valid __retention__ (a Retention)"))
    return violations


def _table(mapper: Mapper[object]) -> Table:
    return cast("Table", mapper.local_table)


def check_mappers(mappers: Iterable[Mapper[object]]) -> list[Violation]:
    """Every rule of the residency model that can be checked from the code alone.

    A class must declare `__residency__` and `__data_category__` itself (inheritance does not count: a
    subclass of a personal model is not silently personal), with known values, and its table must sit in
    a schema of its class. No SHARED table may hold a foreign key to a PERSONAL one: shared rows travel to
    other nodes and must never point at a person.
    """
    violations: list[Violation] = []
    residency_by_table: dict[str, Residency] = {}
    mapper_list = list(mappers)
    for mapper in mapper_list:
        cls = mapper.class_
        name = f"{cls.__module__}.{cls.__qualname__}"
        raw_residency = cls.__dict__.get("__residency__")
        raw_category = cls.__dict__.get("__data_category__")
        residency = declared_residency(cls)
        if raw_residency is None:
            violations.append(Violation(name, "declares no __residency__"))
        elif residency is None:
            violations.append(Violation(name, f"declares an unknown residency {raw_residency!r}"))
        if raw_category is None:
            violations.append(Violation(name, "declares no __data_category__"))
        elif declared_category(cls) is None:
            violations.append(Violation(name, f"declares an unknown data category {raw_category!r}"))
        table = _table(mapper)
        if residency is None:
            continue
        schema = getattr(table, "schema", None)
        if schema not in SCHEMAS_BY_RESIDENCY[residency]:
            allowed = ", ".join(sorted(SCHEMAS_BY_RESIDENCY[residency]))
            violations.append(
                Violation(
                    name,
                    f"is {residency.name} but its table is in schema {schema!r} (allowed: {allowed})",
                )
            )
        residency_by_table[table.fullname] = residency
    for mapper in mapper_list:
        table = _table(mapper)
        if residency_by_table.get(table.fullname) is not Residency.SHARED:
            continue
        for fk in table.foreign_keys:
            target = fk.column.table.fullname
            if residency_by_table.get(target) is Residency.PERSONAL:
                violations.append(
                    Violation(
                        table.fullname,
                        f"SHARED table has a foreign key {fk.parent.name} -> {fk.target_fullname} to a PERSONAL table",
                    )
                )
    return violations


def tables_by_residency(
    mappers: Iterable[Mapper[object]],
) -> Iterator[tuple[str, Residency, DataCategory]]:
    """(table full name, residency, category) for every declared mapper, for the data map."""
    for mapper in mappers:
        residency = declared_residency(mapper.class_)
        category = declared_category(mapper.class_)
        if residency is not None and category is not None:
            yield _table(mapper).fullname, residency, category
