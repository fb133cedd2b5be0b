"""Data-subject requests on the compliance side: steps as audit leaves in the same transaction, reminders, extension,
the destruction act with its verified event-log extract, and staff access to personal data logged."""

from __future__ import annotations

import datetime
import getpass
import json
import socket
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from click.testing import CliRunner
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from medplat.audit.models import AuditLeaf
from medplat.cli import main
from medplat.compliance import dsr
from medplat.compliance import report as reports
from medplat.compliance.hooks import staff_ref
from medplat.config import Settings
from medplat.domain.accounts.models import DataSubjectRequest
from medplat.node import sync_db
from medplat.security import Role, issue_token, node_identity
from tests.integration.test_accounts import PDF, bearer, register, sign_in, staff
from tests.integration.test_compliance_scan import node  # noqa: F401 - the fixture


def _leaves(settings: Settings, kind: str) -> list[dict[str, Any]]:
    with Session(sync_db(settings)) as session:
        return [
            json.loads(e)["payload"] for e in session.scalars(select(AuditLeaf.entry).where(AuditLeaf.kind == kind).order_by(AuditLeaf.idx))
        ]


async def _doctor(client: Any, settings: Settings) -> dict[str, Any]:
    doctor_id = await register(client)
    tokens = await sign_in(client, settings)
    response = await client.put(
        "/api/v1/me/diploma", content=PDF, headers={**bearer(tokens["access_token"]), "content-type": "application/pdf"}
    )
    assert response.status_code == 201
    return {"id": doctor_id, **tokens}


async def test_erasure_steps_are_audit_leaves_and_the_destruction_act_verifies(client: Any, node: Settings, tmp_path: Path) -> None:  # noqa: F811
    doctor = await _doctor(client, node)
    erased = await client.post("/api/v1/me/erasure", headers=bearer(doctor["access_token"]))
    dsr_id = erased.json()["id"]
    steps = [p for p in _leaves(node, "dsr_step") if p["dsr_id"] == dsr_id]
    assert steps == [
        {"dsr_id": dsr_id, "kind": "erasure", "step": "received"},
        {"dsr_id": dsr_id, "kind": "erasure", "step": "completed", "objects": 1, "bucket": node.personal_bucket,
         "rows": {"personal.case_photo": 0, "personal.clinical_case": 0, "personal.event_registration": 0,
                  "personal.otp_challenge": 1, "personal.sign_in_session": 1, "personal.profile_change": 0, "personal.consent": 3,
                  "personal.diploma": 1, "personal.doctor": 1}},
    ]  # fmt: skip
    out = tmp_path / "act.json"
    made = CliRunner().invoke(main, ["compliance", "dsr", "act", "--region", "kz", dsr_id, "--out", str(out)])
    assert made.exit_code == 0, made.output
    assert (tmp_path / "act.pdf").read_bytes().startswith(b"%PDF-")
    public = node.signing_key.public_key()
    verified = reports.verify(out.read_bytes(), lambda _r: [public])
    act = verified.document
    assert act["destroyed"]["rows_by_table"]["personal.doctor"] == 1 and act["destroyed"]["search_index"].startswith("none")
    assert [json.loads(leaf["entry"])["payload"]["step"] for leaf in act["event_log_extract"]["leaves"]] == ["received", "completed"]
    # A leaf's entry altered inside a re-signed act no longer proves inclusion in the signed checkpoint.
    act["event_log_extract"]["leaves"][1]["entry"] = act["event_log_extract"]["leaves"][1]["entry"].replace('"objects":1', '"objects":0')
    forged = reports.sign(act, node.signing_key, reports.ACT_PAYLOAD_TYPE)
    try:
        reports.verify(forged, lambda _r: [public])
        raise AssertionError("a forged extract verified")
    except reports.ReportError as exc:
        assert exc.message.startswith("event log extract: ")
    not_erasure = CliRunner().invoke(main, ["compliance", "dsr", "act", "--region", "kz", str(uuid.uuid4()), "--out", str(out)])
    assert not_erasure.exit_code == 1 and not_erasure.stderr.startswith("medfed: no erasure request ")


