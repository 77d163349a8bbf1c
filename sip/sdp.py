"""SDP (RFC 8866) parsing and serialisation, and RFC 3264 offer/answer for audio.

Theory of operation
-------------------
``SessionDescription.parse(text)`` reads a session description line by line. Every
line must be ``<type>=<value>`` with a single lower-case letter type and no blanks
around ``=`` (RFC 8866 §5). The lines must come in the order RFC 8866 §5 lists them
(``v o s i u e p c b t r z k a`` at session level, ``m i c b k a`` per media); a line
out of order, an unknown type letter or a malformed field raises ``MalformedSdp``
with a message that names the 1-based line number, e.g.
``"SDP line 3: expected <type>=<value>"``.

Attributes are kept in their original order as ``SdpAttribute(name, value)`` pairs,
so anything we do not interpret (ICE candidates, DTLS fingerprints, ssrc, msid,
extmap...) round-trips untouched: ``str(SessionDescription.parse(x)) == x`` for an
``x`` with CRLF line ends (RFC 8866 §5: lines end in CRLF; a bare LF is accepted on
input and written back as CRLF). Typed views (``rtpmaps``, ``fmtp``, ``direction``,
``ptime``, ``rtcp_mux``) are computed from the attribute list on demand.

``answer_offer`` and ``build_offer``/``negotiated_from_answer`` implement the subset
of RFC 3264 that a B2BUA needs for plain RTP audio legs (``RTP/AVP``): one active
audio stream, every other m-line rejected with port 0, codec chosen in the
offerer's order, telephone-event (RFC 4733) payload type kept from the offer, and
hold (``a=sendonly``/``a=inactive`` and the RFC 2543 ``c=0.0.0.0`` form). WebRTC
legs are negotiated by aiortc in ``media/``; this module only has to carry their SDP
through intact.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from .exceptions import IncompatibleMedia, LocalProtocolError, MalformedSdp

__all__ = [
    "DEFAULT_CODECS",
    "PCMA",
    "PCMU",
    "TELEPHONE_EVENT",
    "Codec",
    "Direction",
    "MediaDescription",
    "NegotiatedMedia",
    "RtpMap",
    "SdpAttribute",
    "SdpBandwidth",
    "SdpConnection",
    "SdpOrigin",
    "SdpTiming",
    "SessionDescription",
    "answer_offer",
    "build_offer",
    "bump_version",
    "hold_direction",
    "is_hold",
    "negotiated_from_answer",
    "offered_direction",
    "reoffer",
    "resume_direction",
    "set_direction",
]

#: Largest SDP body we parse; a SIP message is capped well below this anyway.
MAX_SDP_SIZE = 65536
#: Packetisation time we ask for when the offer has no a=ptime (RFC 3551 §4.5: 20 ms).
DEFAULT_PTIME = 20
#: RTP profiles we can answer on a plain RTP leg.
RTP_PROFILES = ("RTP/AVP",)

# RFC 8866 §5: the order of lines within the session and within each media section.
_SESSION_ORDER = "vosiuepcbtrzka"
_MEDIA_ORDER = "micbka"
# Types that may appear more than once in their section (r belongs to the t before it).
_SESSION_REPEATABLE = frozenset("epbtra")
_MEDIA_REPEATABLE = frozenset("cba")

_LINE_RE = re.compile(r"([a-z])=(.*)\Z", re.DOTALL)
# RFC 8866 §9 token: any visible ASCII except the separators listed there.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+\Z")
_INT_RE = re.compile(r"[0-9]+\Z")
_FQDN_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?\Z")
_PTIME_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?\Z")
_RTPMAP_RE = re.compile(r"([0-9]{1,3}) ([^/ ]+)/([0-9]+)(?:/([0-9]+))?\Z")

# RFC 3551 §6 table 4: static audio payload types we may meet without an a=rtpmap.
_STATIC_PAYLOADS: dict[int, tuple[str, int, int]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    5: ("DVI4", 8000, 1),
    6: ("DVI4", 16000, 1),
    7: ("LPC", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    10: ("L16", 44100, 2),
    11: ("L16", 44100, 1),
    12: ("QCELP", 8000, 1),
    13: ("CN", 8000, 1),
    14: ("MPA", 90000, 1),
    15: ("G728", 8000, 1),
    16: ("DVI4", 11025, 1),
    17: ("DVI4", 22050, 1),
    18: ("G729", 8000, 1),
}


class Direction(StrEnum):
    """Media direction attributes, RFC 8866 §6.7 / RFC 3264 §5.1."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    def reverse(self) -> Direction:
        """The direction the other side sees: RFC 3264 §6.1 sendonly ↔ recvonly.

        :return: ``RECVONLY`` for ``SENDONLY`` and vice versa; others unchanged.
        """
        if self is Direction.SENDONLY:
            return Direction.RECVONLY
        if self is Direction.RECVONLY:
            return Direction.SENDONLY
        return self

    @property
    def sends(self) -> bool:
        """Whether this side sends media in this direction."""
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        """Whether this side receives media in this direction."""
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def from_flags(cls, sends: bool, receives: bool) -> Direction:
        """Build a direction from its two halves.

        :param sends: this side sends media.
        :param receives: this side receives media.
        """
        if sends and receives:
            return cls.SENDRECV
        if sends:
            return cls.SENDONLY
        if receives:
            return cls.RECVONLY
        return cls.INACTIVE


_DIRECTIONS = frozenset(d.value for d in Direction)


def _err(lineno: int, msg: str) -> MalformedSdp:
    return MalformedSdp(f"SDP line {lineno}: {msg}")


