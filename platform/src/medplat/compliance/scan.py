"""The residency scanner: the stores the node really uses against what its code declares, and the rules of section 6.

Checks (each finding names a check, a severity, the object and a fix hint; never a personal value):
- stores: the stores the configuration names (database URLs, S3 endpoint) are on hosts of the country
  (regions/<code>/infra.json), and the live stores agree: the database reached is the data map's cluster, the sync
  role reaches the same one, a loopback database answers from loopback, the buckets are in a region of the country;
- declarations: every mapped class declares residency, category, legal basis and retention, in a schema of its class;
- schema: every table and column of the live database is in the data map (an unclassified one is a violation), every
  declared table exists, and a known table in the wrong schema is named as such;
- home_region / citizenship: every personal row belongs to this node's country;
- personal_data_in_shared / personal_data_in_manifest: no phone, e-mail or national id (medsync.border) in shared
  content rows or in the manifests this node sent;
- objects: every object in the buckets sits under a declared prefix of its bucket and is referenced by its column;
  a personal prefix in the shared bucket is critical;
- dsr_deadlines: open data-subject requests against their deadlines.

Designed set-based: the big tables are checked by counting queries, the bucket listings are copied into a temporary
table and joined in SQL; only shared content (small, and the detectors are Python) is read row by row.
"""

from __future__ import annotations

import datetime
import enum
import ipaddress
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgspec
from sqlalchemy import Row, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.pool import NullPool

from medplat.compliance import deadlines
from medplat.compliance.datamap import DataMap, declared_columns
from medplat.config import InfraConfig, Settings, load_infra
from medplat.residency import Residency, check_mappers, check_processing
from medplat.storage import PREFIXES, ObjectStore, all_keys
from medsync.border import scan_document, scan_text
from medsync.envelope import Envelope
from medsync.items import from_builtins
from medsync.manifest import MAX_MANIFEST_BYTES, ManifestBody

SAMPLE = 25
"""Findings listed per check; the counts say how many there are in all."""
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
REMIND_WITHIN = 2
"""Working days before the deadline from which an open request is a warning."""
LIST_WORKERS = 8
"""Threads listing the buckets' folders at once; the store, not this process, does the work."""


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    """Personal data where it must not be: another country's person, personal data in shared content or the shared bucket."""
    VIOLATION = "violation"
    """A rule of the residency model is broken (unclassified store, overdue request)."""
    WARNING = "warning"
    """Needs attention, breaks no rule yet (a request near its deadline, an orphan file)."""


FAILING = frozenset({Severity.CRITICAL, Severity.VIOLATION})


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    severity: Severity
    object: str
    """What is wrong, by address only: `schema.table#id`, `schema.table.column`, `s3://bucket/key`."""
    problem: str
    hint: str

    def line(self) -> str:
        return f"{self.severity.upper():9} {self.check}: {self.object}: {self.problem} (fix: {self.hint})"


