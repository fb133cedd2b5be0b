"""The federation trust file: the TUF-style rotation table of the design brief (section 7) and key windows."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medsync.canonical import canonical_bytes
from medsync.envelope import Envelope, key_id, sign, verify
from medsync.errors import SignatureError, TrustError
from medsync.trust import (
    PAYLOAD_TYPE,
    TrustDocument,
    TrustNode,
    add_signatures,
    load_chain,
    new_document,
    read_version,
    sign_document,
    trust_key,
    verify_initial,
    verify_rotation,
    version_path,
    write_version,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
YEAR = timedelta(days=365)
MANIFEST = "application/vnd.medfed.manifest+json"

Keys = Mapping[str, Iterable[Ed25519PrivateKey]]


def generate() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def ru() -> Ed25519PrivateKey:
    return generate()


@pytest.fixture
def kz() -> Ed25519PrivateKey:
    return generate()


@pytest.fixture
def uz() -> Ed25519PrivateKey:
    return generate()


def document(version: int, keys: Keys, *, threshold: int = 2, expires_at: datetime = NOW + YEAR) -> TrustDocument:
    nodes = {
        region: TrustNode(keys=tuple(trust_key(k.public_key(), not_before=NOW - YEAR, not_after=NOW + YEAR) for k in region_keys))
        for region, region_keys in keys.items()
    }
    return new_document(version=version, threshold=threshold, nodes=nodes, issued_at=NOW - timedelta(days=1), expires_at=expires_at)


def rotation_refused(current: TrustDocument, envelope: Envelope) -> str:
    with pytest.raises(TrustError) as caught:
        verify_rotation(current, envelope)
    return caught.value.code


def chain_refused(directory: Path, now: datetime = NOW) -> str:
    with pytest.raises(TrustError) as caught:
        load_chain(directory, now=now)
    return caught.value.code


@pytest.fixture
def v1(ru: Ed25519PrivateKey, kz: Ed25519PrivateKey, uz: Ed25519PrivateKey) -> TrustDocument:
    return document(1, {"ru": [ru], "kz": [kz], "uz": [uz]})


@pytest.fixture
def trust_dir(tmp_path: Path, v1: TrustDocument, ru: Ed25519PrivateKey, kz: Ed25519PrivateKey, uz: Ed25519PrivateKey) -> Path:
    write_version(tmp_path, sign_document(v1, [ru, kz, uz]))
    return tmp_path


# --- the rotation table ---------------------------------------------------------------------------------


def test_old_to_new_signed_by_both_is_accepted(
    trust_dir: Path, v1: TrustDocument, ru: Ed25519PrivateKey, kz: Ed25519PrivateKey, uz: Ed25519PrivateKey
) -> None:
    kz_new = generate()
    v2 = document(2, {"ru": [ru], "kz": [kz_new], "uz": [uz]})
    envelope = sign_document(v2, [ru, uz, kz_new])
    assert verify_rotation(v1, envelope) == v2
    write_version(trust_dir, envelope)
    assert load_chain(trust_dir, now=NOW) == v2


def test_missing_the_old_side_is_rejected(v1: TrustDocument) -> None:
    fresh = {"ru": [generate()], "kz": [generate()], "uz": [generate()]}
    v2 = document(2, fresh)
    assert rotation_refused(v1, sign_document(v2, [k for keys in fresh.values() for k in keys])) == "trust.old_threshold"


def test_one_old_key_is_not_the_old_threshold(v1: TrustDocument, kz: Ed25519PrivateKey) -> None:
    fresh = {"ru": [generate()], "kz": [kz], "uz": [generate()]}
    v2 = document(2, fresh)
    assert rotation_refused(v1, sign_document(v2, [k for keys in fresh.values() for k in keys])) == "trust.old_threshold"


def test_missing_the_new_side_is_rejected(v1: TrustDocument, ru: Ed25519PrivateKey, kz: Ed25519PrivateKey) -> None:
    v2 = document(2, {"ru": [generate()], "kz": [generate()], "uz": [generate()]})
    assert rotation_refused(v1, sign_document(v2, [ru, kz])) == "trust.new_threshold"


def test_threshold_raised_and_not_met_is_rejected(
    v1: TrustDocument, ru: Ed25519PrivateKey, kz: Ed25519PrivateKey, uz: Ed25519PrivateKey
) -> None:
    v2 = document(2, {"ru": [ru], "kz": [kz], "uz": [uz]}, threshold=3)
    assert rotation_refused(v1, sign_document(v2, [ru, kz])) == "trust.new_threshold"
    assert verify_rotation(v1, sign_document(v2, [ru, kz, uz])).threshold == 3


def test_version_jump_is_rejected(
    trust_dir: Path, v1: TrustDocument, ru: Ed25519PrivateKey, kz: Ed25519PrivateKey, uz: Ed25519PrivateKey
) -> None:
    everyone = {"ru": [ru], "kz": [kz], "uz": [uz]}
    v3 = sign_document(document(3, everyone), [ru, kz, uz])
    assert rotation_refused(v1, v3) == "trust.version_jump"
    write_version(trust_dir, v3)
    assert chain_refused(trust_dir) == "trust.version_jump"


def test_replaying_an_old_version_is_rejected(
    v1: TrustDocument, ru: Ed25519PrivateKey, kz: Ed25519PrivateKey, uz: Ed25519PrivateKey
) -> None:
    assert rotation_refused(v1, sign_document(v1, [ru, kz, uz])) == "trust.version_jump"


def test_the_chain_follows_every_consecutive_version(
    trust_dir: Path, v1: TrustDocument, ru: Ed25519PrivateKey, kz: Ed25519PrivateKey, uz: Ed25519PrivateKey
) -> None:
    kz2, kz3 = generate(), generate()
    write_version(trust_dir, sign_document(document(2, {"ru": [ru], "kz": [kz2], "uz": [uz]}), [ru, uz]))
    # Version 3 needs version 2's keys: kz's first key no longer counts for the old side.
    v3 = document(3, {"ru": [ru], "kz": [kz3], "uz": [uz]})
    assert rotation_refused(load_chain(trust_dir, now=NOW), sign_document(v3, [kz, kz3])) == "trust.old_threshold"
    write_version(trust_dir, sign_document(v3, [kz2, uz]))
    assert chain_refused(trust_dir) == "trust.new_threshold"
    write_version(trust_dir, sign_document(v3, [kz3]))
    assert load_chain(trust_dir, now=NOW).version == 3


def test_signatures_collected_one_operator_at_a_time(v1: TrustDocument, ru: Ed25519PrivateKey, uz: Ed25519PrivateKey) -> None:
    kz_new = generate()
    v2 = document(2, {"ru": [ru], "kz": [kz_new], "uz": [uz]})
    by_ru = sign_document(v2, [ru])
    assert rotation_refused(v1, by_ru) == "trust.old_threshold"
    assert verify_rotation(v1, add_signatures(by_ru, [uz])) == v2


# --- key windows and revocation -------------------------------------------------------------------------


def test_a_removed_key_is_revoked(v1: TrustDocument, ru: Ed25519PrivateKey, kz: Ed25519PrivateKey, uz: Ed25519PrivateKey) -> None:
    kz_new = generate()
    assert key_id(kz.public_key()) in v1.keys_for("kz", NOW)
    v2 = verify_rotation(v1, sign_document(document(2, {"ru": [ru], "kz": [kz_new], "uz": [uz]}), [ru, uz, kz_new]))
    assert set(v2.keys_for("kz", NOW)) == {key_id(kz_new.public_key())}
    assert key_id(kz.public_key()) not in v2.root_keys()


def test_keys_for_excludes_keys_outside_their_window(ru: Ed25519PrivateKey) -> None:
    past, current, future = generate(), generate(), generate()
    windows = [(past, NOW - 2 * YEAR, NOW - YEAR), (current, NOW - YEAR, NOW + YEAR), (future, NOW + timedelta(days=1), NOW + YEAR)]
    kz_node = TrustNode(keys=tuple(trust_key(k.public_key(), not_before=start, not_after=end) for k, start, end in windows))
    ru_node = TrustNode(keys=(trust_key(ru.public_key(), not_before=NOW, not_after=NOW + YEAR),))
    doc = new_document(version=1, threshold=1, nodes={"kz": kz_node, "ru": ru_node}, issued_at=NOW, expires_at=NOW + YEAR)
    assert set(doc.keys_for("kz", NOW)) == {key_id(current.public_key())}
    assert set(doc.keys_for("kz", NOW + timedelta(days=2))) == {key_id(current.public_key()), key_id(future.public_key())}
    assert set(doc.keys_for("kz", NOW - YEAR - timedelta(seconds=1))) == {key_id(past.public_key())}
    # not_before is inclusive, not_after exclusive.
    assert set(doc.keys_for("ru", NOW)) == {key_id(ru.public_key())}
    assert doc.keys_for("ru", NOW + YEAR) == {}
    assert doc.keys_for("uz", NOW) == {}
    # Windows limit manifest signatures only: every listed key still signs the trust file.
    assert len(doc.root_keys()) == 4


def test_keys_for_refuses_a_naive_datetime(v1: TrustDocument) -> None:
    with pytest.raises(ValueError, match="naive"):
        v1.keys_for("kz", datetime(2026, 11, 21, 12, 0))


def test_fast_forward_after_key_compromise_recovered_by_rotation(
    trust_dir: Path, v1: TrustDocument, ru: Ed25519PrivateKey, kz: Ed25519PrivateKey, uz: Ed25519PrivateKey
) -> None:
    # The attacker holds kz's key and signs a manifest that fast-forwards kz's channel: at first it is trusted.
    forged = sign(MANIFEST, b'{"origin":"kz","sequence":1000000}', [kz])
    assert verify(forged, payload_type=MANIFEST, trusted=load_chain(trust_dir, now=NOW).keys_for("kz", NOW))

    # Alone, the stolen key cannot rewrite the trust file in the attacker's favour.
    attacker = generate()
    hijack = document(2, {"ru": [ru], "kz": [attacker], "uz": [uz]})
    assert rotation_refused(v1, sign_document(hijack, [kz, attacker])) == "trust.old_threshold"

    # ru and uz rotate kz's key out; the new kz key signs too (threshold 2 on both sides).
    kz_new = generate()
    v2 = document(2, {"ru": [ru], "kz": [kz_new], "uz": [uz]})
    write_version(trust_dir, add_signatures(sign_document(v2, [ru, uz]), [kz_new]))
    latest = load_chain(trust_dir, now=NOW)
    assert latest.version == 2

    with pytest.raises(SignatureError) as caught:
        verify(forged, payload_type=MANIFEST, trusted=latest.keys_for("kz", NOW))
    assert caught.value.code == "signature.untrusted"
    assert rotation_refused(latest, sign_document(document(3, {"ru": [ru], "kz": [attacker], "uz": [uz]}), [kz, attacker])) == (
        "trust.old_threshold"
    )
    honest = sign(MANIFEST, b'{"origin":"kz","sequence":8}', [kz_new])
    assert verify(honest, payload_type=MANIFEST, trusted=latest.keys_for("kz", NOW))


# --- loading the chain from files -----------------------------------------------------------------------


def test_an_expired_latest_version_is_refused(tmp_path: Path, ru: Ed25519PrivateKey, kz: Ed25519PrivateKey) -> None:
    doc = document(1, {"ru": [ru], "kz": [kz]}, expires_at=NOW + timedelta(days=1))
    write_version(tmp_path, sign_document(doc, [ru, kz]))
    assert load_chain(tmp_path, now=NOW + timedelta(hours=23)) == doc
    assert chain_refused(tmp_path, NOW + timedelta(days=1)) == "trust.expired"


def test_no_first_version(tmp_path: Path) -> None:
    assert chain_refused(tmp_path) == "trust.missing"
    assert chain_refused(tmp_path / "absent") == "trust.missing"


def test_first_version_needs_a_threshold_of_its_own_keys(tmp_path: Path, v1: TrustDocument, ru: Ed25519PrivateKey) -> None:
    write_version(tmp_path, sign_document(v1, [ru]))
    assert chain_refused(tmp_path) == "trust.new_threshold"


def test_first_file_must_hold_version_one(tmp_path: Path, ru: Ed25519PrivateKey, kz: Ed25519PrivateKey) -> None:
    envelope = sign_document(document(2, {"ru": [ru], "kz": [kz]}), [ru, kz])
    version_path(tmp_path, 1).write_bytes(envelope.encode())
    assert chain_refused(tmp_path) == "trust.malformed"


def test_a_tampered_file_is_refused(trust_dir: Path, ru: Ed25519PrivateKey, uz: Ed25519PrivateKey) -> None:
    v2 = sign_document(document(2, {"ru": [ru], "kz": [generate()], "uz": [uz]}), [ru, uz])
    # Still a well-formed canonical document, so only the signatures can catch it.
    tampered = v2.payload_bytes().replace(b'"kz"', b'"kx"')
    assert tampered != v2.payload_bytes()
    path = version_path(trust_dir, 2)
    path.write_bytes(msgspec.structs.replace(v2, payload=base64.b64encode(tampered).decode()).encode())
    assert chain_refused(trust_dir) == "trust.old_threshold"
    path.write_bytes(b"{not json")
    assert chain_refused(trust_dir) == "trust.malformed"


def test_another_payload_type_is_refused(v1: TrustDocument, ru: Ed25519PrivateKey, kz: Ed25519PrivateKey) -> None:
    relabelled = sign("application/vnd.medfed.manifest+json", v1.encode(), [ru, kz])
    with pytest.raises(TrustError) as caught:
        verify_initial(relabelled)
    assert caught.value.code == "trust.malformed"


def test_other_files_in_the_directory_are_ignored(trust_dir: Path, v1: TrustDocument) -> None:
    (trust_dir / "README.md").write_text("trust files")
    (trust_dir / "02.trust.json").write_text("ignored: not a version file name")
    (trust_dir / "2.trust.json.tmp").write_text("ignored: an interrupted write")
    assert load_chain(trust_dir, now=NOW) == v1


def test_write_version_merges_signatures_and_refuses_another_document(
    tmp_path: Path, v1: TrustDocument, ru: Ed25519PrivateKey, kz: Ed25519PrivateKey, uz: Ed25519PrivateKey
) -> None:
    write_version(tmp_path, sign_document(v1, [ru]))
    path = write_version(tmp_path, sign_document(v1, [kz]))
    assert [s.keyid for s in read_version(path).signatures] == [key_id(ru.public_key()), key_id(kz.public_key())]
    assert load_chain(tmp_path, now=NOW) == v1
    other = document(1, {"ru": [ru], "kz": [kz], "uz": [uz]}, threshold=3)
    with pytest.raises(TrustError) as caught:
        write_version(tmp_path, sign_document(other, [ru, kz, uz]))
    assert caught.value.code == "trust.conflict"


# --- the document's own rules ---------------------------------------------------------------------------


def raw_document(ru: Ed25519PrivateKey, **changes: object) -> dict[str, object]:
    raw: dict[str, object] = msgspec.to_builtins(document(1, {"ru": [ru]}, threshold=1))
    raw.update(changes)
    return raw


def malformed(raw: object) -> str:
    with pytest.raises(TrustError) as caught:
        TrustDocument.decode(canonical_bytes(raw))
    return caught.value.code


def test_document_round_trip(v1: TrustDocument) -> None:
    assert TrustDocument.decode(v1.encode()) == v1


@pytest.mark.parametrize(
    "changes",
    [
        {"version": 0},
        {"threshold": 2},
        {"threshold": 0},
        {"issued_at": "2026-11-21 12:00:00"},
        {"issued_at": "2026-13-01T00:00:00Z"},
        {"expires_at": "2020-01-01T00:00:00Z"},
        {"nodes": {"RU": {"keys": []}}},
        {"extra": True},
    ],
)
def test_malformed_documents(ru: Ed25519PrivateKey, changes: dict[str, object]) -> None:
    assert malformed(raw_document(ru, **changes)) == "trust.malformed"


def test_one_key_under_two_regions_is_malformed(ru: Ed25519PrivateKey) -> None:
    raw = raw_document(ru)
    nodes = raw["nodes"]
    assert isinstance(nodes, dict)
    assert malformed({**raw, "nodes": {"ru": nodes["ru"], "kz": nodes["ru"]}}) == "trust.malformed"


def test_a_key_window_that_closes_before_it_opens_is_malformed(ru: Ed25519PrivateKey) -> None:
    entry = msgspec.to_builtins(trust_key(ru.public_key(), not_before=NOW, not_after=NOW))
    assert malformed(raw_document(ru, nodes={"ru": {"keys": [entry]}})) == "trust.malformed"


def test_a_key_that_is_not_32_bytes_is_malformed(ru: Ed25519PrivateKey) -> None:
    entry = {"public_key": "AAAA", "not_before": "2026-01-01T00:00:00Z", "not_after": "2027-01-01T00:00:00Z"}
    assert malformed(raw_document(ru, nodes={"ru": {"keys": [entry]}})) == "trust.malformed"


def test_a_non_canonical_document_is_malformed(v1: TrustDocument) -> None:
    with pytest.raises(TrustError) as caught:
        TrustDocument.decode(v1.encode() + b" ")
    assert caught.value.code == "trust.malformed"
    assert PAYLOAD_TYPE == "application/vnd.medfed.trust+json"
