"""SIP URIs, name-addr and Via values (RFC 3261 §19.1, §20, §25; RFC 3966 tel; RFC 3581 rport).

Parsing here works on header *values* (strings); ``sip/message.py`` finds them.
Every parse error is a ``MalformedMessage`` whose text says what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Self

from .exceptions import MalformedMessage

Params = dict[str, str | None]

_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)
# RFC 3261 §25.1: unreserved / escaped / user-unreserved chars of the user part.
_HOST_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.\-_]*\.?|[0-9.]+)$")
_VIA_RE = re.compile(
    r"\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+"
    r"(\[[0-9A-Fa-f:.]+\]|[^\s;:]+)(?:\s*:\s*(\d+))?\s*(.*)$",
    re.S,
)
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+\-.]*):")


def split_quoted(value: str, sep: str) -> list[str]:
    """Split ``value`` at ``sep`` outside quoted strings and ``<...>``.

    :param value: a header value, e.g. ``'"A, B" <sip:a@b>, <sip:c@d>'``.
    :param sep: the separator character (``,`` or ``;``).
    """
    if sep not in value:
        return [value]
    if '"' not in value and "<" not in value:
        return value.split(sep)
    out: list[str] = []
    start = 0
    quoted = False
    angle = False
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == sep and not angle:
            out.append(value[start:i])
            start = i + 1
        i += 1
    if quoted:
        raise MalformedMessage(f"unterminated quoted string in {value!r}")
    out.append(value[start:])
    return out


def parse_params(text: str) -> Params:
    """Parse ``;name=value;flag`` parameter lists into an ordered dict (names lower-cased).

    :param text: the text after the first ``;`` (without it), e.g. ``"tag=1;lr"``.
    """
    params: Params = {}
    if not text:
        return params
    for item in split_quoted(text, ";"):
        item = item.strip()
        if not item:
            raise MalformedMessage(f"empty parameter in {text!r}")
        name, eq, val = item.partition("=")
        name = name.strip().lower()
        if not name or not _TOKEN_CHARS.issuperset(name):
            raise MalformedMessage(f"bad parameter name {name!r}")
        params[name] = val.strip() if eq else None
    return params


def format_params(params: Params) -> str:
    """Inverse of :func:`parse_params`, with the leading ``;``."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def unquote(s: str) -> str:
    """Remove the quotes and backslash escapes of a quoted-string (RFC 3261 §25.1)."""
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        s = s[1:-1]
        if "\\" in s:
            s = re.sub(r"\\(.)", r"\1", s, flags=re.S)
    return s


def quote(s: str) -> str:
    """Make a quoted-string of ``s``."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(slots=True)
class SipUri:
    """A ``sip:``/``sips:``/``tel:`` URI, or any absolute URI (kept opaque).

    For ``tel:`` URIs ``user`` holds the number and ``host`` is empty.
    """

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: Params = field(default_factory=dict)
    headers: str | None = None
    opaque: str | None = None
    """For schemes other than sip/sips/tel: everything after the colon."""

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse a URI.

        :param text: e.g. ``sip:alice:pw@[2001:db8::1]:5061;transport=tcp?subject=x``.
        """
        text = text.strip()
        m = _SCHEME_RE.match(text)
        if m is None:
            raise MalformedMessage(f"URI without a scheme: {text!r}")
        scheme = m.group(1).lower()
        rest = text[m.end() :]
        if scheme == "tel":
            number, _, ptext = rest.partition(";")
            if not number:
                raise MalformedMessage(f"tel URI without a number: {text!r}")
            return cls(scheme="tel", user=number, params=parse_params(ptext))
        if scheme not in ("sip", "sips"):
            return cls(scheme=scheme, opaque=rest)
        if not rest or any(c in rest for c in " \t<>\"\r\n"):
            raise MalformedMessage(f"bad SIP URI {text!r}")
        rest, qm, headers = rest.partition("?")
        user = password = None
        at = rest.find("@")
        if at >= 0:
            userinfo = rest[:at]
            rest = rest[at + 1 :]
            user, colon, pw = userinfo.partition(":")
            if colon:
                password = pw
            if not user:
                raise MalformedMessage(f"empty user part in {text!r}")
        hostport, _, ptext = rest.partition(";")
        host, port = _split_hostport(hostport, text)
        return cls(
            scheme=scheme,
            user=user,
            password=password,
            host=host,
            port=port,
            params=parse_params(ptext),
            headers=headers if qm else None,
        )

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        if self.scheme == "tel":
            return f"tel:{self.user}{format_params(self.params)}"
        s = self.scheme + ":"
        if self.user is not None:
            s += self.user
            if self.password is not None:
                s += ":" + self.password
            s += "@"
        s += self.host
        if self.port is not None:
            s += f":{self.port}"
        if self.params:
            s += format_params(self.params)
        if self.headers is not None:
            s += "?" + self.headers
        return s

    @property
    def transport(self) -> str:
        """The ``transport`` parameter, lower-cased (``udp`` if absent for sip:)."""
        t = self.params.get("transport")
        if t:
            return t.lower()
        return "tls" if self.scheme == "sips" else "udp"

    @property
    def host_bare(self) -> str:
        """The host without IPv6 brackets."""
        h = self.host
        return h[1:-1] if h.startswith("[") else h

    def copy(self) -> SipUri:
        """A copy whose params can be changed independently."""
        return SipUri(
            self.scheme, self.user, self.password, self.host, self.port,
            dict(self.params), self.headers, self.opaque,
        )