@dataclass
class ScanResult:
    region: str
    started_at: str
    seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    """Per check, how many objects are affected in all (findings list at most SAMPLE of them)."""
    severities: dict[str, str] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per check, for the benchmark and the log."""

    @property
    def ok(self) -> bool:
        return not any(f.severity in FAILING for f in self.findings)

    def by_severity(self) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for check, count in self.counts.items():
            totals[self.severities[check]] += count
        return {s.value: totals.get(s.value, 0) for s in Severity}

    def per_check(self) -> dict[str, dict[str, Any]]:
        """Each check run: passed (no critical finding, no violation) and how many objects it found per severity."""
        table = {check: {"passed": True, **{s.value: 0 for s in Severity}} for check in sorted(self.checks)}
        for counter, count in self.counts.items():
            entry = table.setdefault(counter.split(".", 1)[0], {"passed": True, **{s.value: 0 for s in Severity}})
            entry[self.severities[counter]] += count
            entry["passed"] = entry["passed"] and Severity(self.severities[counter]) not in FAILING
        return table

    def summary(self) -> dict[str, Any]:
        """Counts only, for the signed report."""
        return {
            "ok": self.ok,
            "checks": sorted(self.checks),
            "by_severity": self.by_severity(),
            "by_check": dict(sorted(self.counts.items())),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region, "started_at": self.started_at, "seconds": round(self.seconds, 3), **self.summary(),
            "findings": [asdict(f) | {"severity": str(f.severity)} for f in self.findings],
        }  # fmt: skip


class _Collector:
    def __init__(self, result: ScanResult) -> None:
        self.result = result

    def add(  # noqa: PLR0917 - one call per rule, read like a table row
        self, check: str, key: str, severity: Severity, objects: Iterable[str], total: int, problem: str, hint: str
    ) -> None:
        """Record `total` affected objects of one kind (listing at most SAMPLE of `objects`)."""
        if total <= 0:
            return
        counter = f"{check}.{key}" if key else check
        self.result.counts[counter] = self.result.counts.get(counter, 0) + total
        self.result.severities[counter] = str(severity)
        listed = sum(1 for f in self.result.findings if f.check == check)
        for obj in list(objects)[: max(0, SAMPLE - listed)]:
            self.result.findings.append(Finding(check, severity, obj, problem, hint))


def scan(session: Session, settings: Settings, store: ObjectStore, datamap: DataMap, mappers: Iterable[Mapper[Any]]) -> ScanResult:
    started = time.perf_counter()
    result = ScanResult(settings.region.code, datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    out = _Collector(result)
    checks: tuple[tuple[str, Callable[[], None]], ...] = (
        ("stores", lambda: _stores(out, session, settings, store, datamap)),
        ("declarations", lambda: _declarations(out, list(mappers))),
        ("schema", lambda: _schema(out, session, datamap)),
        ("home_region", lambda: _home_region(out, session, settings, datamap)),
        ("personal_data_in_shared", lambda: _shared_content(out, session)),
        ("personal_data_in_manifest", lambda: _manifests(out, session)),
        ("objects", lambda: _objects(out, session, settings, store)),
        ("dsr_deadlines", lambda: _dsr(out, session, settings)),
    )
    for name, check in checks:
        result.checks.append(name)
        clock = time.perf_counter()
        check()
        result.timings[name] = round(time.perf_counter() - clock, 3)
    result.findings.sort(key=lambda f: (list(Severity).index(f.severity), f.check, f.object))
    result.seconds = time.perf_counter() - started
    return result


# -- the stores themselves -------------------------------------------------------------------------------------


def _place(host: str, infra: InfraConfig) -> str:
    """country, loopback (this machine: a loopback address, localhost or a socket path), private or outside."""
    if not host or host.startswith("/"):
        return "loopback"
    name = host.strip("[]").lower().rstrip(".")
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        if name == "localhost" or name.endswith(".localhost"):
            return "loopback"
        return "country" if infra.allows_host(name) else "outside"
    if address.is_loopback:
        return "loopback"
    return "private" if address.is_private else "outside"


def _database_hosts(url: str) -> list[tuple[str, str]]:
    """(parameter, value) of every place a PostgreSQL URL sends the connection: its host(s), and hostaddr, which libpq
    connects to instead of resolving the host; no host at all is the local socket."""
    parsed = make_url(url)
    found = [("host", h) for h in (parsed.host or "").split(",") if h]
    for name in ("host", "hostaddr"):
        values = parsed.query.get(name, ())
        found += [(name, v) for value in ([values] if isinstance(values, str) else values) for v in value.split(",") if v]
    return found or [("host", "")]


def _stores(out: _Collector, session: Session, settings: Settings, store: ObjectStore, datamap: DataMap) -> None:
    code, local = settings.region.code, settings.deployment == "local"
    infra = load_infra(code)
    table, suffixes = f"regions/{code}/infra.json", ", ".join(infra.host_suffixes)
    endpoint = settings.s3_endpoint if "://" in settings.s3_endpoint else f"http://{settings.s3_endpoint}"
    declared = {
        "MEDFED_DATABASE_URL": _database_hosts(settings.database_url),
        "MEDFED_SYNC_DATABASE_URL": _database_hosts(settings.sync_database_url),
        "MEDFED_S3_ENDPOINT": [("host", urlsplit(endpoint).hostname or "")],
    }
    places: dict[str, list[str]] = defaultdict(list)
    for variable, hosts in declared.items():
        for parameter, host in hosts:
            places[_place(host, infra)].append(f"{variable} {parameter} {host or '(local socket)'}")
    out.add(
        "stores", "outside_country", Severity.CRITICAL, places["outside"], len(places["outside"]),
        f"a store the node is configured to use is outside {infra.name}: the host is not under {suffixes} ({table})",
        f"move the store into {infra.name} and point the variable at its host there; "
        f"if the host is in {infra.name}, add its domain to host_suffixes in {table}",
    )  # fmt: skip
    if not local:
        out.add(
            "stores", "loopback", Severity.VIOLATION, places["loopback"], len(places["loopback"]),
            "a loopback host in a production deployment: it names this machine, not a place in the country",
            f"point the variable at the store's host name under {suffixes}; on a local or development node set MEDFED_DEPLOYMENT=local",
        )  # fmt: skip
    out.add(
        "stores", "private_address", Severity.WARNING, places["private"], len(places["private"]),
        f"a private address: the scanner cannot place the network it belongs to in {infra.name}",
        f"name the store by its host under {suffixes}",
    )  # fmt: skip
    _live_databases(out, session, settings, datamap, declared)
    _bucket_regions(out, settings, store, infra, local=local)


@dataclass(frozen=True, slots=True)
class _Answer:
    """What a PostgreSQL server says about itself on one connection."""

    server: str | None
    """host(inet_server_addr()): the address it answered from; None over a local socket."""
    cluster: str
    database: str


_IDENTITY = text("SELECT host(inet_server_addr()), system_identifier::text, current_database() FROM pg_control_system()")


def _ask(url: str) -> _Answer | None:
    from medplat.db.engine import sync_engine

    engine = sync_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as conn:
            return _Answer(*conn.execute(_IDENTITY).one())
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def _live_databases(
    out: _Collector, session: Session, settings: Settings, datamap: DataMap, declared: dict[str, list[tuple[str, str]]]
) -> None:
    """What the servers say: the one the scan reads (MEDFED_DATABASE_URL) and the sync role's, against the data map."""
    main = _Answer(*session.execute(_IDENTITY).one())
    answers = {"MEDFED_DATABASE_URL": main, "MEDFED_SYNC_DATABASE_URL": _ask(settings.sync_database_url)}
    location = datamap.location
    cluster, database = (location.cluster_id, location.database) if location else (main.cluster, main.database)
    silent = [variable for variable, answer in answers.items() if answer is None]
    out.add(
        "stores", "database_unanswered", Severity.VIOLATION, silent, len(silent), "the configured database does not answer",
        "check the URL and that the server is up: the scanner cannot say where a store it cannot reach is",
    )  # fmt: skip
    live = {variable: answer for variable, answer in answers.items() if answer is not None}
    other = [f"{v} cluster {a.cluster} database {a.database}" for v, a in live.items() if (a.cluster, a.database) != (cluster, database)]
    out.add(
        "stores", "other_cluster", Severity.VIOLATION, other, len(other),
        f"the database answering is not the data map's (cluster {cluster}, database {database})",
        "point MEDFED_DATABASE_URL and MEDFED_SYNC_DATABASE_URL at the same database of the node's own cluster",
    )  # fmt: skip
    tunnelled = [f"{v} answered from {a.server}" for v, a in live.items() if a.server and tunnelled_to(declared[v], a.server)]
    out.add(
        "stores", "tunnelled", Severity.VIOLATION, tunnelled, len(tunnelled),
        "a database configured on this machine's loopback answers from another machine (a tunnel or a port forward)",
        "connect to the database by its own host in the country, not through a forward the scanner cannot place",
    )  # fmt: skip


