"""SIP URIs, name-addr and Via values (RFC 3261 §19.1, §20, §25; RFC 3966 tel; RFC 3581 rport).

Parsing here works on header *values* (strings); ``sip/message.py`` finds them.
Every parse error is a ``MalformedMessage`` whose text says what is wrong; no other
exception escapes (fuzzed in ``tests/sip/test_fuzz_parser.py``).

Strictness (RFC 4475 §3.1.2): LWS inside ``<addr-spec>`` (badaspec), an unquoted display
name that is not a run of tokens (baddn), unbalanced quotes (quotbal), ``?``/``,`` in an
addr-spec outside ``<>`` (regbadct), empty parameters (badinv01), bad ``%`` escapes and
illegal characters in the user part are all errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Self
from urllib.parse import unquote_to_bytes

from .exceptions import MalformedMessage

Params = dict[str, str | None]

_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
# RFC 3261 §25.1: unreserved / escaped / user-unreserved chars of the user part.
_HOST_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.\-_]*\.?|[0-9.]+)$")
_VIA_RE = re.compile(
    r"\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+"
    r"(\[[0-9A-Fa-f:.]+\]|[^\s;:]+)(?:\s*:\s*([0-9]+))?\s*(.*)$",
    re.S,
)
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+\-.]*):")
_URI_BAD_RE = re.compile(r'[\s<>"]')
_HOSTPORT_RE = re.compile(
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.\-_]*[A-Za-z0-9.])?)(?::([0-9]{1,5}))?"
)
_QUOTED_RE = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)
_UNESCAPE_RE = re.compile(r"\\(.)", re.S)
# The common name-addr shapes, parsed in one match; anything else takes the general path.
_NAME_ADDR_FAST_RE = re.compile(
    r'(?:"([^"\\\r\n]*)"|([A-Za-z0-9\-.!%*_+`\'~]+(?:[ \t]+[A-Za-z0-9\-.!%*_+`\'~]+)*))?'
    r'[ \t]*<([^<>\s"]+)>(.*)',
    re.S,
)
# RFC 3261 §25.1: user = 1*( unreserved / escaped / user-unreserved ).
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_USER_CHARS = frozenset(_ALNUM + "-_.!~*'()" + "%" + "&=+$,;?/")
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
_PASSWORD_CHARS = frozenset(_ALNUM + "-_.!~*'()" + "%" + "&=+$,")
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# RFC 3966: global/local number digits, visual separators, and the hex digits of local numbers.
_TEL_CHARS = frozenset("0123456789abcdefABCDEF*#+-.()")
_NAME_CHARS = _TOKEN_CHARS | frozenset(" \t")


def is_digits(text: str) -> bool:
    """True if ``text`` is one or more ASCII digits (``str.isdigit`` also accepts ``²``)."""
    return text.isascii() and text.isdigit()


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
    items = split_quoted(text, ";") if '"' in text else text.split(";")
    token = _TOKEN_CHARS
    for item in items:
        name, eq, val = item.partition("=")
        name = name.strip().lower()
        if not name or not token.issuperset(name):
            if not item.strip():
                raise MalformedMessage(f"empty parameter in {text!r}")
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
        :raises MalformedMessage: if it is not a URI (RFC 3261 §19.1, RFC 3966).
        """
        if text[:1] in (" ", "\t") or text[-1:] in (" ", "\t"):
            text = text.strip()
        if text[:4] == "sip:":
            scheme = "sip"
            rest = text[4:]
        else:
            m = _SCHEME_RE.match(text)
            if m is None:
                raise MalformedMessage(f"URI without a scheme: {text!r}")
            scheme = m.group(1).lower()
            rest = text[m.end() :]
            if scheme == "tel":
                number, _, ptext = rest.partition(";")
                if not number:
                    raise MalformedMessage(f"tel URI without a number: {text!r}")
                if not _TEL_CHARS.issuperset(number):
                    raise MalformedMessage(f"bad tel number {number!r}")
                return cls("tel", number, None, "", None, parse_params(ptext), None, None)
            if scheme != "sips":
                if not rest or _URI_BAD_RE.search(rest):
                    raise MalformedMessage(f"bad URI {text!r}")
                return cls(scheme, None, None, "", None, {}, None, rest)
        if not rest or _URI_BAD_RE.search(rest):
            raise MalformedMessage(f"bad SIP URI {text!r}")
        user = password = None
        # RFC 3261 §25.1: '@' cannot appear unescaped in the user part, URI parameters
        # or headers, so the first one ends the userinfo, which may itself hold ';', '?'
        # and ',' (RFC 4475 intmeth, semiuri).
        at = rest.find("@")
        if at >= 0:
            userinfo = rest[:at]
            rest = rest[at + 1 :]
            user, colon, pw = userinfo.partition(":")
            if not user:
                raise MalformedMessage(f"empty user part in {text!r}")
            if not _USER_CHARS.issuperset(user):
                raise MalformedMessage(f"bad character in the user part of {text!r}")
            if colon:
                if not _PASSWORD_CHARS.issuperset(pw):
                    raise MalformedMessage(f"bad character in the password of {text!r}")
                password = pw
            if "%" in userinfo and _BAD_ESCAPE_RE.search(userinfo):
                raise MalformedMessage(f"bad %-escape in {text!r}")
        headers: str | None = None
        q = rest.find("?")
        if q >= 0:
            headers = rest[q + 1 :]
            rest = rest[:q]
        semi = rest.find(";")
        if semi >= 0:
            params = parse_params(rest[semi + 1 :])
            rest = rest[:semi]
        else:
            params = {}
        host, port = _split_hostport(rest, text)
        return cls(scheme, user, password, host, port, params, headers, None)

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
    def user_unescaped(self) -> str | None:
        """The user part with ``%HH`` escapes decoded (RFC 3261 §19.1.4 compares these).

        Octets that are not UTF-8 (e.g. ``%00%ff``) come back as surrogate escapes.
        """
        if self.user is None or "%" not in self.user:
            return self.user
        return unquote_to_bytes(self.user).decode("utf-8", "surrogateescape")

    @property
    def host_bare(self) -> str:
        """The host without IPv6 brackets."""
        h = self.host
        return h[1:-1] if h.startswith("[") else h

    def copy(self) -> SipUri:
        """A copy whose params can be changed independently."""
        return SipUri(
            self.scheme,
            self.user,
            self.password,
            self.host,
            self.port,
            dict(self.params),
            self.headers,
            self.opaque,
        )


