"""Channel repair with real nodes: manifests that expired unsent are signed again; a channel whose ends no
longer agree (equivocation, a stolen key) is re-based by a reset both countries' operators take part in."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import httpx
import msgspec
import pytest
from sqlalchemy import text

from medsync import inbound, manifest, outbound, reset
from medsync.canonical import canonical_bytes
from medsync.envelope import sign
from medsync.errors import SyncError
from medsync.reconcile import reconcile
from tests.attacks.conftest import document, item, post, signed, token_from
from tests.conftest import Engines
from tests.sync_harness import Node, deliver, draft, editor_headers, start_nodes

DAY = datetime.timedelta(days=1)


@pytest.fixture(scope="module")
def nodes(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Node]]:
    yield from start_nodes(engines, tmp_path_factory.mktemp("repair"), ["ru", "kz", "uz"], serve=["ru", "kz"], tag="repair")


@pytest.fixture(autouse=True)
def empty(nodes: dict[str, Node]) -> Iterator[None]:
    yield
    for node in nodes.values():
        node.empty()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def publish(ru: Node, title: str) -> str:
    headers = editor_headers(ru)
    created = httpx.post(f"{ru.url}/api/v1/content", json=draft(title, targets=["kz"]), headers=headers)
    assert created.status_code == 201, created.text
    published = httpx.post(f"{ru.url}/api/v1/content/{created.json()['id']}/publish", headers=headers)
    assert published.status_code == 200, published.text
    return str(created.json()["id"])


def sent(ru: Node) -> list[tuple[int, str, str]]:
    """ru's manifests to kz: sequence, status, hash."""
    with ru.ctx.engine.connect() as conn:
        rows = conn.execute(text("SELECT sequence, status, manifest_hash FROM federation.manifest_out WHERE target = 'kz' ORDER BY 1"))
        return [tuple(r) for r in rows]  # type: ignore[misc]


def channel_out(ru: Node) -> tuple[int, str, bytes | None]:
    with ru.ctx.engine.connect() as conn:
        row = conn.execute(text("SELECT next_sequence, last_hash, reset_envelope FROM federation.channel_out WHERE target = 'kz'")).one()
        return row[0], row[1], row[2]


def kz_items(kz: Node) -> dict[str, tuple[int, str]]:
    return {str(i): (v, s) for i, v, s in kz.state()["items"]}  # type: ignore[attr-defined]


def statement(ru: Node, *, next_sequence: int, issued: datetime.datetime | None = None, target: str = "kz") -> bytes:
    issued = issued or _now()
    body = reset.ResetStatement(
        spec=reset.SPEC, origin="ru", target=target, channel=f"ru>{target}", next_sequence=next_sequence, reason="equivocation",
        issued_at=manifest.timestamp(issued), expires_at=manifest.timestamp(issued + DAY),
    )  # fmt: skip
    return sign(reset.PAYLOAD_TYPE, canonical_bytes(msgspec.to_builtins(body)), [ru.key]).encode()