def tunnelled_to(declared: list[tuple[str, str]], server: str) -> bool:
    """A connection the configuration sends to this machine only, answered from another machine's address. libpq
    connects to hostaddr when the URL gives one, else to the host(s)."""
    targets = [host for name, host in declared if name == "hostaddr"] or [host for _, host in declared]
    return not ipaddress.ip_address(server).is_loopback and all(_place(host, _ANYWHERE) == "loopback" for host in targets)


_ANYWHERE = InfraConfig(name="", regions=(), host_suffixes=())
"""For telling loopback apart only."""


def _bucket_regions(out: _Collector, settings: Settings, store: ObjectStore, infra: InfraConfig, *, local: bool) -> None:
    """The region each bucket is in, as the store answering at the endpoint says (a local store names no country)."""
    misdeclared: list[str] = []
    abroad: list[str] = []
    for bucket in (settings.personal_bucket, settings.shared_bucket):
        if not store.bucket_exists(bucket):
            continue  # the objects check reports it
        location = store.bucket_location(bucket)
        if location != settings.s3_region:
            misdeclared.append(f"s3://{bucket} (region {location})")
        if not local and location not in infra.regions:
            abroad.append(f"s3://{bucket} (region {location})")
    out.add(
        "stores", "outside_country", Severity.CRITICAL, abroad, len(abroad),
        f"the object store says the bucket is in a region outside {infra.name} ({', '.join(infra.regions)})",
        f"move the bucket to a region of {infra.name}; if the region is in {infra.name}, add it to regions in "
        f"regions/{settings.region.code}/infra.json",
    )  # fmt: skip
    out.add(
        "stores", "bucket_region", Severity.VIOLATION, misdeclared, len(misdeclared),
        f"the object store says the bucket is in another region than the node declares (MEDFED_S3_REGION={settings.s3_region})",
        "find out where the bucket really is; then correct MEDFED_S3_REGION or move the bucket",
    )  # fmt: skip


