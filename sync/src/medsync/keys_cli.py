"""`medfed keys`: operators' commands for Ed25519 signing keys and the versioned federation trust file.

Every refusal is one readable line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import click
import msgspec
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medsync.envelope import key_id
from medsync.errors import SyncError, TrustError
from medsync.trust import (
    TrustDocument,
    TrustNode,
    add_signatures,
    format_time,
    load_chain,
    new_document,
    parse_time,
    read_version,
    sign_document,
    trust_key,
    verify_initial,
    verify_rotation,
    version_path,
    write_version,
)

P = ParamSpec("P")
R = TypeVar("R")
_REGION = re.compile(r"[a-z]{2}")

DirOption = click.option("--dir", "directory", required=True, type=click.Path(path_type=Path), help="trust file directory")
SignWithOption = click.option(
    "--sign-with", "sign_with", multiple=True, required=True, type=click.Path(path_type=Path), help="private key PEM (repeatable)"
)
ValidDaysOption = click.option("--valid-days", default=365, show_default=True, type=click.IntRange(min=1), help="validity of keys and file")


class OperatorError(Exception):
    """Something the operator must fix; printed as one line."""


def _fail(message: str) -> NoReturn:
    click.echo(f"medfed: {' '.join(message.split())}", err=True)
    sys.exit(1)


def _one_line_errors(func: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (SyncError, OperatorError) as exc:
            _fail(str(exc))
        except OSError as exc:
            _fail(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))

    return wrapper


@click.group("keys")
def keys() -> None:
    """Signing keys and the versioned federation trust file."""


@keys.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="where to write the private key (PEM, PKCS8)")
@_one_line_errors
def generate(out: Path) -> None:
    """Generate an Ed25519 private key, readable only by its owner."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # O_EXCL: never overwrite a key; the mode is set at creation so the key is never readable by others.
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(pem)
    click.echo(f"{out}: key id {key_id(key.public_key())}")


@keys.command()
@DirOption
@click.option("--region-key", "region_keys", multiple=True, required=True, metavar="REGION=PEM", help="a node's private key (repeatable)")
@click.option("--threshold", type=click.IntRange(min=1), help="signatures needed to change the file  [default: a majority of the keys]")
@ValidDaysOption
@_one_line_errors
def init(directory: Path, region_keys: Sequence[str], threshold: int | None, valid_days: int) -> None:
    """Write version 1 of the trust file, signed by every key it lists."""
    if version_path(directory, 1).exists():
        raise OperatorError(f"{version_path(directory, 1)} already exists")
    signers = [(region, _private_key(path)) for region, path in map(_region_and_path, region_keys)]
    now = _now()
    until = now + timedelta(days=valid_days)
    nodes: dict[str, TrustNode] = {}
    for region, key in signers:
        listed = nodes.get(region, TrustNode(keys=())).keys
        nodes[region] = TrustNode(keys=(*listed, trust_key(key.public_key(), not_before=now, not_after=until)))
    chosen = threshold if threshold is not None else len(signers) // 2 + 1
    document = new_document(version=1, threshold=chosen, nodes=nodes, issued_at=now, expires_at=until)
    envelope = sign_document(document, [key for _, key in signers])
    verify_initial(envelope)
    path = write_version(directory, envelope)
    click.echo(f"wrote {path}: version 1, threshold {chosen}, {len(signers)} keys")