def post_reset(kz: Node, data: bytes, token: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return httpx.post(f"{kz.url}/federation/v1/reset", content=data, headers=headers, timeout=30)


# -- manifests that expired unsent -----------------------------------------------------------------------


def test_a_manifest_that_expired_unsent_is_signed_again_and_applied(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    item_id = publish(ru, "Зимний уход")
    # Built eight days ago, while kz was away: it expired before it could be sent.
    assert outbound.build_manifests(ru.ctx, "kz", now=_now() - 8 * DAY) == 1
    [(_, _, stale)] = sent(ru)

    deliver(ru, kz)

    assert kz_items(kz) == {item_id: (1, "published")}, kz.decisions()
    assert kz.refusals() == []  # sent once, fresh: never refused as expired
    [(sequence, status, fresh)] = sent(ru)
    assert (sequence, status) == (1, "applied") and fresh != stale
    assert channel_out(ru)[:2] == (2, fresh)
    assert kz.state()["channels"] == [("ru", 1, fresh, 1)]


def test_what_the_target_took_while_its_answer_was_lost_is_not_signed_again(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    item_id = publish(ru, "Зимний уход")
    # Built almost seven days ago; kz took it but ru never heard back, and now it is about to expire.
    outbound.build_manifests(ru.ctx, "kz", now=_now() - 7 * DAY + datetime.timedelta(minutes=30))
    [(_, _, digest)] = sent(ru)
    with ru.ctx.engine.connect() as conn:
        envelope = conn.execute(text("SELECT envelope FROM federation.manifest_out WHERE target = 'kz'")).scalar_one()
    assert post(kz, envelope, token_from(ru)).status_code == 202

    deliver(ru, kz)

    assert sent(ru) == [(1, "applied", digest)]  # the same bytes: nothing signed again, nothing posted twice
    assert kz_items(kz) == {item_id: (1, "published")}
    assert kz.refusals() == []


# -- resets ----------------------------------------------------------------------------------------------


def _restore_ru_from_an_old_backup(ru: Node) -> None:
    """ru loses everything it knew about the channel after a backup taken before its first manifest."""
    with ru.ctx.engine.begin() as conn:
        conn.execute(text("DELETE FROM federation.manifest_out WHERE target = 'kz'"))
        conn.execute(text("UPDATE federation.channel_out SET next_sequence = 1, last_hash = '', acked_sequence = 0"))
        conn.execute(text("UPDATE federation.outbox SET status = 'pending', manifest_sequence = NULL, reasons = '[]'"))


def test_an_equivocating_channel_is_reset_once_the_target_allows_it(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    first = publish(ru, "Первая заметка")
    deliver(ru, kz)
    _restore_ru_from_an_old_backup(ru)
    second = publish(ru, "Вторая заметка")

    # ru's new manifest 1 is not the one kz holds: refused, and the channel is stuck.
    with pytest.raises(SyncError) as stuck:
        deliver(ru, kz)
    assert stuck.value.code == "delivery.refused"
    assert kz.refusals()[-1] == ("ru", "sequence.equivocation")
    [(_, _, equivocated)] = sent(ru)

    # ru's operators alone cannot reset it: refused before anything changes on either side.
    kz_before, ru_before = kz.state(), (sent(ru), channel_out(ru))
    with httpx.Client(timeout=30) as http, pytest.raises(reset.ResetError) as refused:
        reset.start(ru.ctx, "kz", http, reason="equivocation")
    assert refused.value.code == "reset.not_permitted"
    assert kz.state() == kz_before and (sent(ru), channel_out(ru)) == ru_before

    reset.allow(kz.ctx, "ru")
    with httpx.Client(timeout=30) as http:
        assert reset.start(ru.ctx, "kz", http, reason="equivocation") == 2
    assert sent(ru) == [(1, "abandoned", equivocated)]
    deliver(ru, kz)  # the statement first, then manifest 2 with both items

    assert kz_items(kz) == {first: (1, "published"), second: (1, "published")}, kz.decisions()
    assert channel_out(ru)[2] is None  # confirmed
    assert [(seq, status) for seq, status, _ in sent(ru)] == [(1, "abandoned"), (2, "applied")]
    assert [(o, s, st) for o, s, st, _ in kz.decisions() if st in ("reset", "applied")] == [
        ("ru", 1, "applied"),
        ("ru", None, "reset"),
        ("ru", 2, "applied"),
    ]
    # The abandoned manifest can never enter the channel again.
    with ru.ctx.engine.connect() as conn:
        old = conn.execute(text("SELECT envelope FROM federation.manifest_out WHERE sequence = 1")).scalar_one()
    before = kz.state()
    assert post(kz, old, token_from(ru)).json()["code"] == "sequence.equivocation"
    assert kz.state() == before


def test_a_reset_with_revert_removes_what_a_stolen_key_got_in_and_anti_entropy_restores_the_rest(nodes: dict[str, Node]) -> None:
    ru, kz = nodes["ru"], nodes["kz"]
    honest = publish(ru, "Честная заметка")
    deliver(ru, kz)
    [(_, _, first_hash)] = sent(ru)
    # The thief, with ru's key, overwrites the honest item and plants one of its own as manifest 2.
    forged = document("Поддельная заметка")
    planted = "01a20000-0000-7000-8000-000000000777"
    data, _ = signed(ru, sequence=2, previous=first_hash, items=(manifest.upsert_item(honest, 2, forged), item(777)))
    assert post(kz, data, token_from(ru)).status_code == 202
    with httpx.Client(timeout=30) as http:
        inbound.apply_pending(kz.ctx, "ru", http)
    assert kz_items(kz) == {honest: (2, "published"), planted: (1, "published")}

    second = publish(ru, "Вторая честная заметка")
    with pytest.raises(SyncError):
        deliver(ru, kz)
    assert kz.refusals()[-1] == ("ru", "sequence.equivocation")

    reset.allow(kz.ctx, "ru", revert_from=2)
    with httpx.Client(timeout=30) as http:
        assert reset.start(ru.ctx, "kz", http, reason="compromise") == 3
        deliver(ru, kz)
        assert kz_items(kz) == {second: (1, "published")}  # both items manifest 2 touched are gone
        assert ("ru", 2, "reverted") in [(o, s, st) for o, s, st, _ in kz.decisions()]
        result = reconcile(ru.ctx, "kz", http)
        assert result.requeued == 1 and not result.in_sync
    deliver(ru, kz)
    assert kz_items(kz) == {honest: (1, "published"), second: (1, "published")}
    assert kz.count(f"SELECT count(*) FROM shared.content_version WHERE item_id = '{honest}'") == 1  # the forged version is gone


# -- the reset door --------------------------------------------------------------------------------------


def test_reset_statements_are_refused_without_a_permit_from_a_stranger_when_stale_or_behind(nodes: dict[str, Node]) -> None:
    ru, kz, uz = nodes["ru"], nodes["kz"], nodes["uz"]
    publish(ru, "Заметка")
    deliver(ru, kz)
    before = kz.state()

    answer = post_reset(kz, statement(ru, next_sequence=5), token_from(ru))
    assert (answer.status_code, answer.json()["code"]) == (403, "reset.not_permitted")
    assert kz.state() == before

    reset.allow(kz.ctx, "ru")
    before = kz.state()
    cases = [
        # uz sends a statement ru signed: the signature is checked against the caller's keys.
        (post_reset(kz, statement(ru, next_sequence=5), token_from(uz)), 403, "signature.untrusted"),
        (post_reset(kz, statement(ru, next_sequence=5, issued=_now() - 2 * DAY), token_from(ru)), 400, "reset.expired"),
        (post_reset(kz, statement(ru, next_sequence=5, target="uz"), token_from(ru)), 400, "reset.wrong_target"),
        (post_reset(kz, statement(ru, next_sequence=1), token_from(ru)), 409, "reset.behind"),
        (post_reset(kz, statement(ru, next_sequence=5), "not-a-token"), 401, "jwt.malformed"),
    ]
    assert [(a.status_code, a.json()["code"]) for a, _, _ in cases] == [(s, c) for _, s, c in cases]
    assert kz.state() == before


def test_the_channel_view_is_only_for_the_channels_origin(nodes: dict[str, Node]) -> None:
    ru, kz, uz = nodes["ru"], nodes["kz"], nodes["uz"]
    url = f"{kz.url}/federation/v1/channel"
    mine = httpx.get(url, params={"origin": "ru"}, headers={"Authorization": f"Bearer {token_from(ru)}"})
    assert mine.status_code == 200 and mine.json()["received_sequence"] == 0
    other = httpx.get(url, params={"origin": "ru"}, headers={"Authorization": f"Bearer {token_from(uz)}"})
    assert (other.status_code, other.json()["code"]) == (403, "reconcile.not_your_channel")
    anonymous = httpx.get(url, params={"origin": "ru"})
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "jwt.missing")


def test_operators_reset_a_channel_with_the_cli(nodes: dict[str, Node]) -> None:
    from click.testing import CliRunner

    from medplat.cli import main

    ru, kz = nodes["ru"], nodes["kz"]
    publish(ru, "Заметка")
    deliver(ru, kz)
    runner = CliRunner()

    refused = runner.invoke(main, ["sync", "reset", "--region", "ru", "--target", "kz", "--reason", "restore"], env=ru.env)
    assert refused.exit_code != 0
    assert refused.output.strip().splitlines()[-1].endswith("kz's operators have not allowed a reset of this channel")

    unknown = runner.invoke(main, ["sync", "allow-reset", "--region", "kz", "--origin", "xx"], env=kz.env)
    assert unknown.exit_code != 0 and "'xx' is not another node of the federation" in unknown.output

    allowed = runner.invoke(main, ["sync", "allow-reset", "--region", "kz", "--origin", "ru"], env=kz.env)
    assert allowed.exit_code == 0, allowed.output
    assert allowed.stdout.startswith("ru>kz may be reset until ")

    done = runner.invoke(main, ["sync", "reset", "--region", "ru", "--target", "kz", "--reason", "restore"], env=ru.env)
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == "ru>kz continues at #2; anti-entropy sends again whatever kz lacks"
    assert kz.state()["channels"] == [("ru", 1, channel_out(ru)[1], 1)]
    assert channel_out(ru)[2] is None