# -- declarations and the live schema -------------------------------------------------------------------------


def _declarations(out: _Collector, mappers: list[Mapper[Any]]) -> None:
    violations = check_mappers(mappers) + check_processing(mappers)
    out.add(
        "declarations", "", Severity.VIOLATION, [f"{v.subject}: {v.problem}" for v in violations], len(violations),
        "a mapped class is not fully declared",
        "declare __residency__, __data_category__, __legal_basis__, __retention__ and a schema of its class",
    )  # fmt: skip


def _schema(out: _Collector, session: Session, datamap: DataMap) -> None:
    declared = declared_columns(datamap)
    live: dict[str, set[str]] = defaultdict(set)
    rows = session.execute(
        text(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE table_schema <> ALL(:system) AND table_schema NOT LIKE 'pg\\_temp\\_%' AND table_schema NOT LIKE 'pg\\_toast\\_temp\\_%'"
        ),
        {"system": list(SYSTEM_SCHEMAS)},
    )
    for schema, table, column in rows:
        live[f"{schema}.{table}"].add(column)
    by_name: dict[str, list[str]] = defaultdict(list)
    for table in declared:
        by_name[table.split(".", 1)[1]].append(table)
    unknown_tables = sorted(set(live) - set(declared))
    misplaced = [t for t in unknown_tables if by_name.get(t.split(".", 1)[1])]
    unclassified = [t for t in unknown_tables if t not in misplaced]
    out.add(
        "schema", "wrong_schema", Severity.VIOLATION, misplaced, len(misplaced),
        "a declared table exists in a schema other than its class's",
        "move the table into the schema its model declares (ALTER TABLE ... SET SCHEMA) or drop the copy",
    )  # fmt: skip
    out.add(
        "schema", "unclassified_table", Severity.VIOLATION, unclassified, len(unclassified), "a table the code does not declare",
        "map it with a model declaring residency, category, legal basis and retention, or drop it",
    )  # fmt: skip
    columns = [f"{t}.{c}" for t in sorted(set(live) & set(declared)) for c in sorted(live[t] - declared[t])]
    out.add(
        "schema", "unclassified_column", Severity.VIOLATION, columns, len(columns), "a column the code does not declare",
        "add it to its model (and a migration), or drop it",
    )  # fmt: skip
    missing = sorted(set(declared) - set(live))
    out.add(
        "schema", "missing_table", Severity.WARNING, missing, len(missing), "a declared table is not in the database",
        "run `medfed db upgrade`",
    )  # fmt: skip


# -- personal rows of another country ----------------------------------------------------------------------------


