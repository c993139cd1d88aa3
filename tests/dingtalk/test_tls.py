"""The client's own HTTP transport checks certificates as requests did: against the CA
bundle (REQUESTS_CA_BUNDLE) and the host name, over real TLS on loopback."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from receiver.dingtalk.client import Client
from receiver.errors import RetryableError
from receiver.settings import Settings
from tests.conftest import APP_KEY, APP_SECRET


def certificate(tmp: Path, name: str, san: x509.GeneralName) -> tuple[Path, Path]:
    """A self-signed certificate for `san`; valid from a year before the real now to a
    year after, so that the test passes on any date the machine's clock shows."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=365))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # gettoken
        body = json.dumps({"errcode": 0, "access_token": "tok", "expires_in": 7200}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def https_server(cert: Path, key: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def for_loopback(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    cert, key = certificate(tmp_path, "loopback", x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    for url in https_server(cert, key):
        yield url, cert


@pytest.fixture
def for_another_host(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    cert, key = certificate(tmp_path, "elsewhere", x509.DNSName("oapi.dingtalk.com"))
    for url in https_server(cert, key):
        yield url, cert


def client(settings: Settings, url: str) -> Client:
    return Client(
        settings.with_(app_key=APP_KEY, app_secret=APP_SECRET, agent_id="1", api_base=url,
                       http_timeout=5.0)
    )  # fmt: skip


def test_a_certificate_no_bundle_trusts_is_refused(
    settings: Settings, for_loopback: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    url, _ = for_loopback
    with pytest.raises(RetryableError) as e:
        client(settings, url).get_access_token()
    print(f"\n{e.value}")
    assert "SSLError" in str(e.value) and "CERTIFICATE_VERIFY_FAILED" in str(e.value)


def test_the_bundle_requests_read_is_trusted(
    settings: Settings, for_loopback: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert = for_loopback
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    assert client(settings, url).get_access_token()["access_token"] == "tok"


def test_a_trusted_certificate_for_another_host_is_refused(
    settings: Settings, for_another_host: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert = for_another_host
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    with pytest.raises(RetryableError) as e:
        client(settings, url).get_access_token()
    print(f"\n{e.value}")
    assert "SSLError" in str(e.value) and "CERTIFICATE_VERIFY_FAILED" in str(e.value)