def _check_address(addrtype: str, address: str, lineno: int, what: str) -> None:
    """Validate a unicast/multicast address of ``addrtype`` (RFC 8866 §5.7, §9)."""
    host = address
    if addrtype == "IP4":
        # RFC 8866 §5.7: IPv4 multicast carries /ttl[/count].
        host = address.split("/", 1)[0]
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise _err(lineno, f"{what}: bad IP4 address {address!r}") from None
            return
    elif addrtype == "IP6":
        host = address.split("/", 1)[0]
        if ":" in host:
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise _err(lineno, f"{what}: bad IP6 address {address!r}") from None
            return
    else:
        # Unknown address types are allowed by the grammar; keep them opaque.
        if not _TOKEN_RE.match(address):
            raise _err(lineno, f"{what}: bad address {address!r}")
        return
    # RFC 8866 §5.7 also allows an FQDN.
    if not _FQDN_RE.match(host):
        raise _err(lineno, f"{what}: bad {addrtype} address {address!r}")


@dataclass(slots=True)
class SdpOrigin:
    """The o= line, RFC 8866 §5.2."""

    username: str
    """Login of the originating user, ``-`` when none."""
    session_id: str
    """Numeric session id (kept as text: it may exceed 64 bits)."""
    session_version: str
    """Numeric version, increased on every modification (RFC 3264 §8)."""
    nettype: str
    """Network type, ``IN``."""
    addrtype: str
    """``IP4`` or ``IP6``."""
    address: str
    """Address of the originating machine."""

    @classmethod
    def parse(cls, value: str, lineno: int) -> SdpOrigin:
        """Parse the value of an o= line.

        :param value: text after ``o=``.
        :param lineno: 1-based line number for error messages.
        """
        parts = value.split(" ")
        if len(parts) != 6 or not all(parts):
            raise _err(lineno, f"o= needs 6 fields, got {len([p for p in parts if p])}")
        username, sess_id, sess_version, nettype, addrtype, address = parts
        if not _INT_RE.match(sess_id):
            raise _err(lineno, f"o= session id must be numeric, got {sess_id!r}")
        if not _INT_RE.match(sess_version):
            raise _err(lineno, f"o= session version must be numeric, got {sess_version!r}")
        _check_address(addrtype, address, lineno, "o=")
        return cls(username, sess_id, sess_version, nettype, addrtype, address)

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(slots=True)
class SdpConnection:
    """A c= line, RFC 8866 §5.7."""

    address: str
    """Connection address, possibly with ``/ttl[/count]`` for multicast."""
    addrtype: str = "IP4"
    """``IP4`` or ``IP6``."""
    nettype: str = "IN"
    """Network type, ``IN``."""

    @classmethod
    def parse(cls, value: str, lineno: int) -> SdpConnection:
        """Parse the value of a c= line.

        :param value: text after ``c=``.
        :param lineno: 1-based line number for error messages.
        """
        parts = value.split(" ")
        if len(parts) != 3 or not all(parts):
            raise _err(lineno, "c= needs <nettype> <addrtype> <connection-address>")
        nettype, addrtype, address = parts
        _check_address(addrtype, address, lineno, "c=")
        return cls(address=address, addrtype=addrtype, nettype=nettype)

    @classmethod
    def for_ip(cls, ip: str) -> SdpConnection:
        """A connection line for a literal IPv4 or IPv6 address.

        :param ip: the address; its family chooses ``IP4``/``IP6``.
        :raises LocalProtocolError: ``ip`` is not an IP address.
        """
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise LocalProtocolError(f"not an IP address: {ip!r}") from None
        return cls(address=str(addr), addrtype="IP4" if addr.version == 4 else "IP6")

    @property
    def host(self) -> str:
        """The address without any multicast ``/ttl/count`` suffix."""
        return self.address.split("/", 1)[0]

    @property
    def is_hold(self) -> bool:
        """RFC 3264 §8.4: the RFC 2543 way of putting a stream on hold is ``0.0.0.0``."""
        return self.addrtype == "IP4" and self.host == "0.0.0.0"

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(slots=True)
class SdpBandwidth:
    """A b= line, RFC 8866 §5.8 (kbit/s for CT/AS, bit/s for TIAS)."""

    bwtype: str
    """``CT``, ``AS``, ``TIAS`` or an extension token."""
    bandwidth: int
    """The value, in the unit of ``bwtype``."""

    @classmethod
    def parse(cls, value: str, lineno: int) -> SdpBandwidth:
        """Parse the value of a b= line.

        :param value: text after ``b=``.
        :param lineno: 1-based line number for error messages.
        """
        bwtype, sep, bw = value.partition(":")
        if not sep or not _TOKEN_RE.match(bwtype) or not _INT_RE.match(bw):
            raise _err(lineno, f"b= needs <bwtype>:<bandwidth>, got {value!r}")
        return cls(bwtype, int(bw))

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.bandwidth}"


@dataclass(slots=True)
class SdpTiming:
    """A t= line and the r= lines that follow it, RFC 8866 §5.9-5.10."""

    start: int = 0
    """NTP start time, 0 for unbounded."""
    stop: int = 0
    """NTP stop time, 0 for unbounded."""
    repeats: list[str] = field(default_factory=list)
    """Raw values of the r= lines (kept opaque)."""

    @classmethod
    def parse(cls, value: str, lineno: int) -> SdpTiming:
        """Parse the value of a t= line.

        :param value: text after ``t=``.
        :param lineno: 1-based line number for error messages.
        """
        parts = value.split(" ")
        if len(parts) != 2 or not all(_INT_RE.match(p) for p in parts):
            raise _err(lineno, f"t= needs <start-time> <stop-time>, got {value!r}")
        return cls(int(parts[0]), int(parts[1]))