def _home_region(out: _Collector, session: Session, settings: Settings, datamap: DataMap) -> None:
    region = settings.region.code
    citizenships = list(settings.region.citizenships)
    for table in datamap.tables:
        if table.residency != Residency.PERSONAL:
            continue
        names = {c.name for c in table.columns}
        conditions = {}
        if "home_region" in names:
            conditions["home_region"] = "home_region <> :region"
        if "citizenship" in names:
            conditions["citizenship"] = "citizenship <> ALL(:citizenships)"
        if not conditions:
            continue
        params = {"region": region, "citizenships": citizenships}
        filters = ", ".join(f"count(*) FILTER (WHERE {cond}) AS {key}" for key, cond in conditions.items())
        counts = session.execute(text(f"SELECT {filters} FROM {table.table}"), params).one()._asdict()  # noqa: S608 - names from the data map
        for key, cond in conditions.items():
            total = counts[key]
            if not total:
                continue
            ids = session.scalars(text(f"SELECT id::text FROM {table.table} WHERE {cond} ORDER BY id LIMIT :n"), params | {"n": SAMPLE})  # noqa: S608
            problem = (
                f"a personal row whose home region is not {region}" if key == "home_region"
                else f"a personal row whose citizenship is not served by {region} ({', '.join(citizenships)})"
            )  # fmt: skip
            out.add(
                "home_region", key, Severity.CRITICAL, (f"{table.table}#{i}" for i in ids), total, problem,
                "move the person's data to their home node through a data-subject request there, then erase it here",
            )  # fmt: skip


# -- personal data inside shared content and outgoing manifests -----------------------------------------------


def _json_strings(value: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in ("sha256", "key"):  # hashes and content-addressed keys the node computed
                continue
            yield from _json_strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_strings(item, f"{path}[{index}]")


def _document_findings(document: object) -> list[tuple[str, str]]:
    """(kind, path) of personal data in a shared document; a byline's name is allowed (the policy gates it by consent)."""
    try:
        doc = from_builtins(document)
    except msgspec.ValidationError:
        return [(kind, path) for path, value in _json_strings(document, "") for kind, _ in scan_text(value)]
    return [(f.kind, f.path) for f in scan_document(doc, allow_byline=True)]


def _shared_content(out: _Collector, session: Session) -> None:
    found: list[str] = []
    total = 0
    rows: Iterator[Row[Any]] = session.execute(
        text("SELECT 'shared.content_item' AS t, id::text, title, draft AS doc FROM shared.content_item "
             "UNION ALL SELECT 'shared.content_version', id::text, NULL, document FROM shared.content_version")
    ).yield_per(1000)  # fmt: skip
    for table, row_id, title, document in rows:
        hits: list[tuple[str, str]] = [(kind, "title") for kind, _ in scan_text(title or "")]
        if document is not None:
            hits += _document_findings(document) if table == "shared.content_version" else _draft_findings(document)
        for kind, path in hits:
            total += 1
            found.append(f"{table}#{row_id} at {path} ({kind})")
    out.add(
        "personal_data_in_shared", "", Severity.CRITICAL, found, total, "personal data inside shared content",
        "edit the content to remove it and publish a new version (or retract it); the border check blocks it from leaving",
    )  # fmt: skip


def _draft_findings(document: object) -> list[tuple[str, str]]:
    return [(kind, f"draft.{path}") for path, value in _json_strings(document, "") for kind, _ in scan_text(value)]


def _manifests(out: _Collector, session: Session) -> None:
    found: list[str] = []
    total = 0
    rows = session.execute(text("SELECT id, target, sequence, envelope FROM federation.manifest_out ORDER BY id")).yield_per(100)
    for manifest_id, target, sequence, envelope in rows:
        try:
            body = msgspec.json.decode(Envelope.decode(bytes(envelope), max_bytes=MAX_MANIFEST_BYTES).payload_bytes(), type=ManifestBody)
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError):
            found.append(f"federation.manifest_out#{manifest_id} (to {target}, sequence {sequence}): unreadable")
            total += 1
            continue
        for item in body.items:
            if item.document is None:
                continue
            for finding in scan_document(item.document, allow_byline=True):
                total += 1
                found.append(
                    f"federation.manifest_out#{manifest_id} (to {target}, sequence {sequence}) "
                    f"item {item.id} at {finding.path} ({finding.kind})"
                )
    out.add(
        "personal_data_in_manifest", "", Severity.CRITICAL, found, total, "personal data in a manifest this node sent",
        "retract the item in the target region and report the transfer to the compliance officer",
    )  # fmt: skip