async def test_reminders_are_recorded_once_per_level_and_extension_follows_the_law(client: Any, node: Settings) -> None:  # noqa: F811
    doctor = await _doctor(client, node)
    changed = await client.post(
        "/api/v1/me/profile-changes", json={"changes": {"position": "Consultant"}}, headers=bearer(doctor["access_token"])
    )
    assert changed.status_code == 201
    with Session(sync_db(node)) as session, session.begin():
        row = session.scalars(select(DataSubjectRequest)).one()
        assert (row.kind, row.status, str(row.change_id)) == ("rectification", "received", changed.json()["id"])
        row.due_on = datetime.date.today() - datetime.timedelta(days=3)
        dsr_id = row.id
    with Session(sync_db(node)) as session, session.begin():
        assert dsr.reminders(session, node) == {"open": 1, "due_soon": 0, "overdue": 1, "recorded": 1}
    with Session(sync_db(node)) as session, session.begin():
        assert dsr.reminders(session, node)["recorded"] == 0
    assert [p["step"] for p in _leaves(node, "dsr_step")] == ["received", "reminder_overdue"]
    scan = json.loads(CliRunner().invoke(main, ["compliance", "scan", "--region", "kz", "--json"]).stdout)
    assert scan["by_check"] == {"dsr_deadlines.overdue": 1} and scan["ok"] is False
    # Kazakhstan allows no extension (medplat.compliance.deadlines).
    refused = CliRunner().invoke(main, ["compliance", "dsr", "extend", "--region", "kz", str(dsr_id)])
    assert (refused.exit_code, refused.stderr) == (1, "medfed: the law of KZ allows no extension for rectification requests\n")
    decided = await client.post(
        f"/api/v1/moderation/changes/{changed.json()['id']}/decision", json={"decision": "approve"}, headers=staff(node, Role.MODERATOR)
    )
    assert decided.status_code == 200
    with Session(sync_db(node)) as session:
        assert session.scalars(select(DataSubjectRequest.status)).one() == "completed"
    assert [p["step"] for p in _leaves(node, "dsr_step")] == ["received", "reminder_overdue", "completed"]


async def test_staff_reading_personal_data_leaves_an_audit_leaf(client: Any, node: Settings) -> None:  # noqa: F811
    doctor = await _doctor(client, node)
    moderator = staff(node, Role.MODERATOR, "moderator-7")
    assert (await client.get("/api/v1/moderation/doctors", headers=moderator)).status_code == 200
    assert (await client.get(f"/api/v1/moderation/doctors/{doctor['id']}/diploma", headers=moderator)).status_code == 200
    officer = staff(node, Role.COMPLIANCE, "Officer.One@HQ.example")
    assert (await client.get("/api/v1/compliance/data-subject-requests", headers=officer)).status_code == 200
    accesses = _leaves(node, "personal_data_access")
    assert accesses[:2] == [
        {"staff": "moderator-7", "what": "doctor_review_list", "status": "pending", "doctors": 1},
        {"staff": "moderator-7", "what": "diploma_scan", "doctor_id": doctor["id"]},
    ]
    # A staff subject that could be personal (an e-mail address) is logged as a keyed hash (the node's data key).
    assert accesses[2]["what"] == "dsr_list" and accesses[2]["staff"] == staff_ref("Officer.One@HQ.example", node.data_key)
    assert accesses[2]["staff"].startswith("hmac:")
    # Deciding is access too: the moderator read the scan or the change to decide it.
    decided = await client.post(f"/api/v1/moderation/doctors/{doctor['id']}/verification", json={"decision": "approve"}, headers=moderator)
    assert decided.status_code == 200
    changed = await client.post(
        "/api/v1/me/profile-changes", json={"changes": {"position": "Consultant"}}, headers=bearer(doctor["access_token"])
    )
    assert changed.status_code == 201
    second = staff(node, Role.MODERATOR, "moderator-8")
    refused = await client.post(f"/api/v1/moderation/changes/{changed.json()['id']}/decision", json={"decision": "reject"}, headers=second)
    assert refused.status_code == 422  # a rejection needs a reason: nothing decided, nothing logged
    assert len(_leaves(node, "personal_data_access")) == 4
    rejected = await client.post(
        f"/api/v1/moderation/changes/{changed.json()['id']}/decision",
        json={"decision": "reject", "reason": "does not match the passport"},
        headers=second,
    )
    assert rejected.status_code == 200
    assert _leaves(node, "personal_data_access")[3:] == [
        {"staff": "moderator-7", "what": "verification_decision", "doctor_id": doctor["id"], "decision": "verified"},
        {"staff": "moderator-8", "what": "profile_change_decision", "change_id": changed.json()["id"], "doctor_id": doctor["id"],
         "decision": "rejected"},
    ]  # fmt: skip
    with Session(sync_db(node)) as session:
        assert "Officer" not in str(session.execute(text("SELECT string_agg(convert_from(entry, 'UTF8'), '') FROM audit.leaf")).scalar())


