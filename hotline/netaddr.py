"""Which local address to advertise (Via, Contact, SDP c=) toward a given peer.

When a listener is bound to a wildcard address, the address the kernel would use to
reach the peer is the right one for a multi-homed box (carrier on one interface,
agents on another): pyroute2 asks the routing table (``ip route get``), see
:mod:`media.netpath`; results are cached per peer host.
"""

from __future__ import annotations

from functools import lru_cache

from media.netpath import source_address


@lru_cache(maxsize=4096)
def source_address_for(peer_host: str) -> str:
    """The local IP the kernel routes from toward ``peer_host`` (netlink route lookup
    through pyroute2, socket-connect fallback), cached per peer.

    :param peer_host: an IPv4 or IPv6 literal.
    """
    return source_address(peer_host)


def advertised_host(bound_host: str, peer_host: str, external_ip: str | None = None) -> str:
    """The host to put in Via/Contact/SDP for a listener bound to ``bound_host``.

    :param bound_host: the listener's bind address.
    :param peer_host: the peer the message goes to.
    :param external_ip: ``[server] external_ip`` (NAT), wins when set.
    """
    if external_ip:
        return external_ip
    if bound_host in ("0.0.0.0", "::", ""):
        return source_address_for(peer_host)
    return bound_host


def uri_host(host: str) -> str:
    """Bracket IPv6 literals for use in URIs and Via."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
