"""HTTPS without ``[tls]``: :mod:`hotline.selfsigned` makes a certificate once in
``DATA_DIR/tls`` and reuses it; the API's HTTPS listener serves it to a client that
trusts exactly that certificate. Real keys, real files, a real TLS handshake."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import ssl
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from test_api_http import Client, Clock, Running, site_config

from hotline import selfsigned
from hotline.config import Address, ConfigError, load_config
from hotline.selfsigned import VALID_DAYS, ensure_certificate

LAN_IP = "192.0.2.10"


def san(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {*ext.get_values_for_type(x509.DNSName),
            *(str(ip) for ip in ext.get_values_for_type(x509.IPAddress))}


def test_generated_once_then_reused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hotline.tls")
    first = ensure_certificate(tmp_path, LAN_IP)
    assert first.created
    assert first.cert == tmp_path / "tls" / "selfsigned.crt"
    assert first.key == tmp_path / "tls" / "selfsigned.key"
    cert_bytes, key_bytes = first.cert.read_bytes(), first.key.read_bytes()
    mtimes = (first.cert.stat().st_mtime_ns, first.key.stat().st_mtime_ns)
    again = ensure_certificate(tmp_path, LAN_IP)
    assert not again.created
    assert again.fingerprint == first.fingerprint
    assert (again.cert.read_bytes(), again.key.read_bytes()) == (cert_bytes, key_bytes)
    assert (again.cert.stat().st_mtime_ns, again.key.stat().st_mtime_ns) == mtimes
    # Each start logs the fingerprint a browser shows: SHA-256 of the DER certificate.
    der = ssl.PEM_cert_to_DER_cert(cert_bytes.decode())
    expected = hashlib.sha256(der).hexdigest().upper()
    assert first.fingerprint.replace(":", "") == expected
    assert len(first.fingerprint.split(":")) == 32
    logged = [r for r in caplog.records if r.getMessage() == "selfsigned_certificate"]
    assert [r.sha256 for r in logged] == [first.fingerprint] * 2  # type: ignore[attr-defined]
    assert [r.new for r in logged] == [True, False]  # type: ignore[attr-defined]


def test_key_file_is_private_and_the_certificate_as_promised(tmp_path: Path) -> None:
    now = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    pair = ensure_certificate(tmp_path, LAN_IP, now=now)
    assert stat.S_IMODE(pair.key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) & 0o077 == 0
    key = load_pem_private_key(pair.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    assert cert.issuer == cert.subject  # self-signed
    assert cert.not_valid_after_utc - now == timedelta(days=VALID_DAYS)
    assert cert.not_valid_before_utc <= now
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca is False  # Firefox refuses a CA certificate as a server's
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in usage
    names = san(pair.cert)
    assert {LAN_IP, "localhost", "127.0.0.1"} <= names
    if selfsigned._canonical(socket.gethostname()) is not None:
        assert socket.gethostname().lower() in names
    assert set(pair.names) == names


def test_a_wildcard_listener_names_the_machines_addresses(tmp_path: Path) -> None:
    pair = ensure_certificate(tmp_path, "0.0.0.0", external_ip="203.0.113.7")
    names = san(pair.cert)
    assert {"localhost", "127.0.0.1", "203.0.113.7"} <= names
    required, extra = selfsigned.wanted_names("0.0.0.0")
    assert set(required) | set(extra) <= names
    route = selfsigned._route_source("192.0.2.1")
    if route is not None:  # the LAN address browsers on other machines use
        assert route in required


def test_a_new_certificate_when_the_old_one_no_longer_fits(tmp_path: Path) -> None:
    first = ensure_certificate(tmp_path, LAN_IP)
    # Another listener address (DHCP gave the box a new one): a new certificate.
    moved = ensure_certificate(tmp_path, "192.0.2.20")
    assert moved.created and moved.fingerprint != first.fingerprint
    assert "192.0.2.20" in san(moved.cert) and LAN_IP not in san(moved.cert)
    # Close to its end: renewed.
    late = datetime.now(UTC) + timedelta(days=VALID_DAYS - 10)
    renewed = ensure_certificate(tmp_path, "192.0.2.20", now=late)
    assert renewed.created and renewed.not_after > late + timedelta(days=VALID_DAYS - 1)
    # A key that is not the certificate's (a crash between the two writes): replaced.
    other = tmp_path / "other"
    stray = ensure_certificate(other, "192.0.2.20")
    renewed.key.write_bytes(stray.key.read_bytes())
    fixed = ensure_certificate(tmp_path, "192.0.2.20")
    assert fixed.created and fixed.fingerprint not in (renewed.fingerprint, stray.fingerprint)
    # A key file someone made readable to others: kept, made private again.
    os.chmod(fixed.key, 0o644)
    kept = ensure_certificate(tmp_path, "192.0.2.20")
    assert not kept.created and stat.S_IMODE(kept.key.stat().st_mode) == 0o600


# --------------------------------------------------------------------------- HTTPS


def test_the_https_listener_serves_it_to_a_client_that_trusts_it(tmp_path: Path) -> None:
    base = site_config(tmp_path / "data")
    config = replace(base, tls=None, server=replace(base.server, http=None,
                                                     https=Address("127.0.0.1", 0)))
    running = Running(config, Clock())
    try:
        ((scheme, _, port),) = running.addresses
        assert scheme == "https"
        cert = tmp_path / "data" / "tls" / "selfsigned.crt"
        trusting = Client(port, ssl.create_default_context(cafile=str(cert)))
        r = trusting.login("1001")
        assert r.status == 200
        (line,) = trusting.set_cookie
        assert "Secure" in line and "HttpOnly" in line
        assert trusting.get("/api/session").json()["user"] == "1001"
        # A client with the system's CAs only refuses it.
        with pytest.raises(ssl.SSLCertVerificationError):
            Client(port, ssl.create_default_context()).get("/api/openapi.json")
    finally:
        running.close()
    # The next start reuses the same certificate.
    first = cert.read_bytes()
    running = Running(config, Clock())
    try:
        port = running.addresses[0][2]
        ctx = ssl.create_default_context(cafile=str(cert))
        assert Client(port, ctx).get("/api/openapi.json").status == 200
    finally:
        running.close()
    assert cert.read_bytes() == first


def test_config_allows_https_without_tls_but_not_sip_tls(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text('[server]\nhttps = "0.0.0.0:8443"\n')
    config = load_config(path)
    assert config.tls is None and config.server.https == Address("0.0.0.0", 8443)
    path.write_text('[server]\nsip = ["udp:0.0.0.0:5060", "tls:0.0.0.0:5061"]\n'
                    'https = "0.0.0.0:8443"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value) == (f"{path}: tls: expected a [tls] section with cert and key, "
                              "because of tls:0.0.0.0:5061 (got no [tls] section)")