@dataclass(slots=True)
class SdpAttribute:
    """An a= line, RFC 8866 §5.13: ``a=<name>`` or ``a=<name>:<value>``."""

    name: str
    """Attribute name (a token)."""
    value: str | None = None
    """Everything after the first colon; ``None`` for a property attribute."""

    @classmethod
    def parse(cls, text: str, lineno: int) -> SdpAttribute:
        """Parse the value of an a= line.

        :param text: text after ``a=``.
        :param lineno: 1-based line number for error messages.
        """
        name, sep, value = text.partition(":")
        if not _TOKEN_RE.match(name):
            raise _err(lineno, f"a= needs <attribute>[:<value>], got {text!r}")
        attr = cls(name, value if sep else None)
        attr._validate(lineno)
        return attr

    def _validate(self, lineno: int) -> None:
        # Attributes this module interprets are checked when read, so the typed views
        # below never fail later.
        if self.name == "rtpmap":
            RtpMap.parse(self.value or "", lineno)
        elif self.name == "fmtp":
            fmt, sep, params = (self.value or "").partition(" ")
            if not sep or not fmt or not _TOKEN_RE.match(fmt):
                raise _err(lineno, f"fmtp needs <format> <parameters>, got {self.value!r}")
        elif self.name in ("ptime", "maxptime"):
            if self.value is None or not _PTIME_RE.match(self.value):
                raise _err(lineno, f"{self.name} needs a number, got {self.value!r}")
        elif self.name in _DIRECTIONS or self.name == "rtcp-mux":
            if self.value is not None:
                raise _err(lineno, f"{self.name} takes no value, got {self.value!r}")

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class RtpMap:
    """The value of ``a=rtpmap`` (RFC 8866 §6.6)."""

    payload_type: int
    """RTP payload type, 0-127."""
    encoding: str
    """Encoding name, e.g. ``PCMU`` (compared case-insensitively)."""
    clock_rate: int
    """RTP clock rate in Hz."""
    channels: int | None = None
    """Audio channels when given (``opus/48000/2``)."""

    @classmethod
    def parse(cls, value: str, lineno: int = 0) -> RtpMap:
        """Parse ``<pt> <encoding>/<clock>[/<channels>]``.

        :param value: text after ``a=rtpmap:``.
        :param lineno: 1-based line number for error messages.
        """
        m = _RTPMAP_RE.match(value)
        if m is None or int(m.group(1)) > 127:
            raise _err(lineno, f"bad rtpmap {value!r}")
        channels = int(m.group(4)) if m.group(4) is not None else None
        return cls(int(m.group(1)), m.group(2), int(m.group(3)), channels)

    def __str__(self) -> str:
        text = f"{self.payload_type} {self.encoding}/{self.clock_rate}"
        return text if self.channels is None else f"{text}/{self.channels}"


class _AttributeMixin:
    """Typed views over an ``attributes`` list shared by session and media level."""

    __slots__ = ()
    attributes: list[SdpAttribute]

    def attribute(self, name: str) -> str | None:
        """Value of the first attribute called ``name``.

        :param name: attribute name.
        :return: its value, ``""`` for a property attribute, ``None`` when absent.
        """
        for attr in self.attributes:
            if attr.name == name:
                return "" if attr.value is None else attr.value
        return None

    def attribute_values(self, name: str) -> list[str]:
        """Values of every attribute called ``name``, in order.

        :param name: attribute name (e.g. ``candidate``).
        """
        return [a.value or "" for a in self.attributes if a.name == name]

    def has_attribute(self, name: str) -> bool:
        """Whether an attribute called ``name`` is present.

        :param name: attribute name.
        """
        return any(a.name == name for a in self.attributes)

    @property
    def direction(self) -> Direction | None:
        """The direction attribute at this level, ``None`` when there is none."""
        for attr in self.attributes:
            if attr.name in _DIRECTIONS:
                return Direction(attr.name)
        return None