def _split_hostport(hostport: str, whole: str) -> tuple[str, int | None]:
    port: int | None = None
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise MalformedMessage(f"unterminated IPv6 reference in {whole!r}")
        host = hostport[: end + 1]
        tail = hostport[end + 1 :]
        if tail:
            if not tail.startswith(":"):
                raise MalformedMessage(f"bad host:port in {whole!r}")
            port = _port(tail[1:], whole)
    else:
        host, colon, ptxt = hostport.partition(":")
        if colon:
            port = _port(ptxt, whole)
    if not host or _HOST_RE.match(host) is None:
        raise MalformedMessage(f"bad host {host!r} in {whole!r}")
    return host.lower(), port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or len(text) > 5 or int(text) > 65535:
        raise MalformedMessage(f"bad port {text!r} in {whole!r}")
    return int(text)


@dataclass(slots=True)
class NameAddr:
    """A ``name-addr`` or ``addr-spec`` with header parameters (From, To, Contact, Route…).

    ``params`` are the header's parameters (``tag``, ``expires``, ``q``), not the URI's.
    """

    uri: SipUri
    display: str | None = None
    params: Params = field(default_factory=dict)
    wildcard: bool = False
    """``Contact: *`` (RFC 3261 §10.2.2)."""

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse one name-addr/addr-spec value (the caller splits lists at commas).

        :param text: e.g. ``'"Bob \\"B\\"" <sip:bob@b.example>;tag=12'``.
        """
        s = text.strip()
        if s == "*":
            return cls(uri=SipUri(), wildcard=True)
        display: str | None = None
        if s.startswith('"'):
            i = 1
            n = len(s)
            while i < n and s[i] != '"':
                i += 2 if s[i] == "\\" else 1
            if i >= n:
                raise MalformedMessage(f"unterminated display name in {text!r}")
            display = unquote(s[: i + 1])
            s = s[i + 1 :].lstrip()
            if not s.startswith("<"):
                raise MalformedMessage(f"display name without <URI> in {text!r}")
        lt = s.find("<")
        if lt >= 0:
            if display is None:
                d = s[:lt].strip()
                display = d or None
            gt = s.find(">", lt)
            if gt < 0:
                raise MalformedMessage(f"missing '>' in {text!r}")
            uri = SipUri.parse(s[lt + 1 : gt])
            rest = s[gt + 1 :].strip()
            if rest and not rest.startswith(";"):
                raise MalformedMessage(f"garbage after '>' in {text!r}")
            return cls(uri=uri, display=display, params=parse_params(rest[1:]))
        # addr-spec: params after the URI belong to the header (RFC 3261 §20.10).
        uri_text, _, ptext = s.partition(";")
        if "?" in uri_text or "," in uri_text:
            raise MalformedMessage(f"URI with ',', '?' must be in <> in {text!r}")
        return cls(uri=SipUri.parse(uri_text), params=parse_params(ptext))

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        s = f"<{self.uri}>"
        if self.display:
            disp = self.display
            s = (disp if all(c in _TOKEN_CHARS or c == " " for c in disp) else quote(disp)) + " " + s
        return s + format_params(self.params)

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (From/To)."""
        return self.params.get("tag")


@dataclass(slots=True)
class Via:
    """One Via value (RFC 3261 §20.42, RFC 3581 rport)."""

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse one Via value (the caller splits comma lists).

        :param text: e.g. ``SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport``.
        """
        m = _VIA_RE.match(text)
        if m is None:
            raise MalformedMessage(f"bad Via {text.strip()!r}")
        transport, host, port_s, rest = m.groups()
        rest = rest.strip()
        if rest and not rest.startswith(";"):
            raise MalformedMessage(f"bad Via parameters in {text.strip()!r}")
        host_c, _ = _split_hostport(host, text)
        port = _port(port_s, text) if port_s else None
        return cls(transport.upper(), host_c, port, parse_params(rest[1:]))

    def __str__(self) -> str:
        hp = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"SIP/2.0/{self.transport} {hp}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        """The branch parameter."""
        return self.params.get("branch")
