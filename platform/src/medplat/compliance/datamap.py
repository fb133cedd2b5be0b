"""The data map: every table, column, bucket and key prefix of the node with what it holds and where it lives.

Generated from the code's own declarations (the mapped classes' `__residency__`, `__data_category__`,
`__legal_basis__` and `__retention__`, and medplat.storage.PREFIXES), plus the live storage location: the
PostgreSQL cluster's system identifier, the database and schema, the buckets and the S3 endpoint. Nothing here
is maintained by hand; a table or column the code does not declare is a finding of the residency scanner.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from advanced_alchemy.types import EncryptedString
from sqlalchemy import Table, text
from sqlalchemy.orm import Mapper, Session

from medplat.config import Settings
from medplat.residency import (
    OPERATIONAL_RETENTION,
    DataCategory,
    LegalBasis,
    Residency,
    Retention,
    declared_category,
    declared_legal_basis,
    declared_residency,
    declared_retention,
)
from medplat.storage import PREFIXES, KeyPrefix


@dataclass(frozen=True, slots=True)
class InfrastructureTable:
    """A table that no mapped class owns but the node's own tooling creates; declared here so it is classified."""

    fullname: str
    columns: tuple[str, ...]
    purpose: str


INFRASTRUCTURE_TABLES: tuple[InfrastructureTable, ...] = (
    InfrastructureTable("node.alembic_version", ("version_num",), "Alembic's record of the schema revision (medplat.db.migrate)"),
)


@dataclass(frozen=True, slots=True)
class Location:
    """Where this node's stores really are, as the stores themselves report it."""

    cluster_id: str
    """PostgreSQL's system identifier (pg_control_system()): unique per cluster, survives restarts, changes with initdb."""
    database: str
    server_version: str
    s3_endpoint: str
    buckets: dict[str, str]


def live_location(session: Session, settings: Settings) -> Location:
    cluster_id, database, version = session.execute(
        text("SELECT system_identifier::text, current_database(), current_setting('server_version') FROM pg_control_system()")
    ).one()
    return Location(
        cluster_id=cluster_id, database=database, server_version=version, s3_endpoint=_endpoint(settings.s3_endpoint),
        buckets={"personal": settings.personal_bucket, "shared": settings.shared_bucket},
    )  # fmt: skip


def _endpoint(raw: str) -> str:
    return raw if "://" in raw else f"http://{raw}"


@dataclass(frozen=True, slots=True)
class ColumnEntry:
    name: str
    type: str
    nullable: bool
    category: str
    encrypted: bool


@dataclass(frozen=True, slots=True)
class TableEntry:
    table: str
    schema: str
    model: str
    residency: str
    category: str
    legal_basis: str
    retention: str
    retention_days: int | None
    columns: tuple[ColumnEntry, ...]


@dataclass(frozen=True, slots=True)
class PrefixEntry:
    name: str
    bucket_kind: str
    bucket: str
    prefix: str
    pattern: str
    legacy_pattern: str | None
    """Keys an earlier release wrote under this prefix: they may still be in the bucket; nothing writes them now."""
    residency: str
    category: str
    legal_basis: str
    retention: str
    referenced_by: str
    written_by: str