@dataclass(slots=True)
class MediaDescription(_AttributeMixin):
    """One m= section, RFC 8866 §5.14."""

    media: str
    """``audio``, ``video``, ``application``..."""
    port: int
    """Transport port; 0 marks a rejected or disabled stream (RFC 3264 §6)."""
    proto: str
    """Transport protocol, e.g. ``RTP/AVP`` or ``UDP/TLS/RTP/SAVPF``."""
    formats: list[str]
    """Media formats: RTP payload types as text for RTP profiles."""
    port_count: int | None = None
    """The ``/<number of ports>`` suffix, when present."""
    title: str | None = None
    """The i= line."""
    connections: list[SdpConnection] = field(default_factory=list)
    """The c= lines of this section."""
    bandwidths: list[SdpBandwidth] = field(default_factory=list)
    """The b= lines of this section."""
    key: str | None = None
    """The obsolete k= line, kept opaque."""
    attributes: list[SdpAttribute] = field(default_factory=list)
    """The a= lines, in order."""

    @classmethod
    def parse_m_line(cls, value: str, lineno: int) -> MediaDescription:
        """Parse the value of an m= line.

        :param value: text after ``m=``.
        :param lineno: 1-based line number for error messages.
        """
        parts = value.split(" ")
        if len(parts) < 4 or not all(parts):
            raise _err(lineno, "m= needs <media> <port>[/<number>] <proto> <fmt> ...")
        media, port_text, proto, *formats = parts
        if not _TOKEN_RE.match(media):
            raise _err(lineno, f"m= media must be a token, got {media!r}")
        port_s, slash, count_s = port_text.partition("/")
        if not _INT_RE.match(port_s) or int(port_s) > 65535:
            raise _err(lineno, f"m= port must be 0-65535, got {port_text!r}")
        port_count: int | None = None
        if slash:
            if not _INT_RE.match(count_s) or int(count_s) == 0:
                raise _err(lineno, f"m= port count must be a positive integer, got {port_text!r}")
            port_count = int(count_s)
        if not re.fullmatch(r"[A-Za-z0-9/_.\-]+", proto):
            raise _err(lineno, f"m= bad proto {proto!r}")
        if "RTP/" in proto:
            for fmt in formats:
                if not _INT_RE.match(fmt) or int(fmt) > 127:
                    raise _err(lineno, f"m= RTP payload type must be 0-127, got {fmt!r}")
        else:
            for fmt in formats:
                if not _TOKEN_RE.match(fmt):
                    raise _err(lineno, f"m= bad format {fmt!r}")
        return cls(media, int(port_s), proto, formats, port_count=port_count)

    @property
    def rtpmaps(self) -> dict[int, RtpMap]:
        """``a=rtpmap`` entries by payload type (first one wins)."""
        out: dict[int, RtpMap] = {}
        for value in self.attribute_values("rtpmap"):
            rtpmap = RtpMap.parse(value)
            out.setdefault(rtpmap.payload_type, rtpmap)
        return out

    @property
    def fmtp(self) -> dict[str, str]:
        """``a=fmtp`` parameter strings by format."""
        out: dict[str, str] = {}
        for value in self.attribute_values("fmtp"):
            fmt, _, params = value.partition(" ")
            out.setdefault(fmt, params)
        return out

    @property
    def ptime(self) -> float | None:
        """``a=ptime`` in milliseconds, ``None`` when absent."""
        value = self.attribute("ptime")
        return float(value) if value is not None else None

    @property
    def rtcp_mux(self) -> bool:
        """Whether ``a=rtcp-mux`` (RFC 5761) is present."""
        return self.has_attribute("rtcp-mux")

    @property
    def connection(self) -> SdpConnection | None:
        """The first c= line of this section, if any."""
        return self.connections[0] if self.connections else None

    def codec_for(self, payload_type: int) -> RtpMap | None:
        """Resolve a payload type via a=rtpmap, else the RFC 3551 static table.

        :param payload_type: RTP payload type listed on the m= line.
        """
        rtpmap = self.rtpmaps.get(payload_type)
        if rtpmap is not None:
            return rtpmap
        static = _STATIC_PAYLOADS.get(payload_type)
        if static is not None:
            return RtpMap(payload_type, static[0], static[1], None)
        return None

    def lines(self) -> list[str]:
        """Serialise this section as lines without line ends."""
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        out = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}"]
        if self.title is not None:
            out.append(f"i={self.title}")
        out.extend(f"c={c}" for c in self.connections)
        out.extend(f"b={b}" for b in self.bandwidths)
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(f"a={a}" for a in self.attributes)
        return out


