"""`medfed`: the node's command line for operators and scripts.

Every failure an operator can cause (bad configuration, an unreachable database, a busy port) ends with one
readable line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from medplat.config import ConfigError, Settings, get_settings

EXIT_CONFIG = 2
EXIT_USAGE = 2
"""Input a command refuses: the status click gives its own usage errors."""


class OperatorError(Exception):
    """Something an operator must fix; printed as one line."""


class BadInput(Exception):
    """Options a command refuses before doing anything; printed as one line, exit status EXIT_USAGE."""


def fail(message: str, code: int = 1) -> None:
    click.echo(f"medfed: {message}", err=True)
    sys.exit(code)


def checked_settings() -> Settings:
    """Settings from the environment, and the database they name actually answering."""
    settings = get_settings()
    import psycopg

    from medplat.urls import without_password

    try:
        with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise ConfigError(f"database {without_password(settings.database_url)} is unreachable: {driver_reason(exc)}") from None
    return settings


def driver_reason(exc: BaseException) -> str:
    """The database driver's first line ("connection failed: ... Connection refused"); never a statement or its parameters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class _Medfed(click.Group):
    """Every command's operator errors end as one line on stderr, whichever subcommand raised them."""

    def invoke(self, ctx: click.Context) -> Any:
        from sqlalchemy.exc import OperationalError

        from medplat.api.problems import Problem
        from medsync.errors import SyncError

        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            fail(f"configuration error: {exc}", EXIT_CONFIG)
        except OperationalError as exc:
            # The driver's own last line (e.g. "connection refused"); never the statement or its parameters.
            fail(f"the node's database is unavailable: {driver_reason(exc.orig or exc)}")
        except BadInput as exc:
            fail(str(exc), EXIT_USAGE)
        except (OperatorError, SyncError) as exc:
            fail(str(exc))
        except Problem as exc:
            fail(exc.detail)


@click.group(cls=_Medfed)
@click.version_option(package_name="medfed")
def main() -> None:
    """MedFed regional node and local federation."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn worker processes")
def serve(host: str, port: int, workers: int) -> None:
    """Run the node's HTTP server (configuration from MEDFED_* variables).

    With MEDFED_TLS_CERT_FILE and MEDFED_TLS_KEY_FILE it serves HTTPS only (the local federation); without
    them plain HTTP, for a node behind nginx that terminates TLS (production) and for the test stands."""
    settings = checked_settings()
    import uvicorn

    from medplat.logs import configure_logging

    configure_logging(settings.region.code, settings.log_level)
    uvicorn.run(
        "medplat.app:create_server_app", factory=True, host=host, port=port, workers=workers,
        log_config=None, access_log=False, proxy_headers=True, server_header=False,
        ssl_certfile=settings.tls_cert_file or None, ssl_keyfile=settings.tls_key_file or None,
    )  # fmt: skip


@main.command()
@click.option("--concurrency", default=2, show_default=True, type=int)
@click.option(
    "--queues",
    default="",
    help="comma-separated queues to consume (default: node, inbox and sync.<peer> for every other region)",
)
@click.option(
    "--beat/--no-beat",
    default=False,
    help="also run the periodic scheduler in this worker",
)
def worker(concurrency: int, queues: str, beat: bool) -> None:
    """Run a Celery worker of this node."""
    settings = checked_settings()
    from medplat.config import known_regions
    from medplat.logs import configure_logging
    from medplat.worker import app, queues_for

    queues = queues or ",".join(queues_for(settings.region.code, list(known_regions())))

    configure_logging(settings.region.code, settings.log_level)
    argv = [
        "worker",
        f"--concurrency={concurrency}",
        f"--queues={queues}",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=INFO",
    ]
    if beat:
        argv += [
            "--beat",
            f"--schedule={Path.cwd() / f'.celerybeat-{settings.region.code}'}",
        ]
    app.worker_main(argv)


@main.command()
@click.option("--schedule", default="celerybeat-schedule", show_default=True, type=click.Path(path_type=Path))
def beat(schedule: Path) -> None:
    """Run the node's periodic scheduler (exactly one per node)."""
    settings = checked_settings()
    from medplat.logs import configure_logging
    from medplat.worker import app

    configure_logging(settings.region.code, settings.log_level)
    app.start(["beat", f"--schedule={schedule}", "--loglevel=INFO"])


@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Bring the node's database schema up to date."""
    settings = checked_settings()
    from medplat.db.migrate import current, upgrade
    from medplat.logs import configure_logging

    configure_logging(settings.region.code, "WARNING")
    upgrade(settings.database_url, revision)
    click.echo(f"{settings.region.code}: database at revision {current(settings.database_url)}")


@db.command("current")
def db_current() -> None:
    """Print the schema revision the database is at."""
    settings = checked_settings()
    from medplat.db.migrate import current

    click.echo(current(settings.database_url) or "(empty database)")


@main.group()
def storage() -> None:
    """The node's object store."""


@storage.command("init")
def storage_init() -> None:
    """Create the node's personal and shared buckets if they are missing."""
    settings = get_settings()
    from medplat.node import object_store

    store = object_store(settings)
    for bucket in (settings.personal_bucket, settings.shared_bucket):
        store.ensure_bucket(bucket)
        click.echo(f"{settings.region.code}: bucket {bucket} ready at {store.endpoint}")


@main.command()
@click.option(
    "--fresh",
    is_flag=True,
    help="wipe every region's state under the state folder first",
)
@click.option("--state-dir", default=".medfed", show_default=True, type=click.Path(path_type=Path))
@click.option(
    "--base-port",
    default=18100,
    show_default=True,
    type=int,
    help="ports are base + 20 x region index + offset",
)
@click.option(
    "--regions",
    default="",
    help="comma-separated region codes (default: every region in regions/)",
)
def up(fresh: bool, state_dir: Path, base_port: int, regions: str) -> None:
    """Run the local federation: ru, kz and uz, each with its own PostgreSQL, object store, broker, node and worker."""
    from medplat.devfed.launcher import Federation, LauncherError

    codes = [c.strip() for c in regions.split(",") if c.strip()] or None
    try:
        federation = Federation(state_dir=state_dir, base_port=base_port, regions=codes)
    except LauncherError as exc:
        raise OperatorError(str(exc)) from None
    sys.exit(federation.run(fresh=fresh))


def _register() -> None:
    from medplat.cli_accounts import otp
    from medplat.cli_audit import audit
    from medplat.cli_compliance import compliance
    from medplat.cli_content import content, sync_group, token
    from medsync.keys_cli import keys

    for group in (content, sync_group, token, keys, otp, audit, compliance):
        main.add_command(group)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