def _split_hostport(hostport: str, whole: str) -> tuple[str, int | None]:
    m = _HOSTPORT_RE.fullmatch(hostport)
    if m is None:
        if hostport.startswith("[") and "]" not in hostport:
            raise MalformedMessage(f"unterminated IPv6 reference in {whole!r}")
        if ":" in hostport and not hostport.startswith("["):
            host, _, ptxt = hostport.partition(":")
            if host and _HOSTPORT_RE.fullmatch(host):
                raise MalformedMessage(f"bad port {ptxt!r} in {whole!r}")
        raise MalformedMessage(f"bad host {hostport!r} in {whole!r}")
    host, ptxt = m.groups()
    port: int | None = None
    if ptxt is not None:
        port = int(ptxt)
        if port > 65535:
            raise MalformedMessage(f"bad port {ptxt!r} in {whole!r}")
    return host.lower(), port


def _port(text: str, whole: str) -> int:
    if not is_digits(text) or len(text) > 5 or int(text) > 65535:
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
        s = text.strip() if text[:1] in (" ", "\t") or text[-1:] in (" ", "\t") else text
        fast = _NAME_ADDR_FAST_RE.fullmatch(s)
        if fast is not None:
            quoted, tokens, uri_text, rest = fast.groups()
            uri = SipUri.parse(uri_text)  # same order of checks as _parse_general
            if rest:
                rest = rest.strip()
                if rest and rest[0] != ";":
                    raise MalformedMessage(f"garbage after '>' in {text!r}")
            return cls(
                uri,
                quoted if quoted is not None else tokens,
                parse_params(rest[1:]) if rest else {},
                False,
            )
        return cls._parse_general(text, s)

    @classmethod
    def _parse_general(cls, text: str, s: str) -> Self:
        """Every shape of name-addr/addr-spec, with precise errors (``s`` is ``text`` stripped)."""
        if s == "*":
            return cls(uri=SipUri(), wildcard=True)
        display: str | None = None
        if s.startswith('"'):
            qm = _QUOTED_RE.match(s)
            if qm is None:
                raise MalformedMessage(f"unterminated display name in {text!r}")
            display = qm.group(1)
            if "\\" in display:
                display = _UNESCAPE_RE.sub(r"\1", display)
            s = s[qm.end() :].lstrip()
            if not s.startswith("<"):
                raise MalformedMessage(f"display name without <URI> in {text!r}")
        lt = s.find("<")
        if lt >= 0:
            if display is None:
                d = s[:lt].strip()
                # RFC 3261 §25.1: display-name = *(token LWS) / quoted-string. Phones in
                # China send unquoted UTF-8 names (李娜 <sip:…>): accept non-ASCII
                # letters, still refuse ASCII separators such as ',' (RFC 4475 baddn).
                if d and not all(c in _NAME_CHARS or ord(c) > 127 for c in d):
                    raise MalformedMessage(f"display name must be tokens or quoted in {text!r}")
                display = d or None
            gt = s.find(">", lt)
            if gt < 0:
                raise MalformedMessage(f"missing '>' in {text!r}")
            inner = s[lt + 1 : gt]
            # LAQUOT/RAQUOT allow no LWS inside the brackets (RFC 4475 badaspec).
            if not inner or inner[0] in " \t" or inner[-1] in " \t":
                raise MalformedMessage(f"whitespace inside <> in {text!r}")
            uri = SipUri.parse(inner)
            rest = s[gt + 1 :].strip()
            if rest and not rest.startswith(";"):
                raise MalformedMessage(f"garbage after '>' in {text!r}")
            return cls(uri=uri, display=display, params=parse_params(rest[1:]))
        # addr-spec: params after the URI belong to the header (RFC 3261 §20.10).
        if ">" in s:
            raise MalformedMessage(f"'>' without '<' in {text!r}")
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
            plain = disp.strip() == disp and _NAME_CHARS.issuperset(disp)
            s = (disp if plain else quote(disp)) + " " + s
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
        if _HOSTPORT_RE.fullmatch(host) is None:
            raise MalformedMessage(f"bad host {host!r} in Via {text.strip()!r}")
        port = _port(port_s, text) if port_s else None
        return cls(transport.upper(), host.lower(), port, parse_params(rest[1:]) if rest else {})

    def __str__(self) -> str:
        hp = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"SIP/2.0/{self.transport} {hp}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        """The branch parameter."""
        return self.params.get("branch")