@dataclass(slots=True)
class SessionDescription(_AttributeMixin):
    """A whole session description, RFC 8866 §5."""

    origin: SdpOrigin
    """The o= line."""
    session_name: str = "-"
    """The s= line."""
    version: int = 0
    """The v= line; always 0."""
    info: str | None = None
    """The session-level i= line."""
    uri: str | None = None
    """The u= line."""
    emails: list[str] = field(default_factory=list)
    """The e= lines."""
    phones: list[str] = field(default_factory=list)
    """The p= lines."""
    connection: SdpConnection | None = None
    """The session-level c= line."""
    bandwidths: list[SdpBandwidth] = field(default_factory=list)
    """Session-level b= lines."""
    timing: list[SdpTiming] = field(default_factory=lambda: [SdpTiming()])
    """t= lines with their r= lines; at least one."""
    zone: str | None = None
    """The z= line, kept opaque."""
    key: str | None = None
    """The obsolete session-level k= line, kept opaque."""
    attributes: list[SdpAttribute] = field(default_factory=list)
    """Session-level a= lines, in order."""
    media: list[MediaDescription] = field(default_factory=list)
    """The m= sections, in order."""

    @classmethod
    def parse(cls, text: str) -> SessionDescription:
        """Parse an SDP body.

        :param text: the body; CRLF or LF line ends, one trailing line end allowed.
        :raises MalformedSdp: with ``"SDP line N: ..."`` or ``"SDP: ..."`` messages.
        """
        if len(text) > MAX_SDP_SIZE:
            raise MalformedSdp(f"SDP: body of {len(text)} characters exceeds {MAX_SDP_SIZE}")
        if not text:
            raise MalformedSdp("SDP: empty body")
        # RFC 8866 §5: CRLF, but parsers SHOULD also accept a bare LF.
        lines = text.replace("\r\n", "\n").split("\n")
        if lines[-1] == "":
            lines.pop()
        origin: SdpOrigin | None = None
        session_name: str | None = None
        sdp_version: int | None = None
        info: str | None = None
        uri: str | None = None
        zone: str | None = None
        key: str | None = None
        emails: list[str] = []
        phones: list[str] = []
        connection: SdpConnection | None = None
        bandwidths: list[SdpBandwidth] = []
        timing: list[SdpTiming] = []
        attributes: list[SdpAttribute] = []
        media: list[MediaDescription] = []
        current: MediaDescription | None = None
        position = -1  # index into the order string of the current section
        seen: set[str] = set()

        for index, line in enumerate(lines):
            lineno = index + 1
            m = _LINE_RE.match(line)
            if m is None or "\r" in line:
                raise _err(lineno, "expected <type>=<value>")
            kind, value = m.group(1), m.group(2)
            if lineno == 1 and kind != "v":
                raise _err(lineno, "the first line must be v=0")
            if kind == "m":
                if not timing:
                    raise _err(lineno, "m= before any t= line")
                current = MediaDescription.parse_m_line(value, lineno)
                media.append(current)
                position, seen = 0, {"m"}
                continue
            order = _MEDIA_ORDER if current is not None else _SESSION_ORDER
            repeatable = _MEDIA_REPEATABLE if current is not None else _SESSION_REPEATABLE
            where = "media" if current is not None else "session"
            idx = order.find(kind)
            if idx < 0:
                raise _err(lineno, f"unexpected {kind}= line at {where} level")
            # RFC 8866 §5: a new t= may follow the r= lines of the previous one.
            t_after_r = kind == "t" and current is None and position == order.index("r")
            if (idx < position and not t_after_r) or (kind in seen and kind not in repeatable):
                raise _err(lineno, f"{kind}= line out of order at {where} level")
            if kind == "r" and (position != order.index("t") and position != idx):
                raise _err(lineno, "r= line must follow a t= line")
            position = idx
            seen.add(kind)

            if current is not None:
                if kind == "i":
                    current.title = value
                elif kind == "c":
                    current.connections.append(SdpConnection.parse(value, lineno))
                elif kind == "b":
                    current.bandwidths.append(SdpBandwidth.parse(value, lineno))
                elif kind == "k":
                    current.key = value
                else:  # a
                    current.attributes.append(SdpAttribute.parse(value, lineno))
                continue

            if kind == "v":
                if value != "0":
                    raise _err(lineno, f"unsupported SDP version {value!r}, expected v=0")
                sdp_version = 0
            elif kind == "o":
                origin = SdpOrigin.parse(value, lineno)
            elif kind == "s":
                session_name = value
            elif kind == "i":
                info = value
            elif kind == "u":
                uri = value
            elif kind == "e":
                emails.append(value)
            elif kind == "p":
                phones.append(value)
            elif kind == "c":
                connection = SdpConnection.parse(value, lineno)
            elif kind == "b":
                bandwidths.append(SdpBandwidth.parse(value, lineno))
            elif kind == "t":
                timing.append(SdpTiming.parse(value, lineno))
            elif kind == "r":
                timing[-1].repeats.append(value)
            elif kind == "z":
                zone = value
            elif kind == "k":
                key = value
            else:  # a
                attributes.append(SdpAttribute.parse(value, lineno))

        if sdp_version is None:
            raise MalformedSdp("SDP: missing v= line")
        if origin is None:
            raise MalformedSdp("SDP: missing o= line")
        if session_name is None:
            raise MalformedSdp("SDP: missing s= line")
        if not timing:
            raise MalformedSdp("SDP: missing t= line")
        return cls(
            origin=origin,
            session_name=session_name,
            version=sdp_version,
            info=info,
            uri=uri,
            emails=emails,
            phones=phones,
            connection=connection,
            bandwidths=bandwidths,
            timing=timing,
            zone=zone,
            key=key,
            attributes=attributes,
            media=media,
        )

    def lines(self) -> list[str]:
        """Serialise as lines without line ends, in RFC 8866 §5 order."""
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        if self.info is not None:
            out.append(f"i={self.info}")
        if self.uri is not None:
            out.append(f"u={self.uri}")
        out.extend(f"e={e}" for e in self.emails)
        out.extend(f"p={p}" for p in self.phones)
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"b={b}" for b in self.bandwidths)
        for t in self.timing:
            out.append(f"t={t.start} {t.stop}")
            out.extend(f"r={r}" for r in t.repeats)
        if self.zone is not None:
            out.append(f"z={self.zone}")
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(f"a={a}" for a in self.attributes)
        for m in self.media:
            out.extend(m.lines())
        return out

    def __str__(self) -> str:
        return "".join(f"{line}\r\n" for line in self.lines())

    def connection_for(self, media: MediaDescription) -> SdpConnection | None:
        """The c= line that applies to ``media``: its own, else the session's (RFC 8866 §5.7).

        :param media: one of ``self.media``.
        """
        return media.connection or self.connection

    def direction_for(self, media: MediaDescription) -> Direction:
        """Effective direction of ``media``: media level, else session level, else sendrecv.

        :param media: one of ``self.media``.
        """
        # RFC 8866 §6.7: a media-level direction overrides the session-level one.
        return media.direction or self.direction or Direction.SENDRECV


# --------------------------------------------------------------------------- offer/answer


@dataclass(frozen=True, slots=True)
class Codec:
    """A codec we can offer or accept on an RTP leg."""

    name: str
    """Encoding name as in a=rtpmap, e.g. ``PCMU``."""
    clock_rate: int
    """RTP clock rate, Hz."""
    payload_type: int
    """Static payload type, or our preferred dynamic one (96-127) when we offer."""
    channels: int = 1
    """Audio channels."""
    fmtp: str | None = None
    """Format parameters we send in a=fmtp when we offer."""

    @property
    def is_telephone_event(self) -> bool:
        """Whether this is RFC 4733 ``telephone-event`` rather than an audio codec."""
        return self.name.lower() == "telephone-event"

    def matches(self, rtpmap: RtpMap) -> bool:
        """Whether an offered/answered format is this codec (name case-insensitive, RFC 8866 §6.6).

        :param rtpmap: the resolved format.
        """
        return (
            rtpmap.encoding.lower() == self.name.lower()
            and rtpmap.clock_rate == self.clock_rate
            and (rtpmap.channels or 1) == self.channels
        )