@keys.command()
@DirOption
@click.option("--region", required=True, help="the node whose key changes")
@click.option("--new-key", "new_key", required=True, type=click.Path(path_type=Path), help="the node's new key (private or public PEM)")
@click.option("--drop-old", is_flag=True, help="remove the node's current keys (revokes them)")
@SignWithOption
@click.option("--threshold", type=click.IntRange(min=1), help="a new threshold  [default: unchanged]")
@ValidDaysOption
@click.option("--draft", is_flag=True, help="write the version even if not yet signed enough; collect the rest with `keys sign`")
@_one_line_errors
def rotate(
    *,
    directory: Path,
    region: str,
    new_key: Path,
    drop_old: bool,
    sign_with: Sequence[Path],
    threshold: int | None,
    valid_days: int,
    draft: bool,
) -> None:
    """Write the next version with the node's new key, signed by the given keys."""
    _require_region(region)
    now = _now()
    current = load_chain(directory, now=now)
    node = current.nodes.get(region, TrustNode(keys=()))
    public = _public_key(new_key)
    added = trust_key(public, not_before=now, not_after=now + timedelta(days=valid_days))
    nodes = {**current.nodes, region: msgspec.structs.replace(node, keys=(() if drop_old else node.keys) + (added,))}
    document = new_document(
        version=current.version + 1,
        threshold=threshold if threshold is not None else current.threshold,
        nodes=nodes,
        issued_at=now,
        expires_at=now + timedelta(days=valid_days),
    )
    envelope = sign_document(document, [_private_key(path) for path in sign_with])
    try:
        verify_rotation(current, envelope)
    except TrustError as exc:
        if not draft:
            raise
        path = write_version(directory, envelope)
        click.echo(f"wrote draft {path}: version {document.version}, not yet accepted: {exc}")
        return
    path = write_version(directory, envelope)
    click.echo(f"wrote {path}: version {document.version}, key {key_id(public)} added for {region}")


@keys.command("sign")
@DirOption
@click.option("--version", "version", required=True, type=click.IntRange(min=1), help="the version to sign")
@SignWithOption
@_one_line_errors
def sign_version(directory: Path, version: int, sign_with: Sequence[Path]) -> None:
    """Add signatures to an existing version of the trust file."""
    envelope = add_signatures(read_version(version_path(directory, version)), [_private_key(path) for path in sign_with])
    path = write_version(directory, envelope)
    try:
        latest = load_chain(directory, now=_now())
    except TrustError as exc:
        click.echo(f"signed {path}; the trust file is not yet accepted: {exc}")
        return
    click.echo(f"signed {path}; the trust file verifies up to version {latest.version}")


@keys.command()
@DirOption
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@_one_line_errors
def show(directory: Path, as_json: bool) -> None:
    """Verify the chain of versions and print the latest: threshold, each node's key ids and validity."""
    now = _now()
    document = load_chain(directory, now=now)
    summary = _summary(document, now)
    if as_json:
        click.echo(msgspec.json.encode(summary).decode())
        return
    click.echo(f"version {document.version}, threshold {document.threshold}, issued {document.issued_at}, expires {document.expires_at}")
    for region, node in summary["nodes"].items():
        click.echo(f"{region}{'  ' + node['url'] if node['url'] else ''}")
        for key in node["keys"]:
            state = "valid" if key["valid_now"] else "not valid now"
            click.echo(f"  {key['keyid']}  {key['not_before']} .. {key['not_after']}  {state}")


def _summary(document: TrustDocument, now: datetime) -> dict[str, Any]:
    nodes = {
        region: {
            "url": node.url,
            "keys": [
                {"keyid": key_id(key.public()), "not_before": key.not_before, "not_after": key.not_after, "valid_now": key.valid_at(now)}
                for key in node.keys
            ],
        }
        for region, node in sorted(document.nodes.items())
    }
    return {
        "version": document.version,
        "threshold": document.threshold,
        "issued_at": document.issued_at,
        "expires_at": document.expires_at,
        "nodes": nodes,
    }


def _now() -> datetime:
    # Whole seconds: the trust file's timestamps have no fractions.
    return parse_time(format_time(datetime.now(UTC)))


def _require_region(region: str) -> None:
    if not _REGION.fullmatch(region):
        raise OperatorError(f"{region!r} is not a region code (two lower-case letters, like kz)")


def _region_and_path(value: str) -> tuple[str, Path]:
    region, sep, path = value.partition("=")
    if not sep or not path:
        raise OperatorError(f"--region-key {value!r}: expected REGION=PEM, like kz=kz.pem")
    _require_region(region)
    return region, Path(path)


def _private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise OperatorError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise OperatorError(f"{path}: not an Ed25519 private key")
    return key


def _public_key(path: Path) -> Ed25519PublicKey:
    """A public PEM, or the public part of a private PEM (so a node can hand over only its public key)."""
    data = path.read_bytes()
    if b"PRIVATE KEY" in data:
        return _private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise OperatorError(f"{path}: not a PEM key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise OperatorError(f"{path}: not an Ed25519 public key")
    return key
