"""The local federation's CA and node certificates (medplat.devfed.tls), and the node-to-node client verifying them.

The handshakes are real: a TLS server in a thread of the test, serving with a certificate the CA issued, and
medsync.transport's client calling it.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID

from medplat.devfed import tls
from medsync.transport import client

X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
X509_V_ERR_PERMITTED_VIOLATION = 47


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
def authority(tmp_path: Path) -> tls.Authority:
    return tls.ensure_authority(tmp_path / "ca.pem", tmp_path / "ca-key.pem")


def test_the_ca_is_a_p256_ca_constrained_to_loopback_with_an_owner_only_key(authority: tls.Authority, tmp_path: Path) -> None:
    cert = authority.cert
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey) and cert.public_key().curve.name == "secp256r1"
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert (basic.critical, basic.value.ca, basic.value.path_length) == (True, True, 0)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert (usage.critical, usage.value.key_cert_sign, usage.value.crl_sign, usage.value.digital_signature) == (True, True, True, False)
    constraints = cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    assert constraints.value.permitted_subtrees == [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
        x509.IPAddress(ipaddress.ip_network("::1/128")),
    ]
    assert constraints.value.excluded_subtrees is None
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == tls.CA_VALIDITY + tls.BACKDATE
    assert (mode(tmp_path / "ca-key.pem"), mode(tmp_path / "ca.pem")) == (0o600, 0o644)


def test_the_ca_is_kept_while_good_and_made_again_when_close_to_expiry(authority: tls.Authority, tmp_path: Path) -> None:
    again = tls.ensure_authority(tmp_path / "ca.pem", tmp_path / "ca-key.pem")
    assert again.cert == authority.cert
    expiring = (
        x509.CertificateBuilder()
        .subject_name(authority.cert.subject)
        .issuer_name(authority.cert.subject)
        .public_key(authority.key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=80))
        .not_valid_after(datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=6))
        .sign(authority.key, hashes.SHA256())
    )
    (tmp_path / "ca.pem").write_bytes(expiring.public_bytes(Encoding.PEM))
    renewed = tls.ensure_authority(tmp_path / "ca.pem", tmp_path / "ca-key.pem")
    assert renewed.cert.serial_number != 1
    assert renewed.key.public_key() != authority.key.public_key()


def test_a_node_certificate_names_127_0_0_1_and_localhost_and_is_kept_until_the_ca_changes(
    authority: tls.Authority, tmp_path: Path
) -> None:
    files = tls.ensure_server(tmp_path / "kz" / "node.pem", tmp_path / "kz" / "node-key.pem", authority, "kz")
    cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
    cert.verify_directly_issued_by(authority.cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == tls.SERVER_VALIDITY + tls.BACKDATE
    assert mode(files.key_file) == 0o600
    first = files.cert_file.read_bytes()
    tls.ensure_server(files.cert_file, files.key_file, authority, "kz")
    assert files.cert_file.read_bytes() == first
    other = tls.ensure_authority(tmp_path / "other" / "ca.pem", tmp_path / "other" / "ca-key.pem")
    tls.ensure_server(files.cert_file, files.key_file, other, "kz")
    x509.load_pem_x509_certificate(files.cert_file.read_bytes()).verify_directly_issued_by(other.cert)


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello over tls"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[object]:
    """Start a TLS server with a given certificate; every server started is shut down at the end."""
    servers: list[tuple[http.server.ThreadingHTTPServer, threading.Thread]] = []

    def start(cert_file: Path, key_file: Path) -> int:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return int(server.server_address[1])

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(10)


def verification_error(exc: BaseException) -> ssl.SSLCertVerificationError:
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    assert cause is not None, f"no certificate verification error behind {exc!r}"
    return cause


def test_the_node_client_trusts_the_federation_ca_and_the_system_store_does_not(
    authority: tls.Authority, tmp_path: Path, serve: object
) -> None:
    files = tls.ensure_server(tmp_path / "node.pem", tmp_path / "node-key.pem", authority, "kz")
    port = serve(files.cert_file, files.key_file)  # type: ignore[operator]
    with client(str(authority.cert_file)) as http:
        assert http.get(f"https://127.0.0.1:{port}/health").text == "hello over tls"
        assert http.get(f"https://localhost:{port}/health").text == "hello over tls"
    with client(None) as http, pytest.raises(httpx.ConnectError) as untrusted:
        http.get(f"https://127.0.0.1:{port}/health")
    assert verification_error(untrusted.value).verify_code == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    other = tls.ensure_authority(tmp_path / "other-ca.pem", tmp_path / "other-ca-key.pem")
    with client(str(other.cert_file)) as http, pytest.raises(httpx.ConnectError) as foreign:
        http.get(f"https://127.0.0.1:{port}/health")
    assert verification_error(foreign.value).verify_code == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY


def test_a_certificate_for_a_real_site_from_the_local_ca_is_refused_by_its_name_constraints(
    authority: tls.Authority, tmp_path: Path, serve: object
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ca_ski = authority.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    forged = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("bank.example"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    (tmp_path / "forged.pem").write_bytes(forged.public_bytes(Encoding.PEM))
    (tmp_path / "forged-key.pem").write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    port = serve(tmp_path / "forged.pem", tmp_path / "forged-key.pem")  # type: ignore[operator]
    with client(str(authority.cert_file)) as http, pytest.raises(httpx.ConnectError) as refused:
        http.get(f"https://127.0.0.1:{port}/")
    assert verification_error(refused.value).verify_code == X509_V_ERR_PERMITTED_VIOLATION