@dataclass
class DataMap:
    region: str
    generated_at: str
    location: Location | None
    tables: list[TableEntry] = field(default_factory=list)
    prefixes: list[PrefixEntry] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts only: what the signed report carries about the map."""
        by_residency = Counter(t.residency for t in self.tables)
        by_category = Counter(t.category for t in self.tables)
        return {
            "tables": len(self.tables),
            "columns": sum(len(t.columns) for t in self.tables),
            "encrypted_columns": sum(c.encrypted for t in self.tables for c in t.columns),
            "tables_by_residency": dict(sorted(by_residency.items())),
            "tables_by_category": dict(sorted(by_category.items())),
            "prefixes": len(self.prefixes),
            "prefixes_by_bucket": dict(sorted(Counter(p.bucket_kind for p in self.prefixes).items())),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "generated_at": self.generated_at,
            "location": asdict(self.location) if self.location else None,
            "summary": self.summary(),
            "tables": [asdict(t) for t in self.tables],
            "prefixes": [asdict(p) for p in self.prefixes],
        }

    CSV_FIELDS = (
        "kind", "cluster_id", "database", "schema", "table", "column", "type", "nullable", "encrypted", "bucket", "endpoint",
        "prefix", "residency", "category", "legal_basis", "retention", "referenced_by",
    )  # fmt: skip

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        loc = self.location
        for t in self.tables:
            base = {"cluster_id": loc.cluster_id if loc else "", "database": loc.database if loc else "", "schema": t.schema}
            base |= {"table": t.table, "residency": t.residency, "legal_basis": t.legal_basis, "retention": t.retention}
            for c in t.columns:
                row = base | {"kind": "column", "column": c.name, "type": c.type, "nullable": c.nullable, "encrypted": c.encrypted}
                writer.writerow(row | {"category": c.category})
        for p in self.prefixes:
            writer.writerow(
                {
                    "kind": "prefix", "bucket": p.bucket, "endpoint": loc.s3_endpoint if loc else "", "prefix": p.prefix,
                    "residency": p.residency, "category": p.category, "legal_basis": p.legal_basis, "retention": p.retention,
                    "referenced_by": p.referenced_by,
                }
            )  # fmt: skip
        return out.getvalue()


def _column_entries(table: Table, category: DataCategory) -> tuple[ColumnEntry, ...]:
    entries = []
    for column in table.columns:
        own = column.info.get("category")
        entries.append(
            ColumnEntry(
                name=column.name, type=str(column.type.compile()) if not isinstance(column.type, EncryptedString) else "encrypted",
                nullable=bool(column.nullable), category=str(own if isinstance(own, DataCategory) else category),
                encrypted=isinstance(column.type, EncryptedString),
            )
        )  # fmt: skip
    return tuple(entries)


def table_entries(mappers: Iterable[Mapper[Any]]) -> list[TableEntry]:
    """One entry per declared mapped table, then the infrastructure tables; undeclared classes are left out (the
    scanner reports them through residency.check_mappers and check_processing)."""
    entries: list[TableEntry] = []
    for mapper in mappers:
        cls = mapper.class_
        residency, category = declared_residency(cls), declared_category(cls)
        basis, retention = declared_legal_basis(cls), declared_retention(cls)
        if residency is None or category is None or basis is None or retention is None:
            continue
        table = cast("Table", mapper.local_table)
        entries.append(
            TableEntry(
                table=table.fullname, schema=str(table.schema), model=f"{cls.__module__}.{cls.__qualname__}", residency=str(residency),
                category=str(category), legal_basis=str(basis), retention=retention.rule, retention_days=retention.days,
                columns=_column_entries(table, category),
            )
        )  # fmt: skip
    for infra in INFRASTRUCTURE_TABLES:
        schema = infra.fullname.split(".")[0]
        entries.append(
            TableEntry(
                table=infra.fullname, schema=schema, model=f"(infrastructure) {infra.purpose}", residency=str(Residency.NODE_LOCAL),
                category=str(DataCategory.OPERATIONAL), legal_basis=str(LegalBasis.NOT_PERSONAL), retention=OPERATIONAL_RETENTION.rule,
                retention_days=None,
                columns=tuple(ColumnEntry(c, "varchar", False, str(DataCategory.OPERATIONAL), False) for c in infra.columns),
            )
        )  # fmt: skip
    return sorted(entries, key=lambda e: e.table)


def prefix_entries(buckets: dict[str, str], prefixes: Iterable[KeyPrefix] | None = None) -> list[PrefixEntry]:
    return [
        PrefixEntry(
            name=p.name, bucket_kind=p.bucket, bucket=buckets.get(p.bucket, ""), prefix=p.prefix, pattern=p.pattern,
            legacy_pattern=p.legacy_pattern, residency=str(p.residency), category=str(p.category), legal_basis=str(p.legal_basis),
            retention=p.retention.rule, referenced_by=p.referenced_by, written_by=p.written_by,
        )
        for p in sorted(prefixes if prefixes is not None else PREFIXES.values(), key=lambda p: (p.bucket, p.prefix))
    ]  # fmt: skip


def build(settings: Settings, mappers: Iterable[Mapper[Any]], location: Location | None) -> DataMap:
    buckets = {"personal": settings.personal_bucket, "shared": settings.shared_bucket}
    return DataMap(
        region=settings.region.code,
        generated_at=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        location=location,
        tables=table_entries(mappers),
        prefixes=prefix_entries(buckets),
    )


def declared_columns(datamap: DataMap) -> dict[str, set[str]]:
    """table full name -> column names, as the code declares them."""
    return {t.table: {c.name for c in t.columns} for t in datamap.tables}


__all__ = ["INFRASTRUCTURE_TABLES", "DataMap", "Location", "Retention", "build", "declared_columns", "live_location"]
