"""The local federation's certificate authority and each node's server certificate (cryptography's x509 builder).

Production nodes sit behind nginx with certificates provisioned per country; the local federation makes its
own: an ECDSA P-256 CA constrained to loopback names, and one certificate per node for 127.0.0.1 and
localhost. P-256 rather than Ed25519 because curl, browsers and every TLS library accept it for servers.
Both are kept across restarts and made again only when missing, close to expiry or not issued by the CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = datetime.timedelta(days=90)
SERVER_VALIDITY = datetime.timedelta(days=30)
RENEW_BEFORE = datetime.timedelta(days=7)
"""A certificate with less than this left is made again at start, so a running federation never sees one expire."""
BACKDATE = datetime.timedelta(hours=1)
"""Certificates start an hour in the past, so a clock a little behind does not refuse them."""
LOOPBACK: list[x509.GeneralName] = [
    x509.DNSName("localhost"),
    x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
    x509.IPAddress(ipaddress.ip_network("::1/128")),
]
"""What the CA may vouch for (its name constraints)."""
SERVER_NAMES: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]


@dataclass(frozen=True)
class Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_file: Path


@dataclass(frozen=True)
class ServerFiles:
    cert_file: Path
    key_file: Path


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner only, with no moment where it is readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MedFed"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def _fresh(cert: x509.Certificate, now: datetime.datetime) -> bool:
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - now > RENEW_BEFORE


def _load(cert_file: Path, key_file: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or cert.public_key() != key.public_key():
        return None
    return cert, key


def ensure_authority(cert_file: Path, key_file: Path) -> Authority:
    """The federation's CA from its files, or a new one written there (certificate 0644, key 0600)."""
    now = _now()
    loaded = _load(cert_file, key_file)
    if loaded is not None and _fresh(loaded[0], now):
        return Authority(loaded[0], loaded[1], cert_file)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("MedFed local federation CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        # Whoever gets hold of this key can still only vouch for loopback names, not for any real site.
        .add_extension(x509.NameConstraints(permitted_subtrees=LOOPBACK, excluded_subtrees=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(key_file, _pem_key(key))
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    cert_file.write_bytes(cert.public_bytes(Encoding.PEM))
    cert_file.chmod(0o644)
    return Authority(cert, key, cert_file)


def _issued_by(cert: x509.Certificate, authority: Authority) -> bool:
    try:
        cert.verify_directly_issued_by(authority.cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def ensure_server(cert_file: Path, key_file: Path, authority: Authority, node: str) -> ServerFiles:
    """The node's server certificate for 127.0.0.1 and localhost, issued by `authority` (made again when needed)."""
    now = _now()
    loaded = _load(cert_file, key_file)
    if loaded is not None and _fresh(loaded[0], now) and _issued_by(loaded[0], authority):
        return ServerFiles(cert_file, key_file)
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = authority.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"medfed {node} node"))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + SERVER_VALIDITY, authority.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(SERVER_NAMES), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    write_private(key_file, _pem_key(key))
    cert_file.write_bytes(cert.public_bytes(Encoding.PEM))
    cert_file.chmod(0o644)
    return ServerFiles(cert_file, key_file)
