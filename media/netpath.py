"""Choose the local address to put in SDP toward a peer.

:func:`source_address` asks the kernel's routing table (pyroute2 ``RTM_GETROUTE``, i.e.
``ip route get DST``) for the preferred source address (``RTA_PREFSRC``) toward ``dst``.
If pyroute2 is unavailable or the netlink query fails, it falls back to connecting a UDP
socket to the peer (no packet is sent) and reading the address the kernel bound.
"""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["source_address", "source_address_netlink", "source_address_socket"]


def source_address_netlink(dst: str) -> str | None:
    """Preferred source address toward ``dst`` from the routing table, or None."""
    try:
        from pyroute2 import IPRoute
    except ImportError:
        return None
    try:
        with IPRoute() as ipr:
            routes = ipr.route("get", dst=dst)
    except Exception:  # netlink errors (unreachable, permissions) mean "no answer"
        return None
    for route in routes:
        src = route.get_attr("RTA_PREFSRC")
        if src:
            return str(src)
    return None


def source_address_socket(dst: str, port: int = 9) -> str | None:
    """The address a connected UDP socket toward ``dst`` gets (no packet is sent)."""
    family = socket.AF_INET6 if ipaddress.ip_address(dst).version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((dst, port))
            return str(s.getsockname()[0])
    except OSError:
        return None


def source_address(dst: str) -> str:
    """The local address packets toward ``dst`` leave from.

    :param dst: the peer's IP address (v4 or v6).
    :raises ValueError: if ``dst`` is not an IP address or no route exists.
    """
    ipaddress.ip_address(dst)  # ValueError for a hostname or garbage
    src = source_address_netlink(dst) or source_address_socket(dst)
    if src is None:
        raise ValueError(f"no route to {dst}")
    return src