PCMU = Codec("PCMU", 8000, 0)
PCMA = Codec("PCMA", 8000, 8)
TELEPHONE_EVENT = Codec("telephone-event", 8000, 101, fmtp="0-16")
#: Our preference order: G.711 µ-law, A-law, RFC 4733 DTMF events.
DEFAULT_CODECS: tuple[Codec, ...] = (PCMU, PCMA, TELEPHONE_EVENT)


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """The outcome of an offer/answer exchange for the one audio stream of a leg."""

    remote_address: str
    """Where to send RTP; ``0.0.0.0`` when the peer put us on hold the RFC 2543 way."""
    remote_port: int
    """Remote RTP port."""
    codec: str
    """Encoding name of the chosen codec, e.g. ``PCMU``."""
    payload_type: int
    """Payload type to send and expect for the codec."""
    clock_rate: int
    """RTP clock rate of the codec."""
    telephone_event_pt: int | None
    """RFC 4733 payload type, or ``None`` when DTMF must be detected in-band."""
    direction: Direction
    """Our direction: ``SENDONLY`` means we send but do not receive."""
    ptime: int
    """Packetisation time in ms."""
    rtcp_mux: bool = False
    """Whether RTCP shares the RTP port (RFC 5761)."""
    media_index: int = 0
    """Index of the m= line in the session description."""
    channels: int = 1
    """Audio channels of the codec."""

    @property
    def on_hold(self) -> bool:
        """Whether we must not send media (remote hold, RFC 3264 §8.4)."""
        return not self.direction.sends or self.remote_address in ("0.0.0.0", "::")


def _offer_direction(offer: SessionDescription, m: MediaDescription) -> Direction:
    direction = offer.direction_for(m)
    conn = offer.connection_for(m)
    if conn is not None and conn.is_hold:
        # RFC 3264 §8.4: c=0.0.0.0 means "do not send to me": the offerer cannot receive.
        direction = Direction.from_flags(direction.sends, False)
    return direction


def _choose_ptime(m: MediaDescription) -> int:
    ptime = m.ptime
    if ptime is None or ptime <= 0:
        return DEFAULT_PTIME
    # We packetise G.711 in 10 ms steps up to 60 ms; round the request onto that grid.
    return int(min(60, max(10, round(ptime / 10) * 10)))


def _new_session(
    local_ip: str, session_id: int, version: int, username: str, session_name: str
) -> SessionDescription:
    conn = SdpConnection.for_ip(local_ip)
    if session_id < 0 or version < 0:
        raise LocalProtocolError("session id and version must be non-negative")
    origin = SdpOrigin(username, str(session_id), str(version), "IN", conn.addrtype, conn.address)
    return SessionDescription(origin=origin, session_name=session_name, connection=conn)


def _rejected(m: MediaDescription) -> MediaDescription:
    # RFC 3264 §6: a rejected stream keeps its m= line with port 0 and at least one format.
    return MediaDescription(m.media, 0, m.proto, list(m.formats) or ["0"])


def _check_codecs(codecs: Sequence[Codec]) -> None:
    if not any(not c.is_telephone_event for c in codecs):
        raise LocalProtocolError("the codec list needs at least one audio codec")
    pts = [c.payload_type for c in codecs]
    if len(set(pts)) != len(pts) or not all(0 <= pt <= 127 for pt in pts):
        raise LocalProtocolError(f"codec payload types must be distinct and 0-127: {pts}")


def _audio_attrs(
    pts: Iterable[tuple[int, RtpMap, str | None]], ptime: int, direction: Direction, mux: bool
) -> list[SdpAttribute]:
    attrs: list[SdpAttribute] = []
    for pt, rtpmap, fmtp in pts:
        attrs.append(
            SdpAttribute(
                "rtpmap", str(RtpMap(pt, rtpmap.encoding, rtpmap.clock_rate, rtpmap.channels))
            )
        )
        if fmtp is not None:
            attrs.append(SdpAttribute("fmtp", f"{pt} {fmtp}"))
    attrs.append(SdpAttribute("ptime", str(ptime)))
    if mux:
        attrs.append(SdpAttribute("rtcp-mux"))
    attrs.append(SdpAttribute(direction.value))
    return attrs


