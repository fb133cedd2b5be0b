"""`medfed keys`: generating keys, writing, rotating, signing and showing the trust file, and one-line refusals."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medsync.envelope import key_id
from medsync.keys_cli import keys
from medsync.trust import load_chain, read_version, version_path


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(keys, [str(arg) for arg in args])


def rotate(directory: Path, new_key: Path, *options: str, signers: list[Path]) -> Result:
    """`keys rotate` of kz's key in `directory`, signed by `signers`."""
    return run("rotate", "--dir", directory, "--region", "kz", "--new-key", new_key, *options, *(f"--sign-with={path}" for path in signers))


def refused(result: Result) -> str:
    """The single stderr line of a refusal (exit status 1, no traceback)."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("medfed: ")
    assert "Traceback" not in result.output
    return lines[0]


def private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def pems(tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / f"{name}.pem" for name in ("ru", "kz", "uz", "kz2")}
    for path in paths.values():
        assert run("generate", "--out", path).exit_code == 0
    return paths


@pytest.fixture
def trust_dir(tmp_path: Path, pems: dict[str, Path]) -> Path:
    directory = tmp_path / "trust"
    result = run("init", "--dir", directory, *(f"--region-key={r}={pems[r]}" for r in ("ru", "kz", "uz")))
    assert result.exit_code == 0, result.output
    return directory


def test_generate_writes_an_owner_only_pkcs8_key(tmp_path: Path) -> None:
    out = tmp_path / "node.pem"
    result = run("generate", "--out", out)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert key_id(private_key(out).public_key()) in result.stdout


def test_generate_never_overwrites_a_key(tmp_path: Path) -> None:
    out = tmp_path / "node.pem"
    out.write_text("precious")
    assert "File exists" in refused(run("generate", "--out", out))
    assert out.read_text() == "precious"


def test_init_writes_version_one_signed_by_every_key(trust_dir: Path, pems: dict[str, Path]) -> None:
    document = load_chain(trust_dir, now=now())
    assert document.version == 1
    assert document.threshold == 2  # a majority of three
    assert set(document.nodes) == {"ru", "kz", "uz"}
    assert len(read_version(version_path(trust_dir, 1)).signatures) == 3
    assert set(document.keys_for("kz", now())) == {key_id(private_key(pems["kz"]).public_key())}


def test_init_with_an_explicit_threshold(tmp_path: Path, pems: dict[str, Path]) -> None:
    directory = tmp_path / "trust"
    result = run("init", "--dir", directory, "--region-key", f"ru={pems['ru']}", "--region-key", f"kz={pems['kz']}", "--threshold", "1")
    assert result.exit_code == 0, result.output
    assert load_chain(directory, now=now()).threshold == 1


@pytest.mark.parametrize(
    ("region_key", "says"),
    [
        ("ru", "expected REGION=PEM"),
        ("RUS={pem}", "not a region code"),
        ("ru={missing}", "No such file"),
        ("ru={not_pem}", "not an unencrypted PEM private key"),
    ],
)
def test_init_refusals_are_one_line(tmp_path: Path, pems: dict[str, Path], region_key: str, says: str) -> None:
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("hello")
    value = region_key.format(pem=pems["ru"], missing=tmp_path / "absent.pem", not_pem=not_pem)
    assert says in refused(run("init", "--dir", tmp_path / "trust", "--region-key", value))


def test_init_refuses_a_threshold_above_the_number_of_keys(tmp_path: Path, pems: dict[str, Path]) -> None:
    line = refused(run("init", "--dir", tmp_path / "trust", "--region-key", f"ru={pems['ru']}", "--threshold", "2"))
    assert "trust.malformed" in line
    assert not (tmp_path / "trust" / "1.trust.json").exists()


def test_init_never_replaces_an_existing_trust_file(trust_dir: Path, pems: dict[str, Path]) -> None:
    before = version_path(trust_dir, 1).read_bytes()
    assert "already exists" in refused(run("init", "--dir", trust_dir, "--region-key", f"ru={pems['ru']}"))
    assert version_path(trust_dir, 1).read_bytes() == before


def test_rotate_replaces_a_compromised_key(trust_dir: Path, pems: dict[str, Path]) -> None:
    result = rotate(trust_dir, pems["kz2"], "--drop-old", signers=[pems["ru"], pems["uz"]])
    assert result.exit_code == 0, result.output
    document = load_chain(trust_dir, now=now())
    assert document.version == 2
    assert set(document.keys_for("kz", now())) == {key_id(private_key(pems["kz2"]).public_key())}


def test_rotate_adds_a_key_from_a_public_pem(trust_dir: Path, pems: dict[str, Path], tmp_path: Path) -> None:
    public = tmp_path / "kz2.pub"
    new_key = private_key(pems["kz2"]).public_key()
    public.write_bytes(new_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    result = rotate(trust_dir, public, signers=[pems["ru"], pems["kz"]])
    assert result.exit_code == 0, result.output
    assert len(load_chain(trust_dir, now=now()).keys_for("kz", now())) == 2


def test_refused_rotation_is_one_line_and_writes_nothing(trust_dir: Path, pems: dict[str, Path]) -> None:
    result = rotate(trust_dir, pems["kz2"], "--drop-old", signers=[pems["kz"]])
    assert "trust.old_threshold" in refused(result)
    assert not version_path(trust_dir, 2).exists()
    assert load_chain(trust_dir, now=now()).version == 1


def test_raised_threshold_not_met_is_refused(trust_dir: Path, pems: dict[str, Path]) -> None:
    result = rotate(trust_dir, pems["kz2"], "--threshold", "3", signers=[pems["ru"], pems["uz"]])
    assert "trust.new_threshold" in refused(result)
    assert not version_path(trust_dir, 2).exists()


def test_draft_then_signatures_collected_one_at_a_time(trust_dir: Path, pems: dict[str, Path]) -> None:
    draft = rotate(trust_dir, pems["kz2"], "--drop-old", "--draft", signers=[pems["ru"]])
    assert draft.exit_code == 0, draft.output
    assert "not yet accepted" in draft.stdout
    signed = run("sign", "--dir", trust_dir, "--version", "2", "--sign-with", pems["uz"])
    assert signed.exit_code == 0, signed.output
    assert "verifies up to version 2" in signed.stdout
    assert load_chain(trust_dir, now=now()).version == 2
    assert len(read_version(version_path(trust_dir, 2)).signatures) == 2


def test_sign_a_missing_version_is_one_line(trust_dir: Path, pems: dict[str, Path]) -> None:
    assert "No such file" in refused(run("sign", "--dir", trust_dir, "--version", "5", "--sign-with", pems["ru"]))


def test_show_prints_each_region_key_and_window(trust_dir: Path, pems: dict[str, Path]) -> None:
    result = run("show", "--dir", trust_dir)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("version 1, threshold 2, ")
    for region in ("ru", "kz", "uz"):
        assert f"\n{region}\n" in result.stdout
        assert key_id(private_key(pems[region]).public_key()) in result.stdout
    assert result.stdout.count("  valid\n") == 3


def test_show_json(trust_dir: Path, pems: dict[str, Path]) -> None:
    result = run("show", "--dir", trust_dir, "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert (shown["version"], shown["threshold"]) == (1, 2)
    [kz_key] = shown["nodes"]["kz"]["keys"]
    assert kz_key["keyid"] == key_id(private_key(pems["kz"]).public_key())
    assert kz_key["valid_now"] is True


def test_show_refuses_a_broken_chain_in_one_line(trust_dir: Path, tmp_path: Path) -> None:
    assert "trust.missing" in refused(run("show", "--dir", tmp_path / "nowhere"))
    version_path(trust_dir, 3).write_bytes(version_path(trust_dir, 1).read_bytes())
    assert "trust.version_jump" in refused(run("show", "--dir", trust_dir))