# -- the buckets -------------------------------------------------------------------------------------------------


def _objects(out: _Collector, session: Session, settings: Settings, store: ObjectStore) -> None:
    buckets = {"personal": settings.personal_bucket, "shared": settings.shared_bucket}
    present: dict[str, str] = {}
    for kind, bucket in buckets.items():
        if store.bucket_exists(bucket):
            present[kind] = bucket
            continue
        out.add(
            "objects", "missing_bucket", Severity.VIOLATION, [f"s3://{bucket}"], 1, f"the declared {kind} bucket does not exist",
            "run `medfed storage init`",
        )  # fmt: skip
    session.execute(text("CREATE TEMPORARY TABLE scan_object (bucket text, key text, prefix text, foreign_prefix text) ON COMMIT DROP"))
    raw = session.connection().connection.driver_connection
    assert raw is not None
    listed = time.perf_counter()
    classify = {kind: _classifier(kind) for kind in buckets}
    with raw.cursor() as cursor, cursor.copy("COPY scan_object (bucket, key, prefix, foreign_prefix) FROM STDIN") as copy:
        for kind, keys in all_keys(store, present, workers=LIST_WORKERS):
            of_kind = classify[kind]
            for key in keys:
                copy.write_row((kind, key, *of_kind(key)))
    out.result.timings["list_objects"] = round(time.perf_counter() - listed, 3)
    compared = time.perf_counter()
    # Statistics before the joins: without them the planner expects a handful of rows per prefix and picks nested
    # loops for the anti-joins below, quadratic in the number of objects.
    session.execute(text("ANALYZE scan_object"))
    for kind, bucket in present.items():
        other = "shared" if kind == "personal" else "personal"
        misplaced = session.execute(
            text(
                "SELECT key, foreign_prefix FROM scan_object "
                "WHERE bucket = :b AND prefix IS NULL AND foreign_prefix IS NOT NULL ORDER BY key"
            ),
            {"b": kind},
        ).all()
        severity = Severity.CRITICAL if kind == "shared" else Severity.VIOLATION
        out.add(
            "objects", f"{other}_file_in_{kind}_bucket", severity,
            (f"s3://{bucket}/{k} ({p})" for k, p in misplaced[:SAMPLE]), len(misplaced),
            f"a file under a {other} prefix sits in the {kind} bucket",
            "delete it from this bucket (a personal file must stay in the personal bucket only) and find which code path wrote it",
        )  # fmt: skip
        _count_and_list(
            out, session, "objects", f"undeclared_prefix_{kind}", Severity.VIOLATION,
            "SELECT {what} FROM scan_object WHERE bucket = :b AND prefix IS NULL AND foreign_prefix IS NULL", {"b": kind},
            lambda k, bucket=bucket: f"s3://{bucket}/{k}", f"an object in the {kind} bucket outside every declared prefix",
            "declare the prefix in medplat.storage (with category, legal basis and retention) or delete the object",
        )  # fmt: skip
    for prefix in PREFIXES.values():
        schema, table, column = prefix.referenced_by.split(".")
        bucket = buckets[prefix.bucket]
        # Names come from the code's own prefix declarations, never from input.
        exists = f"SELECT 1 FROM {schema}.{table} t WHERE t.{column} = o.key"  # noqa: S608
        unreferenced = "SELECT {what} FROM scan_object o WHERE o.prefix = :name AND NOT EXISTS (" + exists + ")"  # noqa: S608
        personal = prefix.residency is Residency.PERSONAL
        _count_and_list(
            out, session, "objects", f"unreferenced_{prefix.name}", Severity.WARNING if personal else Severity.VIOLATION, unreferenced,
            {"name": prefix.name}, lambda k, bucket=bucket: f"s3://{bucket}/{k}",
            f"no {prefix.referenced_by} refers to this object"
            + (" (a personal file left behind)" if personal else " (shared content does not use it)"),
            "delete the object (erasure or tombstone did not reach it)" if personal else "attach it to its item or delete it",
        )  # fmt: skip
        # The anti-join first, the pattern only on the rows it leaves (usually none): PostgreSQL's regular expressions
        # cost tens of microseconds a key here, seconds over every row of a large table.
        missing = (
            f"WITH unlisted AS MATERIALIZED (SELECT t.{column} AS key FROM {schema}.{table} t "  # noqa: S608
            f"WHERE NOT EXISTS (SELECT 1 FROM scan_object o WHERE o.bucket = :bucket AND o.key = t.{column})) "
            "SELECT {what} FROM unlisted WHERE key ~ :pattern"
        )
        _count_and_list(
            out, session, "objects", f"missing_{prefix.name}", Severity.WARNING, missing,
            {"pattern": f"^(?:{prefix.accepted})$", "bucket": prefix.bucket}, lambda k, bucket=bucket: f"s3://{bucket}/{k}",
            f"{prefix.referenced_by} refers to an object the bucket does not hold", "restore the object from backup or repair the row",
        )  # fmt: skip
    out.result.timings["compare_objects"] = round(time.perf_counter() - compared, 3)


