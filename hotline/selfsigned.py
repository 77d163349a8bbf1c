"""A self-signed certificate for a first run on a LAN: HTTPS without ``[tls]``.

Why this exists: browsers give a page the microphone only over HTTPS (or on
``localhost``), so agents on other machines of the LAN need ``[server] https`` before
anyone has a certificate. When ``https`` is set and ``[tls]`` is not, the HTTPS listener
uses a certificate made here, once, and kept in ``DATA_DIR/tls/``:

* ``selfsigned.key``: an EC P-256 private key, PEM (PKCS#8), mode 0600;
* ``selfsigned.crt``: a self-signed X.509 certificate for it, valid 825 days (the most
  Apple platforms accept), ``CA:FALSE`` with ``serverAuth`` (a CA certificate used as a
  server's is refused by Firefox), the names below in its subjectAltName.

Names: ``localhost``, ``127.0.0.1``, the machine's host name (and ``NAME.local`` for
mDNS), ``[server] external_ip``, and the listener's host; for a wildcard listener
(``0.0.0.0``, ``::``) the address of the default route and every other address of the
machine's interfaces.

Later starts reuse the pair while it is readable, the key matches the certificate, it
has more than :data:`RENEW_BEFORE` left, and its names still cover the *required* ones:
those above except the interface addresses other than the default route's (so a VPN or
container bridge coming and going does not make a new certificate that every browser
must accept again, while a LAN address changed by DHCP does). Otherwise a new pair
replaces it (logged with the reason). Each start logs the certificate's SHA-256
fingerprint (``selfsigned_certificate``), the one browsers show, so users can check the
warning they click through is about this certificate.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CERT_NAME",
    "KEY_NAME",
    "RENEW_BEFORE",
    "VALID_DAYS",
    "SelfSigned",
    "ensure_certificate",
    "fingerprint",
]

logger = logging.getLogger("hotline.tls")

#: Where the pair lives under the data directory.
TLS_DIR = "tls"
CERT_NAME = "selfsigned.crt"
KEY_NAME = "selfsigned.key"
#: Validity of a new certificate (Apple's limit for TLS server certificates).
VALID_DAYS = 825
#: A certificate with less than this left is replaced at start.
RENEW_BEFORE = timedelta(days=30)
#: Backdating of ``notBefore``, for clients whose clock is a little behind.
BACKDATE = timedelta(minutes=5)
#: A public address only used to ask the kernel which local address the default route
#: leaves from (a UDP connect: no packet is sent).
_ROUTE_PROBES = ("192.0.2.1", "2001:db8::1")
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


@dataclass(frozen=True, slots=True)
class SelfSigned:
    """The certificate in use."""

    #: PEM certificate file.
    cert: Path
    #: PEM private key file (mode 0600).
    key: Path
    #: SHA-256 of the DER certificate, ``AB:CD:...`` as browsers show it.
    fingerprint: str
    #: The subjectAltName entries (host names and IP addresses).
    names: tuple[str, ...]
    #: When it stops being valid.
    not_after: datetime
    #: Made by this call (False: an existing pair was reused).
    created: bool


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint of ``cert``, upper-case hex pairs joined by ``:``."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _hostname_ok(name: str) -> bool:
    labels = name.rstrip(".").split(".")
    return bool(name) and len(name) <= 253 and all(
        0 < len(p) <= 63 and p.replace("-", "").isalnum() and p.isascii()
        and not p.startswith("-") and not p.endswith("-") for p in labels)


def _canonical(name: str) -> str | None:
    """An IP in its compressed form, a host name lower-cased; None if it is neither."""
    try:
        return str(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        pass
    name = name.rstrip(".").lower()
    return name if _hostname_ok(name) else None


def _route_source(probe: str) -> str | None:
    family = socket.AF_INET6 if ":" in probe else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((probe, 9))
            return str(s.getsockname()[0])
    except OSError:
        return None


def _interface_addresses() -> list[str]:
    """Every address of the machine's interfaces (pyroute2), link-local ones left out."""
    try:
        from pyroute2 import IPRoute
    except ImportError:
        return []
    out = []
    try:
        with IPRoute() as ipr:
            for msg in ipr.get_addr():
                addr = msg.get_attr("IFA_ADDRESS")
                if addr and not ipaddress.ip_address(addr.split("%")[0]).is_link_local:
                    out.append(addr.split("%")[0])
    except Exception:  # noqa: BLE001 - netlink unavailable: the default route's address will do
        return []
    return out