async def test_the_cli_scan_and_report_leave_the_access_leaf_the_api_leaves(client: Any, node: Settings, tmp_path: Path) -> None:  # noqa: F811
    """Their findings name personal rows (here a doctor of another country), so each run is a staff access: the CLI's
    operator is the OS account (as `medfed token issue` names it), the API's the token's subject."""
    doctor = await _doctor(client, node)
    with Session(sync_db(node)) as session, session.begin():
        session.execute(text("UPDATE personal.doctor SET home_region = 'ru', citizenship = 'RU' WHERE id = :id"), {"id": doctor["id"]})
    assert _leaves(node, "personal_data_access") == []
    scanned = CliRunner().invoke(main, ["compliance", "scan", "--region", "kz"])
    assert scanned.exit_code == 1 and f"personal.doctor#{doctor['id']}" in scanned.stdout  # a failing scan is logged too
    operator = staff_ref(getpass.getuser(), node.data_key)
    assert _leaves(node, "personal_data_access") == [{"staff": operator, "what": "residency_scan", "findings": 2}]
    reported = CliRunner().invoke(main, ["compliance", "report", "--region", "kz", "--out", str(tmp_path / "r.json")])
    assert reported.exit_code == 0, reported.output
    officer = staff(node, Role.COMPLIANCE, "officer-1")
    assert (await client.get("/api/v1/compliance/scan", headers=officer)).status_code == 200
    assert (await client.get("/api/v1/compliance/report", headers=officer)).status_code == 200
    assert _leaves(node, "personal_data_access") == [
        {"staff": operator, "what": "residency_scan", "findings": 2},
        {"staff": operator, "what": "residency_report", "findings": 2},
        {"staff": "officer-1", "what": "residency_scan", "findings": 2},
        {"staff": "officer-1", "what": "residency_report", "findings": 2},
    ]


def test_a_staff_token_is_printed_only_after_its_grant_is_logged(node: Settings, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    issued = CliRunner().invoke(
        main, ["token", "issue", "--region", "kz", "--role", "moderator", "--role", "director", "--subject", "moderator-7", "--ttl", "600"]
    )
    assert issued.exit_code == 0, issued.output
    claims = jwt.decode(issued.stdout.strip(), node.signing_key.public_key(), algorithms=["EdDSA"], audience=node_identity(node))
    assert _leaves(node, "role_change") == [
        {"change": "granted", "staff": "moderator-7", "roles": ["director", "moderator"], "token_id": claims["jti"],
         "expires": claims["exp"], "operator": staff_ref(getpass.getuser(), node.data_key)},
    ]  # fmt: skip
    assert claims["exp"] - claims["iat"] == 600 and claims["roles"] == ["director", "moderator"]
    # The node's database down: no token, one line, nothing logged.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("MEDFED_DATABASE_URL", f"postgresql+psycopg://medfed@127.0.0.1:{closed}/medfed")
    refused = CliRunner().invoke(main, ["token", "issue", "--region", "kz", "--role", "ops"])
    assert refused.exit_code == 1 and refused.stdout == ""
    assert refused.stderr.startswith("medfed: the node's database is unavailable: ") and refused.stderr.count("\n") == 1
    assert "Connection refused" in refused.stderr
    assert len(_leaves(node, "role_change")) == 1


@pytest.mark.parametrize("others", [["compliance"], ["ops", "editor"]])
def test_an_hq_token_carries_no_node_role(node: Settings, others: list[str]) -> None:  # noqa: F811
    args = ["token", "issue", "--region", "kz", "--role", "hq", *(a for role in others for a in ("--role", role)), "--subject", "hq-1"]
    refused = CliRunner().invoke(main, args)
    why = f"the hq role cannot share a token with {', '.join(sorted(others))}: HQ sees the federation summary only; issue it its own token"
    assert (refused.exit_code, refused.stdout, refused.stderr) == (2, "", f"medfed: {why}\n")
    assert _leaves(node, "role_change") == []
    with pytest.raises(ValueError) as caught:
        issue_token(node, "hq-1", [Role.HQ, *(Role(r) for r in others)])
    assert str(caught.value) == why
    # The hq role alone is a token, as before.
    alone = CliRunner().invoke(main, ["token", "issue", "--region", "kz", "--role", "hq", "--subject", "hq-1"])
    assert alone.exit_code == 0, alone.output
    assert [leaf["roles"] for leaf in _leaves(node, "role_change")] == [["hq"]]


@pytest.mark.parametrize("status", ["Received", "pending", "officer@example.kz", ""])
async def test_an_unknown_status_filter_is_a_400_problem_and_logs_nothing(client: Any, node: Settings, status: str) -> None:  # noqa: F811
    officer = staff(node, Role.COMPLIANCE, "officer-1")
    url = "/api/v1/compliance/data-subject-requests"
    refused = await client.get(url, params={"status": status}, headers=officer)
    reason = "must be one of received, completed, rejected"
    assert (refused.status_code, refused.headers["content-type"]) == (400, "application/problem+json")
    body = refused.json()
    assert (body["type"], body["title"], body["status"], body["detail"], body["errors"]) == (
        "https://medfed.dev/problems/invalid-field", "Invalid field", 400, f"status: {reason}", [{"field": "status", "reason": reason}]
    )  # fmt: skip
    with Session(sync_db(node)) as session:
        assert session.scalars(select(AuditLeaf.kind)).all() == []
    # A known status is answered and logged as before.
    answered = await client.get(url, params={"status": "received"}, headers=officer)
    assert (answered.status_code, answered.json()) == (200, [])
    assert _leaves(node, "personal_data_access") == [{"staff": "officer-1", "what": "dsr_list", "status": "received", "requests": 0}]