def answer_offer(
    offer: SessionDescription,
    local_ip: str,
    local_port: int,
    supported: Sequence[Codec] = DEFAULT_CODECS,
    session_id: int = 0,
    version: int = 0,
    *,
    username: str = "hotline",
    session_name: str = "hotline",
    rtcp_mux: bool = True,
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer an SDP offer for one RTP audio stream (RFC 3264 §6).

    The first audio m-line on an RTP/AVP profile with a non-zero port and a codec we
    support is accepted; every other m-line is rejected with port 0, so the answer
    has exactly as many m-lines as the offer. Among the offered formats, the first one
    the offer lists that is in ``supported`` wins (the answerer honours the offerer's
    preference), and its payload type is kept. A telephone-event format in the offer
    is accepted with the offer's payload type and fmtp.

    :param offer: the parsed remote offer.
    :param local_ip: our RTP address (IPv4 or IPv6 literal); also used in o= and c=.
    :param local_port: our RTP port.
    :param supported: codecs we can handle (order is irrelevant when answering).
    :param session_id: o= session id of our side of the session.
    :param version: o= version; increase it for every new answer in the session.
    :param username: o= username.
    :param session_name: s= value.
    :param rtcp_mux: accept a=rtcp-mux when offered.
    :return: the answer and the negotiated media for the accepted stream.
    :raises IncompatibleMedia: no audio stream can be accepted (answer 488).
    :raises LocalProtocolError: bad ``local_ip``, ports or codec list.
    """
    if not 0 < local_port < 65536:
        raise LocalProtocolError(f"local_port must be 1-65535, got {local_port}")
    _check_codecs(supported)
    answer = _new_session(local_ip, session_id, version, username, session_name)
    negotiated: NegotiatedMedia | None = None
    reasons: list[str] = []

    for index, m in enumerate(offer.media):
        if negotiated is not None or m.media != "audio" or m.port == 0:
            answer.media.append(_rejected(m))
            continue
        if m.proto not in RTP_PROFILES:
            reasons.append(f"m-line {index}: unsupported transport {m.proto}")
            answer.media.append(_rejected(m))
            continue
        conn = offer.connection_for(m)
        if conn is None:
            reasons.append(f"m-line {index}: no c= line")
            answer.media.append(_rejected(m))
            continue
        codec: tuple[int, RtpMap, Codec] | None = None
        event: tuple[int, RtpMap, str | None] | None = None
        fmtps = m.fmtp
        for fmt in m.formats:
            pt = int(fmt)
            rtpmap = m.codec_for(pt)
            if rtpmap is None:
                continue
            for ours in supported:
                if not ours.matches(rtpmap):
                    continue
                if ours.is_telephone_event:
                    if event is None:
                        event = (pt, rtpmap, fmtps.get(fmt, ours.fmtp))
                elif codec is None:
                    codec = (pt, rtpmap, ours)
                break
        if codec is None:
            offered = ", ".join(
                str(r.encoding) for r in (m.codec_for(int(f)) for f in m.formats) if r
            )
            reasons.append(f"m-line {index}: no common codec in [{offered}]")
            answer.media.append(_rejected(m))
            continue

        # RFC 3264 §6.1: sendonly → recvonly, recvonly → sendonly, inactive → inactive.
        direction = _offer_direction(offer, m).reverse()
        ptime = _choose_ptime(m)
        mux = rtcp_mux and m.rtcp_mux
        pt, rtpmap, ours = codec
        chosen = [(pt, rtpmap, fmtps.get(str(pt)))]
        if event is not None:
            chosen.append(event)
        answer.media.append(
            MediaDescription(
                "audio",
                local_port,
                m.proto,
                [str(p) for p, _, _ in chosen],
                attributes=_audio_attrs(chosen, ptime, direction, mux),
            )
        )
        negotiated = NegotiatedMedia(
            remote_address=conn.host,
            remote_port=m.port,
            codec=ours.name,
            payload_type=pt,
            clock_rate=rtpmap.clock_rate,
            telephone_event_pt=event[0] if event is not None else None,
            direction=direction,
            ptime=ptime,
            rtcp_mux=mux,
            media_index=index,
            channels=ours.channels,
        )

    if negotiated is None:
        detail = "; ".join(reasons) if reasons else "the offer has no active audio stream"
        raise IncompatibleMedia(f"SDP offer not acceptable: {detail}")
    return answer, negotiated


def build_offer(
    local_ip: str,
    local_port: int,
    codecs: Sequence[Codec] = DEFAULT_CODECS,
    session_id: int = 0,
    version: int = 0,
    *,
    direction: Direction = Direction.SENDRECV,
    ptime: int = DEFAULT_PTIME,
    username: str = "hotline",
    session_name: str = "hotline",
    rtcp_mux: bool = False,
) -> SessionDescription:
    """Build an offer for one RTP/AVP audio stream, for UAC legs and re-INVITEs.

    To put the peer on hold, re-offer with the same ``session_id``, ``version + 1`` and
    ``direction=Direction.SENDONLY`` (RFC 3264 §8.4; we never use c=0.0.0.0).

    :param local_ip: our RTP address; also used in o= and c=.
    :param local_port: our RTP port.
    :param codecs: codecs in our preference order; telephone-event is listed last.
    :param session_id: o= session id.
    :param version: o= version; increase it for every new offer in the session.
    :param direction: our direction.
    :param ptime: packetisation time we want to receive, ms.
    :param username: o= username.
    :param session_name: s= value.
    :param rtcp_mux: offer RFC 5761 rtcp-mux.
    :raises LocalProtocolError: bad address, port, ptime or codec list.
    """
    if not 0 < local_port < 65536:
        raise LocalProtocolError(f"local_port must be 1-65535, got {local_port}")
    if not 0 < ptime <= 200:
        raise LocalProtocolError(f"ptime must be 1-200 ms, got {ptime}")
    _check_codecs(codecs)
    offer = _new_session(local_ip, session_id, version, username, session_name)
    ordered = [c for c in codecs if not c.is_telephone_event] + [
        c for c in codecs if c.is_telephone_event
    ]
    entries = [
        (
            c.payload_type,
            RtpMap(c.payload_type, c.name, c.clock_rate, c.channels if c.channels != 1 else None),
            c.fmtp,
        )
        for c in ordered
    ]
    offer.media.append(
        MediaDescription(
            "audio",
            local_port,
            "RTP/AVP",
            [str(c.payload_type) for c in ordered],
            attributes=_audio_attrs(entries, ptime, direction, rtcp_mux),
        )
    )
    return offer


def negotiated_from_answer(
    offer: SessionDescription,
    answer: SessionDescription,
    codecs: Sequence[Codec] = DEFAULT_CODECS,
) -> NegotiatedMedia:
    """Read the outcome of our offer from the remote answer (RFC 3264 §7).

    :param offer: the offer we sent (from ``build_offer``).
    :param answer: the parsed remote answer.
    :param codecs: the codecs we offered.
    :raises IncompatibleMedia: the answer does not match the offer or accepts no audio
        stream with a codec we offered.
    """
    # RFC 3264 §6: the answer has exactly as many m= lines as the offer, in order.
    if len(answer.media) != len(offer.media):
        raise IncompatibleMedia(
            f"SDP answer has {len(answer.media)} m-lines, the offer had {len(offer.media)}"
        )
    for index, (om, am) in enumerate(zip(offer.media, answer.media, strict=True)):
        if om.media != "audio" or om.port == 0:
            continue
        if am.media != om.media:
            raise IncompatibleMedia(
                f"SDP answer m-line {index} is {am.media}, the offer's is {om.media}"
            )
        if am.port == 0:
            continue
        conn = answer.connection_for(am)
        if conn is None:
            raise IncompatibleMedia(f"SDP answer m-line {index} has no c= line")
        codec: tuple[int, RtpMap, Codec] | None = None
        event_pt: int | None = None
        for fmt in am.formats:
            if not _INT_RE.match(fmt):
                continue
            pt = int(fmt)
            rtpmap = am.codec_for(pt) or om.codec_for(pt)
            if rtpmap is None:
                continue
            ours = next((c for c in codecs if c.matches(rtpmap)), None)
            if ours is None:
                continue
            if ours.is_telephone_event:
                if event_pt is None:
                    event_pt = pt
            elif codec is None:
                codec = (pt, rtpmap, ours)
        if codec is None:
            raise IncompatibleMedia(
                f"SDP answer m-line {index} accepts none of the codecs we offered"
            )
        # The answerer's direction is the reverse of ours.
        remote_direction = answer.direction_for(am)
        if conn.is_hold:
            remote_direction = Direction.from_flags(remote_direction.sends, False)
        pt, rtpmap, ours = codec
        return NegotiatedMedia(
            remote_address=conn.host,
            remote_port=am.port,
            codec=ours.name,
            payload_type=pt,
            clock_rate=rtpmap.clock_rate,
            telephone_event_pt=event_pt,
            direction=remote_direction.reverse(),
            ptime=_choose_ptime(am) if am.ptime is not None else _choose_ptime(om),
            rtcp_mux=om.rtcp_mux and am.rtcp_mux,
            media_index=index,
            channels=ours.channels,
        )
    raise IncompatibleMedia("SDP answer rejected every audio stream")


# --------------------------------------------------------------------------- hold / re-offers


def offered_direction(sdp: SessionDescription, media: MediaDescription) -> Direction:
    """The direction a received SDP asks for on ``media``, from its sender's view.

    Media level, else session level, else sendrecv (RFC 8866 §6.7); a ``c=0.0.0.0``
    (the RFC 2543 hold, RFC 3264 §8.4) takes away the sender's receiving half.

    :param sdp: the peer's offer or answer.
    :param media: one of ``sdp.media``.
    """
    return _offer_direction(sdp, media)


def is_hold(sdp: SessionDescription) -> bool:
    """Whether a received SDP puts us on hold (RFC 3264 §8.4).

    True when it has at least one active stream (port not 0) and no active stream
    lets its sender receive: ``a=sendonly``, ``a=inactive`` or ``c=0.0.0.0``.

    :param sdp: the peer's offer (a re-INVITE or UPDATE body).
    """
    active = [m for m in sdp.media if m.port != 0]
    return bool(active) and not any(offered_direction(sdp, m).receives for m in active)


def hold_direction(current: Direction) -> Direction:
    """Our direction to offer when we put a stream on hold (RFC 3264 §8.4):
    sendrecv → sendonly, recvonly → inactive (we keep sending, e.g. music on hold).

    :param current: the stream's current direction, from our side.
    """
    return Direction.from_flags(current.sends, False)


def resume_direction(current: Direction) -> Direction:
    """Our direction to offer when we take a stream off hold: the inverse of
    :func:`hold_direction` (sendonly → sendrecv, inactive → recvonly).

    :param current: the stream's direction while held, from our side.
    """
    return Direction.from_flags(current.sends, True)


def set_direction(
    sdp: SessionDescription, direction: Direction, media_index: int | None = None
) -> None:
    """Set the direction attribute of one or all active streams, in place.

    The media-level direction attribute is replaced where it stands (or appended).
    When every stream is set, a session-level direction attribute is removed, so that
    nothing contradicts the media level.

    :param sdp: the session description (ours, before re-offering it).
    :param direction: the new direction.
    :param media_index: index of the m= line; None: every stream with a non-zero port.
    :raises LocalProtocolError: ``media_index`` out of range.
    """
    if media_index is None:
        targets = [m for m in sdp.media if m.port != 0]
        sdp.attributes = [a for a in sdp.attributes if a.name not in _DIRECTIONS]
    else:
        if not 0 <= media_index < len(sdp.media):
            raise LocalProtocolError(
                f"media_index {media_index} out of range for {len(sdp.media)} m-lines"
            )
        targets = [sdp.media[media_index]]
    for m in targets:
        attrs: list[SdpAttribute] = []
        placed = False
        for attr in m.attributes:
            if attr.name in _DIRECTIONS:
                if not placed:
                    attrs.append(SdpAttribute(direction.value))
                    placed = True
                continue
            attrs.append(attr)
        if not placed:
            attrs.append(SdpAttribute(direction.value))
        m.attributes = attrs


def bump_version(sdp: SessionDescription) -> int:
    """Increment the o= session version in place, as every modified offer in a session
    must (RFC 3264 §8: same session id, version + 1); return the new version.

    :param sdp: our previous session description.
    """
    version = int(sdp.origin.session_version) + 1
    sdp.origin.session_version = str(version)
    return version


def reoffer(sdp: SessionDescription, direction: Direction | None = None) -> SessionDescription:
    """A copy of our last SDP for a re-INVITE/UPDATE: o= version + 1 and, if given,
    ``direction`` on every active stream (RFC 3264 §8).

    For hold, pass ``hold_direction(current)``; to resume, ``resume_direction(...)``.

    :param sdp: the session description we last sent.
    :param direction: the new direction, or None to keep the current ones.
    """
    new = copy.deepcopy(sdp)
    if direction is not None:
        set_direction(new, direction)
    bump_version(new)
    return new
