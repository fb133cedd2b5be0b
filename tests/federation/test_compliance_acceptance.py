"""Issue 5's acceptance on `medfed up`, as an operator types it: a signed residency report verifies and one changed
byte does not; each node's scan is clean and the federation view is built from the three nodes' signed summaries;
`medfed audit verify` passes on the running federation and fails after a hand edit in PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg
import pytest

from tests.federation.test_local_federation import Launcher, free_base_port, medfed_cli

pytestmark = pytest.mark.federation


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Launcher, dict[str, object]]]:
    launcher = Launcher(tmp_path_factory.mktemp("compliance") / ".medfed", free_base_port())
    launcher.start("--fresh")
    try:
        yield launcher, launcher.wait_ready()
    finally:
        launcher.stop()


def test_report_verify_and_audit_verify_on_the_local_federation(federation: tuple[Launcher, dict[str, object]], tmp_path: Path) -> None:
    launcher, document = federation
    # Something in the log: listing the requests is an access to personal data, then a signed head.
    assert medfed_cli(launcher, "compliance", "dsr", "list", "--region", "kz").returncode == 0
    signed = medfed_cli(launcher, "audit", "checkpoint", "--region", "kz")
    assert signed.returncode == 0 and signed.stdout.startswith("kz: signed checkpoint at size "), signed.stderr

    report = tmp_path / "r.json"
    made = medfed_cli(launcher, "compliance", "report", "--region", "kz", "--out", str(report))
    assert made.returncode == 0, made.stderr
    valid = medfed_cli(launcher, "compliance", "verify", str(report))
    assert valid.returncode == 0, valid.stderr
    assert valid.stdout.startswith("valid: medfed-residency-report/1 of kz generated ")
    assert "keys from federation trust file version 1" in valid.stdout
    content = json.loads(report.read_bytes())
    assert content["payloadType"] == "application/vnd.medfed.residency-report+json"
    data = bytearray(report.read_bytes())
    data[len(data) // 2] ^= 0x01
    changed = tmp_path / "changed.json"
    changed.write_bytes(bytes(data))
    invalid = medfed_cli(launcher, "compliance", "verify", str(changed))
    assert invalid.returncode == 1 and invalid.stderr.startswith(f"invalid: {changed}: "), invalid.stderr
    assert len(invalid.stderr.splitlines()) == 1

    # Loopback stores, accepted because `medfed up` says the nodes are local (MEDFED_DEPLOYMENT=local).
    summaries = []
    for code in ("ru", "kz", "uz"):
        scanned = medfed_cli(launcher, "compliance", "scan", "--region", code)
        assert scanned.returncode == 0 and scanned.stdout.startswith(f"{code} residency scan passed: 0 critical, 0 violation, 0 warning ")
        summaries.append(str(tmp_path / f"s_{code}.json"))
        made = medfed_cli(launcher, "compliance", "summary", "--region", code, "--out", summaries[-1])
        assert made.returncode == 0 and made.stdout.startswith(f"{code}: signed residency summary written to "), made.stderr
    view = medfed_cli(launcher, "compliance", "federation", *summaries)
    assert view.returncode == 0, view.stderr
    assert view.stdout.splitlines()[-1].startswith("federation (3 nodes, keys from federation trust file version 1 in ")
    assert view.stdout.splitlines()[-1].endswith(": all ok; 0 manifests out, 0 in; separate clusters: yes")
    refused = medfed_cli(launcher, "compliance", "federation", summaries[0], str(report))
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (
        f"invalid: {report}: a residency report, not a residency summary: "
        "the federation view is built from each node's signed summary (`medfed compliance summary`) only\n"
    )

    passed = medfed_cli(launcher, "audit", "verify", "--region", "kz")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert passed.stdout.startswith("kz audit log valid: ")
    regions = document["regions"]
    assert isinstance(regions, dict)
    # The cluster's superuser (its password is in the region's secrets file): it can switch the triggers off.
    secrets = json.loads((launcher.state_dir / "kz" / "secrets.json").read_text())
    url = urlsplit(regions["kz"]["database_url"])
    superuser = url._replace(netloc=f"postgres:{quote(secrets['postgres_password'], safe='')}@{url.hostname}:{url.port}").geturl()
    with psycopg.connect(superuser, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        edited = conn.execute(
            "UPDATE audit.leaf SET entry = convert_to(replace(convert_from(entry, 'UTF8'), 'dsr_list', 'dsr_lisT'), 'UTF8') "
            "WHERE idx = (SELECT min(idx) FROM audit.leaf WHERE kind = 'personal_data_access') RETURNING idx"
        ).fetchone()
    assert edited is not None
    failed = medfed_cli(launcher, "audit", "verify", "--region", "kz")
    assert failed.returncode == 1
    assert f"kz audit: leaf {edited[0]}: its entry does not hash to its stored leaf hash" in failed.stdout.splitlines()
