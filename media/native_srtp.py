"""SRTP sessions for the kernel's own WebRTC packet path, keyed from aiortc's DTLS.

Why: aiortc protects and sends every RTP packet in Python on the event loop (about
three quarters of a WebRTC leg's server CPU, benchmarks/README.md). Once a leg's DTLS
handshake is done the worker moves its RTP into the tick kernel (``cext._net``:
``NetIO.set_srtp``), which calls libsrtp per packet in C. This module makes the
libsrtp sessions for that.

It uses the libsrtp 2 that pylibsrtp (aiortc's dependency) already loads, not a second
copy: the sessions are created through pylibsrtp, and the kernel gets the addresses of
``srtp_protect``/``srtp_unprotect`` of that same build (:func:`srtp_functions`), so the
``srtp_t`` structures and the functions always match. The keys are derived as aiortc
derives its own (RFC 5764 section 4.2: the DTLS exporter ``EXTRACTOR-dtls_srtp``, client
keys first), but the sessions are separate objects: the tick thread owns ours (RTP), the
event loop keeps aiortc's (SRTCP), and no ``srtp_t`` is shared between threads. Sending
RTP with one session and RTCP with the other never reuses a keystream: SRTP and SRTCP
derive different session keys from the master key (RFC 3711 section 4.3.2).
"""

from __future__ import annotations

from typing import Any

from pylibsrtp import Policy, Session

__all__ = ["NativeSrtpError", "dtls_sessions", "install_srtp_functions", "session_pointer",
           "srtp_functions"]

_installed = False


class NativeSrtpError(ValueError):
    """aiortc's DTLS transport is not in a state (or shape) we can key from."""


def srtp_functions() -> tuple[int, int]:
    """Addresses of libsrtp 2's ``srtp_protect`` and ``srtp_unprotect`` as loaded by
    pylibsrtp, for ``cext.net.set_srtp_functions``."""
    from pylibsrtp._binding import ffi, lib

    return (int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect"))),
            int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_unprotect"))))


def install_srtp_functions() -> None:
    """Give ``cext.net`` libsrtp's functions (:func:`srtp_functions`), once per process,
    before the first SRTP slot."""
    global _installed
    if not _installed:
        from cext.net import set_srtp_functions

        set_srtp_functions(*srtp_functions())
        _installed = True


def session_pointer(session: Session) -> int:
    """The ``srtp_t`` of a pylibsrtp session (valid while ``session`` is alive)."""
    from pylibsrtp._binding import ffi

    return int(ffi.cast("uintptr_t", session._srtp[0]))


def dtls_sessions(dtls: Any) -> tuple[Session, Session]:
    """New ``(tx, rx)`` SRTP sessions with the keys of a connected aiortc
    ``RTCDtlsTransport`` (aiortc 1.16 internals: ``_ssl``, ``_srtp_profiles``, ``_role``).

    :raises NativeSrtpError: not connected, or aiortc's internals are not as expected.
    """
    ssl = getattr(dtls, "_ssl", None)
    profiles = getattr(dtls, "_srtp_profiles", None)
    role = getattr(dtls, "_role", None)
    if ssl is None or profiles is None or role not in ("client", "server"):
        raise NativeSrtpError("aiortc RTCDtlsTransport internals differ")
    if getattr(dtls, "_rx_srtp", None) is None:
        raise NativeSrtpError("DTLS is not connected")
    selected = ssl.get_selected_srtp_profile()
    profile = next((p for p in profiles if p.openssl_profile == selected), None)
    if profile is None:
        raise NativeSrtpError(f"no SRTP profile matches {selected!r}")
    material = ssl.export_keying_material(
        b"EXTRACTOR-dtls_srtp", 2 * (profile.key_length + profile.salt_length))
    # RFC 5764 4.2: client_write_key, server_write_key, client_salt, server_salt
    mine, theirs = (1, 0) if role == "server" else (0, 1)
    tx = Policy(key=profile.get_key_and_salt(material, mine),
                ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile.libsrtp_profile)
    rx = Policy(key=profile.get_key_and_salt(material, theirs),
                ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile.libsrtp_profile)
    for policy in (tx, rx):
        policy.allow_repeat_tx = True
        policy.window_size = 1024
    return Session(tx), Session(rx)