def _classifier(kind: str) -> Callable[[str], tuple[str | None, str | None]]:
    """(its declared prefix in this bucket, else the other bucket's prefix it fits, else neither) for a key of `kind`.

    In Python while the keys stream into PostgreSQL: one pass, no regular-expression UPDATEs rewriting every row;
    the literal prefix is compared first, so most keys meet one pattern.
    """
    own = [p for p in PREFIXES.values() if p.bucket == kind]
    foreign = [p for p in PREFIXES.values() if p.bucket != kind]

    def classify(key: str) -> tuple[str | None, str | None]:
        for prefix in own:
            if prefix.matches(key):
                return prefix.name, None
        for prefix in foreign:
            if prefix.matches(key):
                return None, prefix.name
        return None, None

    return classify


def _count_and_list(  # noqa: PLR0917 - like _Collector.add
    out: _Collector, session: Session, check: str, key: str, severity: Severity, query: str, params: dict[str, Any],
    address: Any, problem: str, hint: str,
) -> None:  # fmt: skip
    total = session.scalar(text(query.format(what="count(*)")), params) or 0
    if not total:
        return
    keys = session.scalars(text(query.format(what="key") + f" ORDER BY 1 LIMIT {SAMPLE}"), params)
    out.add(check, key, severity, (address(k) for k in keys), total, problem, hint)


# -- data-subject requests ------------------------------------------------------------------------------------


def _dsr(out: _Collector, session: Session, settings: Settings) -> None:
    from medplat.domain.accounts.models import DataSubjectRequest

    country = settings.region.country
    today = deadlines.local_date(datetime.datetime.now(datetime.UTC), settings.region.timezone)
    overdue: list[str] = []
    near: list[str] = []
    rows = session.execute(
        select(DataSubjectRequest.id, DataSubjectRequest.kind, DataSubjectRequest.due_on, DataSubjectRequest.extended_due_on).where(
            DataSubjectRequest.status == "received"
        )
    )
    for dsr_id, kind, due, extended in rows:
        deadline = extended or due
        label = f"personal.data_subject_request#{dsr_id} ({kind}, due {deadline.isoformat()})"
        if today > deadline:
            overdue.append(label)
        elif deadlines.working_days_between(country, today, deadline) <= REMIND_WITHIN:
            near.append(label)
    out.add(
        "dsr_deadlines", "overdue", Severity.VIOLATION, overdue, len(overdue), "an open data-subject request is past its deadline",
        "answer it now; record the late answer and its reason",
    )  # fmt: skip
    out.add(
        "dsr_deadlines", "due_soon", Severity.WARNING, near, len(near),
        f"an open data-subject request is due within {REMIND_WITHIN} working days",
        "answer it, or send the reasoned extension notice where the law allows one (`medfed compliance dsr extend`)",
    )  # fmt: skip