def wanted_names(listen_host: str, external_ip: str | None = None) -> tuple[list[str], list[str]]:
    """``(required, extra)`` subjectAltName entries for an HTTPS listener on
    ``listen_host`` (see the module docstring); each list without duplicates."""
    required: list[str] = ["localhost", "127.0.0.1"]
    extra: list[str] = []
    host = socket.gethostname()
    if _canonical(host) is not None:
        required.append(host)
        if "." not in host:
            extra.append(f"{host}.local")
    if external_ip:
        required.append(external_ip)
    if listen_host.strip("[]") in _WILDCARDS:
        probes = _ROUTE_PROBES if listen_host.strip("[]") == "::" else _ROUTE_PROBES[:1]
        for probe in probes:
            src = _route_source(probe)
            if src is not None:
                required.append(src)
        if listen_host.strip("[]") == "::":
            extra.append("::1")
        extra.extend(_interface_addresses())
    else:
        required.append(listen_host)
    req = _unique(required)
    return req, [n for n in _unique(extra) if n not in req]


def _unique(names: Iterable[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        c = _canonical(name)
        if c is not None and c not in out:
            out.append(c)
    return out


def _san(names: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _names_of(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return [*(n.lower() for n in san.get_values_for_type(x509.DNSName)), *ips]


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file renamed over it)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _create(cert_path: Path, key_path: Path, names: list[str], now: datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname()[:40] or "localhost"
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, host),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hotline self-signed"),
    ])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=VALID_DAYS))
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    # The key first: a crash between the two renames leaves a pair that does not match,
    # which the next start replaces.
    _write(key_path, key_pem, 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _load(cert_path: Path, key_path: Path) -> x509.Certificate:
    """The certificate, after checking the key file holds its private key.

    :raises ValueError: for a missing or unreadable file or a pair that does not match.
    """
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"unreadable ({exc.__class__.__name__}: {exc})") from None
    der = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, der)
            != cert.public_key().public_bytes(serialization.Encoding.DER, der)):
        raise ValueError("the key does not match the certificate")
    return cert


def _reason_to_replace(cert: x509.Certificate, required: list[str],
                       now: datetime) -> str | None:
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return f"expires {cert.not_valid_after_utc.isoformat()}"
    have = set(_names_of(cert))
    missing = [n for n in required if n not in have]
    if missing:
        return f"does not name {', '.join(missing)}"
    return None


def ensure_certificate(data_dir: Path | str, listen_host: str, *,
                       external_ip: str | None = None,
                       now: datetime | None = None) -> SelfSigned:
    """The self-signed pair of ``data_dir`` for an HTTPS listener on ``listen_host``:
    the existing one if still good (see the module docstring), else a new one.

    :param now: the wall clock (aware; default: now).
    :raises OSError: when ``DATA_DIR/tls`` cannot be written.
    """
    now = now if now is not None else datetime.now(UTC)
    directory = Path(data_dir) / TLS_DIR
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path, key_path = directory / CERT_NAME, directory / KEY_NAME
    required, extra = wanted_names(listen_host, external_ip)
    created = False
    reason: str | None
    try:
        cert = _load(cert_path, key_path)
    except ValueError as exc:
        reason = "none yet" if not cert_path.exists() and not key_path.exists() else str(exc)
    else:
        reason = _reason_to_replace(cert, required, now)
    if reason is not None:
        logger.info("selfsigned_certificate_created",
                    extra={"path": str(cert_path), "reason": reason})
        _create(cert_path, key_path, [*required, *extra], now)
        cert = _load(cert_path, key_path)
        created = True
    elif key_path.stat().st_mode & 0o077:
        logger.warning("selfsigned_key_mode_fixed", extra={"path": str(key_path)})
        os.chmod(key_path, 0o600)
    out = SelfSigned(cert=cert_path, key=key_path, fingerprint=fingerprint(cert),
                     names=tuple(_names_of(cert)), not_after=cert.not_valid_after_utc,
                     created=created)
    logger.info("selfsigned_certificate", extra={
        "path": str(cert_path), "sha256": out.fingerprint, "names": ",".join(out.names),
        "not_after": out.not_after.isoformat(), "new": created})
    return out
