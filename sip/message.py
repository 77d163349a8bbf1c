"""SIP messages: parse bytes into requests/responses and serialise them back (RFC 3261 §7, §25).

The parser is the hottest Python in the control plane, so it does the least work that
still lets the transaction layer route and reject, and defers the rest to cached
properties. Where each RFC 3261/RFC 4475 rule is enforced:

Eagerly, in :meth:`SipMessage.parse` (a message that passes is framed and routable):

* size cap (``MAX_MESSAGE_SIZE`` → :class:`MessageTooLarge`, 513);
* start line: exactly ``METHOD SP Request-URI SP SIP/2.0`` (one SP each, no LWS in or
  ``<>`` around the URI, nothing after the version: RFC 4475 lwsstart, lwsruri,
  ltgtruri, trws), or ``SIP/2.0 SP 3DIGIT SP reason`` with 100-699 (bigcode); another
  SIP version → status_hint 505 (badvers); whitespace before the start line;
* header block: CRLF line ends (a bare CR or LF inside is an error, it is how requests
  get smuggled), token header names, folding (unfolded to one SP), compact forms;
* Content-Length: ASCII digits only, never negative (ncl), not larger than the body
  (clerr), all copies equal (mcl01), mandatory with ``stream=True`` (RFC 3261 §18.3);
  octets past it in a datagram are dropped (dblreq);
* mandatory headers present and single (insuf, multi01), CSeq ``1*DIGIT SP method``
  below 2**31 (scalar02/scalarlg) whose method matches the request's (mismatch01/02),
  non-empty Call-ID without whitespace, Max-Forwards 0-255 (scalar02).

Lazily, on first access, cached (raising :class:`MalformedMessage` then):

* ``.vias`` (empty params: badinv01), ``.from_``/``.to`` (quotbal, badaspec, baddn),
  ``.contacts`` (regbadct), ``.uri`` (URI headers in a Request-URI: escruri),
  ``.expires`` (0 to 2**32-1), ``.date`` (RFC 1123 in GMT: baddate).

The transaction layer reads ``.vias``/``.cseq``/``.from_``/``.to`` on every request, so
those checks run for every message that gets past the transport; :meth:`validate` runs
every lazy check at once. Semantic rejections (unknown URI scheme → 416, Require → 420,
Max-Forwards 0 → 483, unknown Content-Type → 415) belong to the TU, which finds what
it needs here.

Headers are kept in a dict keyed by the lower-case canonical name, each holding the
list of raw values in order of appearance (one entry per header line). Serialisation
writes them grouped by name in first-seen order: a normalised form (compact names
expanded, folding removed) that is equivalent per RFC 3261 §7.3.1.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Self

from .exceptions import MalformedMessage, MessageTooLarge
from .uri import NameAddr, SipUri, Via, is_digits, split_quoted

MAX_MESSAGE_SIZE = 65535
SIP_VERSION = "SIP/2.0"

# fmt: off
# RFC 3261 §7.3.3 and later RFCs' compact forms.
COMPACT = {
    "i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
    "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
    "v": "via", "o": "event", "r": "refer-to", "b": "referred-by", "x": "session-expires",
    "u": "allow-events", "a": "accept-contact", "j": "reject-contact",
    "d": "request-disposition", "y": "identity",
}
CANONICAL = {
    n.lower(): n
    for n in (
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Route",
        "Record-Route", "Content-Length", "Content-Type", "Content-Encoding", "Expires",
        "Min-Expires", "Allow", "Supported", "Require", "Proxy-Require", "Unsupported",
        "User-Agent", "Server", "Subject", "Authorization", "Proxy-Authorization",
        "WWW-Authenticate", "Proxy-Authenticate", "Authentication-Info", "Event",
        "Refer-To", "Referred-By", "Replaces", "Session-Expires", "Min-SE", "Allow-Events",
        "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Call-Info",
        "Date", "Error-Info", "In-Reply-To", "MIME-Version", "Organization", "Priority",
        "Reply-To", "Retry-After", "Timestamp", "Warning", "RSeq", "RAck", "Reason",
        "Subscription-State", "P-Asserted-Identity", "Privacy", "Path", "Accept-Contact",
        "Reject-Contact", "Request-Disposition", "Identity", "Content-Disposition",
        "Content-Language",
    )
}
# Headers whose values are comma-separated lists (RFC 3261 §7.3.1); never split the others.
LIST_HEADERS = frozenset(
    (
        "via", "contact", "route", "record-route", "allow", "supported", "require",
        "proxy-require", "unsupported", "accept", "accept-encoding", "accept-language",
        "allow-events", "path", "content-encoding", "p-asserted-identity",
    )
)
MANDATORY_REQUEST = ("to", "from", "cseq", "call-id", "via")
MANDATORY_RESPONSE = ("to", "from", "cseq", "call-id", "via")

REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Moved Temporarily", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    410: "Gone", 413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline",
    604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}
# fmt: on

_TOKEN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:")
# RFC 3261 §25.1 rfc1123-date, which must be in GMT.
_DATE_RE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d{2}:\d{2}:\d{2} GMT"
)
MAX_EXPIRES = 2**32 - 1
# Raw header name (as written on the wire) -> (key, name to write), for names already
# validated; bounded so that garbage names cannot grow it.
_NAME_KEYS: dict[str, tuple[str, str]] = {}
_NAME_KEYS_MAX = 2048


def canonical_name(name: str) -> str:
    """The lower-case canonical key of a header name (compact forms expanded)."""
    low = name.lower()
    return COMPACT.get(low, low)


def _header_key(raw_name: str) -> tuple[str, str]:
    """Validate a header name as written on the wire; return (key, name to write), cached."""
    name = raw_name.rstrip(" \t")
    if not name or not _TOKEN.issuperset(name):
        raise MalformedMessage(f"bad header name {name[:40]!r}")
    low = name.lower()
    key = COMPACT.get(low, low) if len(low) == 1 else low
    entry = (key, CANONICAL.get(key) or name)
    if len(_NAME_KEYS) < _NAME_KEYS_MAX:
        _NAME_KEYS[raw_name] = entry
    return entry


class SipMessage:
    """Common part of :class:`SipRequest` and :class:`SipResponse`."""

    __slots__ = ("_headers", "_names", "body", "_cache")

    def __init__(self, headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> None:
        self._headers: dict[str, list[str]] = {}
        self._names: dict[str, str] = {}
        self.body = body
        self._cache: dict[str, object] = {}
        for name, value in headers:
            self.add(name, value)

    # -- parsing -----------------------------------------------------------------
    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, *, stream: bool = False) -> SipMessage:
        """Parse one complete message.

        :param data: the datagram, or exactly one framed message from a stream.
        :param stream: True on TCP/TLS/WS, where Content-Length is mandatory (§18.3).
        :raises MessageTooLarge: above ``MAX_MESSAGE_SIZE`` octets (status_hint 513).
        :raises MalformedMessage: with a text that says what is wrong.
        """
        if type(data) is not bytes:
            data = bytes(data)
        if len(data) > MAX_MESSAGE_SIZE:
            raise MessageTooLarge(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_SIZE}")
        # RFC 3261 §7.5: implementations should ignore CRLFs before the start line.
        if data[:1] in b"\r\n":
            data = data.lstrip(b"\r\n")
            if not data:
                raise MalformedMessage("empty message")
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            head = data[:end].decode("utf-8", "surrogateescape")
            body = data[end + 4 :]
            lines = head.split("\r\n")
            if head.count("\n") != len(lines) - 1 or head.count("\r") != len(lines) - 1:
                raise MalformedMessage("bare CR or LF inside the header block")
        else:
            # Lenient: LF-only line ends, or no empty line at all after the headers.
            end = data.find(b"\n\n")
            if end >= 0:
                head_b = data[:end]
                body = data[end + 2 :]
            elif data.endswith(b"\n"):
                head_b = data.rstrip(b"\r\n")
                body = b""
            else:
                raise MalformedMessage("no empty line after the header block")
            head = head_b.decode("utf-8", "surrogateescape")
            if "\r\n" in head:
                lines = head.split("\r\n")
                if head.count("\n") != len(lines) - 1 or head.count("\r") != len(lines) - 1:
                    raise MalformedMessage("bare CR or LF inside the header block")
            elif "\r" in head:
                raise MalformedMessage("bare CR or LF inside the header block")
            else:
                lines = head.split("\n")
        start = lines[0]
        msg: SipMessage
        if start.startswith("SIP/"):
            msg = SipResponse._from_start_line(start)
        else:
            msg = SipRequest._from_start_line(start)
        msg._parse_headers(lines)
        msg._frame_body(body, stream)
        msg._check_mandatory()
        return msg

    def _parse_headers(self, lines: list[str]) -> None:
        headers = self._headers
        names = self._names
        name_keys = _NAME_KEYS
        prev: list[str] | None = None
        it = iter(lines)
        next(it)
        for line in it:
            raw_name, colon, value = line.partition(":")
            entry = name_keys.get(raw_name) if colon else None
            if entry is None and colon and raw_name and raw_name[0] not in " \t":
                entry = _header_key(raw_name)
            if entry is not None:
                key = entry[0]
                lst = headers.get(key)
                if lst is None:
                    prev = headers[key] = [value.strip()]
                    names[key] = entry[1]
                else:
                    lst.append(value.strip())
                    prev = lst
                continue
            if not line:
                raise MalformedMessage("empty line inside the header block")
            if line[0] == " " or line[0] == "\t":
                # RFC 3261 §7.3.1: a folded continuation line is one SP.
                if prev is None:
                    raise MalformedMessage("continuation line before any header")
                last = prev[-1]
                cont = line.strip()
                prev[-1] = last + " " + cont if last and cont else last or cont
                continue
            raise MalformedMessage(f"header line without a colon: {line[:60]!r}")

    def _frame_body(self, body: bytes, stream: bool) -> None:
        cl = self._headers.get("content-length")
        if cl is None:
            if stream:
                raise MalformedMessage("Content-Length is mandatory on stream transports")
            self.body = body
            return
        text = cl[0]
        if len(cl) > 1 and len(set(cl)) > 1:
            raise MalformedMessage("conflicting Content-Length headers")
        if not is_digits(text) or len(text) > 10:
            raise MalformedMessage(f"bad Content-Length {text[:40]!r}")
        n = int(text)
        if n > len(body):
            raise MalformedMessage(
                f"Content-Length {n} is larger than the {len(body)} bytes of body received"
            )
        # RFC 3261 §18.3: octets past Content-Length in a datagram are discarded.
        self.body = body if n == len(body) else body[:n]

    def _check_mandatory(self) -> None:
        h = self._headers
        try:
            call_id = h["call-id"]
            cseq = h["cseq"]
            from_ = h["from"]
            to = h["to"]
            h["via"]
        except KeyError:
            for key in MANDATORY_REQUEST:
                if key not in h:
                    raise MalformedMessage(f"missing mandatory header {CANONICAL[key]}") from None
            raise
        if len(call_id) != 1 or len(cseq) != 1 or len(from_) != 1 or len(to) != 1:
            for key in ("call-id", "cseq", "from", "to"):
                if len(h[key]) != 1:
                    raise MalformedMessage(f"more than one {CANONICAL[key]} header")
        cid = call_id[0]
        if not cid or " " in cid or "\t" in cid:
            raise MalformedMessage(f"bad Call-ID {cid[:60]!r}")
        method = self.cseq[1]
        if isinstance(self, SipRequest) and method != self.method:
            raise MalformedMessage(
                f"CSeq method {method} does not match the request method {self.method}"
            )
        mf = h.get("max-forwards")
        if mf is not None:
            self.max_forwards  # noqa: B018 - validates (RFC 3261 §20.22: 0-255)

    # -- header access -----------------------------------------------------------
    def get(self, name: str) -> str | None:
        """The first value of a header (one header line), or None.

        :param name: any spelling, compact forms accepted (``"i"`` = Call-ID).
        """
        vals = self._headers.get(canonical_name(name))
        return vals[0] if vals else None

    def get_all(self, name: str) -> list[str]:
        """Every header line's value for ``name``, comma lists split for list headers."""
        key = canonical_name(name)
        vals = self._headers.get(key)
        if not vals:
            return []
        if key not in LIST_HEADERS:
            return list(vals)
        out: list[str] = []
        for v in vals:
            out.extend(p.strip() for p in split_quoted(v, ",") if p.strip())
        return out

    def __contains__(self, name: str) -> bool:
        return canonical_name(name) in self._headers

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with ``value``."""
        key = canonical_name(name)
        self._headers[key] = [value]
        self._names.setdefault(key, CANONICAL.get(key, name))
        self._cache.clear()

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        """Add a header line; ``first=True`` puts it before the existing ones (Via, Route)."""
        key = canonical_name(name)
        lst = self._headers.get(key)
        if lst is None:
            self._headers[key] = [value]
            self._names[key] = CANONICAL.get(key, name)
        elif first:
            lst.insert(0, value)
        else:
            lst.append(value)
        self._cache.clear()

    def remove(self, name: str) -> None:
        """Remove every value of ``name``."""
        key = canonical_name(name)
        self._headers.pop(key, None)
        self._names.pop(key, None)
        self._cache.clear()

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first element of a list header (e.g. top Route)."""
        vals = self.get_all(name)
        if not vals:
            return None
        key = canonical_name(name)
        rest = vals[1:]
        if rest:
            self._headers[key] = rest
        else:
            self._headers.pop(key)
            self._names.pop(key, None)
        self._cache.clear()
        return vals[0]

    def items(self) -> list[tuple[str, str]]:
        """All header lines as (canonical name, value), grouped by name."""
        return [(self._names[k], v) for k, vals in self._headers.items() for v in vals]

    # -- structured, cached ------------------------------------------------------
    @property
    def call_id(self) -> str:
        """Call-ID."""
        return self._headers["call-id"][0]

    @property
    def cseq(self) -> tuple[int, str]:
        """(sequence number, method) of the CSeq header."""
        c = self._cache.get("cseq")
        if c is None:
            text = self._headers["cseq"][0]
            parts = text.split()
            if len(parts) != 2 or not is_digits(parts[0]):
                raise MalformedMessage(f"bad CSeq {text[:60]!r}")
            # RFC 3261 §8.1.1.5: the sequence number must be below 2**31.
            num = int(parts[0]) if len(parts[0]) <= 10 else 2**31
            if num >= 2**31:
                raise MalformedMessage(f"CSeq number {parts[0][:40]} is not below 2**31")
            if not _TOKEN.issuperset(parts[1]):
                raise MalformedMessage(f"bad CSeq method {parts[1]!r}")
            c = (num, parts[1])
            self._cache["cseq"] = c
        return c  # type: ignore[return-value]

    @property
    def vias(self) -> list[Via]:
        """Parsed Via values, topmost first."""
        v = self._cache.get("vias")
        if v is None:
            v = [Via.parse(x) for x in self.get_all("via")]
            if not v:
                raise MalformedMessage("empty Via header")
            self._cache["vias"] = v
        return v  # type: ignore[return-value]

    @property
    def top_via(self) -> Via:
        """The topmost Via."""
        return self.vias[0]

    @property
    def branch(self) -> str | None:
        """The branch of the topmost Via."""
        return self.top_via.branch

    @property
    def from_(self) -> NameAddr:
        """From as a name-addr."""
        return self._name_addr("from")

    @property
    def to(self) -> NameAddr:
        """To as a name-addr."""
        return self._name_addr("to")

    @property
    def from_tag(self) -> str | None:
        """The From tag."""
        return self.from_.tag

    @property
    def to_tag(self) -> str | None:
        """The To tag."""
        return self.to.tag

    def _name_addr(self, key: str) -> NameAddr:
        na = self._cache.get(key)
        if na is None:
            na = NameAddr.parse(self._headers[key][0])
            self._cache[key] = na
        return na  # type: ignore[return-value]

    @property
    def contacts(self) -> list[NameAddr]:
        """Parsed Contact values."""
        return [NameAddr.parse(v) for v in self.get_all("contact")]

    @property
    def content_type(self) -> str | None:
        """The media type of the body, lower-cased, without parameters."""
        ct = self.get("content-type")
        return ct.split(";", 1)[0].strip().lower() if ct else None

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (RFC 3261 §20.22: 0-255), None if absent."""
        vals = self._headers.get("max-forwards")
        if vals is None:
            return None
        if len(vals) != 1:
            raise MalformedMessage("more than one Max-Forwards header")
        text = vals[0]
        if not is_digits(text) or len(text) > 10 or int(text) > 255:
            raise MalformedMessage(f"bad Max-Forwards {text[:40]!r}: not in 0-255")
        return int(text)

    @property
    def expires(self) -> int | None:
        """The Expires header in seconds (RFC 3261 §20.19: 0 to 2**32-1), None if absent."""
        text = self.get("expires")
        if text is None:
            return None
        if not is_digits(text) or len(text) > 10 or int(text) > MAX_EXPIRES:
            raise MalformedMessage(f"bad Expires {text[:40]!r}: not in 0-{MAX_EXPIRES}")
        return int(text)

    @property
    def date(self) -> str | None:
        """The Date header, checked to be an RFC 1123 date in GMT (RFC 3261 §20.17)."""
        text = self.get("date")
        if text is None:
            return None
        if _DATE_RE.fullmatch(text) is None:
            raise MalformedMessage(f"bad Date {text[:60]!r}: must be an RFC 1123 date in GMT")
        return text

    def validate(self) -> None:
        """Run every lazy check now (Via, From, To, Contact, Request-URI, Expires, Date).

        :raises MalformedMessage: at the first violation.
        """
        self.vias  # noqa: B018
        self.from_  # noqa: B018
        self.to  # noqa: B018
        self.contacts  # noqa: B018
        self.expires  # noqa: B018
        self.date  # noqa: B018
        if isinstance(self, SipRequest):
            self.uri  # noqa: B018

    # -- serialisation -----------------------------------------------------------
    def _start_line(self) -> str:
        raise NotImplementedError

    def __bytes__(self) -> bytes:
        parts = [self._start_line()]
        names = self._names
        have_cl = False
        for key, vals in self._headers.items():
            name = names[key]
            if key == "content-length":
                parts.append(f"Content-Length: {len(self.body)}")
                have_cl = True
                continue
            for v in vals:
                parts.append(f"{name}: {v}")
        if not have_cl:
            parts.append(f"Content-Length: {len(self.body)}")
        parts.append("\r\n")
        return "\r\n".join(parts).encode("utf-8", "surrogateescape") + self.body

    def copy(self) -> Self:
        """A deep enough copy: headers and body can be changed independently."""
        new = object.__new__(type(self))
        new._headers = {k: list(v) for k, v in self._headers.items()}
        new._names = dict(self._names)
        new.body = self.body
        new._cache = {}
        new._copy_start(self)
        return new

    def _copy_start(self, other: SipMessage) -> None:
        raise NotImplementedError


class SipRequest(SipMessage):
    """A SIP request."""

    __slots__ = ("method", "uri_text", "_uri")

    def __init__(
        self,
        method: str,
        uri: SipUri | str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri_text = str(uri)
        self._uri: SipUri | None = uri if isinstance(uri, SipUri) else None

    @classmethod
    def _from_start_line(cls, line: str) -> SipRequest:
        parts = line.split(" ")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            if line[:1] in (" ", "\t"):
                raise MalformedMessage("whitespace before the start line")
            raise MalformedMessage(f"bad request line {line[:80]!r}")
        method, uri, version = parts
        if version != SIP_VERSION:
            up = version.upper()
            if up == SIP_VERSION:
                pass
            elif up.startswith("SIP/") and len(up) > 4:
                raise MalformedMessage(f"unsupported SIP version {version!r}", status_hint=505)
            else:
                raise MalformedMessage(f"bad request line {line[:80]!r}")
        if not _TOKEN.issuperset(method):
            raise MalformedMessage(f"bad method {method[:40]!r}")
        if _SCHEME_RE.match(uri) is None or "\t" in uri:
            raise MalformedMessage(f"bad Request-URI {uri[:80]!r}")
        req = object.__new__(cls)
        req._headers = {}
        req._names = {}
        req.body = b""
        req._cache = {}
        req.method = method
        req.uri_text = uri
        req._uri = None
        return req

    @property
    def uri(self) -> SipUri:
        """The Request-URI, parsed on first access.

        Schemes other than sip/sips/tel come back opaque; the TU answers 416 for them.
        """
        if self._uri is None:
            uri = SipUri.parse(self.uri_text)
            # RFC 3261 §19.1.1 table 1: headers are not allowed in a Request-URI
            # (RFC 4475 escruri).
            if uri.headers is not None:
                raise MalformedMessage(f"headers in the Request-URI {self.uri_text[:80]!r}")
            self._uri = uri
        return self._uri

    @uri.setter
    def uri(self, value: SipUri) -> None:
        self._uri = value
        self.uri_text = str(value)

    def _start_line(self) -> str:
        if self._uri is not None:
            self.uri_text = str(self._uri)
        return f"{self.method} {self.uri_text} {SIP_VERSION}"

    def _copy_start(self, other: SipMessage) -> None:
        assert isinstance(other, SipRequest)
        self.method = other.method
        self.uri_text = other.uri_text if other._uri is None else str(other._uri)
        self._uri = None

    def __repr__(self) -> str:
        return f"<SipRequest {self.method} {self.uri_text}>"


class SipResponse(SipMessage):
    """A SIP response."""

    __slots__ = ("status", "reason")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason if reason is not None else REASONS.get(status, "Unknown")

    @classmethod
    def _from_start_line(cls, line: str) -> SipResponse:
        parts = line.split(" ", 2)
        if parts[0] != SIP_VERSION:
            if parts[0].upper() != SIP_VERSION:
                raise MalformedMessage(
                    f"unsupported SIP version {parts[0][:20]!r}", status_hint=505
                )
        code = parts[1] if len(parts) > 1 else ""
        if len(code) != 3 or not is_digits(code) or not 100 <= int(code) <= 699:
            raise MalformedMessage(f"bad status line {line[:80]!r}")
        resp = object.__new__(cls)
        resp._headers = {}
        resp._names = {}
        resp.body = b""
        resp._cache = {}
        resp.status = int(code)
        resp.reason = parts[2] if len(parts) > 2 else ""
        return resp

    def _start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"

    def _copy_start(self, other: SipMessage) -> None:
        assert isinstance(other, SipResponse)
        self.status = other.status
        self.reason = other.reason

    def __repr__(self) -> str:
        return f"<SipResponse {self.status} {self.reason}>"


def parse_message(data: bytes | bytearray | memoryview, *, stream: bool = False) -> SipMessage:
    """Parse one message (alias of :meth:`SipMessage.parse`)."""
    return SipMessage.parse(data, stream=stream)


def make_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> SipResponse:
    """Build a response to ``request`` per RFC 3261 §8.2.6.

    Via, From, Call-ID and CSeq are copied; To is copied and gets ``to_tag`` if it has
    none and the status is above 100; Record-Route is copied for 1xx/2xx (§12.1.1).
    Only the raw header values are used, so this works on a request whose From, To or
    Via failed to parse (to answer it 400).

    :param request: the request being answered.
    :param status: the status code.
    :param reason: the reason phrase, the standard one if None.
    :param to_tag: our tag for the To header.
    :param headers: extra headers, appended.
    :param body: the body; Content-Length is set from it.
    """
    resp = SipResponse(status, reason)
    h = request._headers
    resp._headers["via"] = list(h["via"])
    resp._names["via"] = "Via"
    resp._headers["from"] = list(h["from"])
    resp._names["from"] = "From"
    to = h["to"][0]
    if to_tag is not None and status > 100:
        try:
            has_tag = request.to_tag is not None
        except MalformedMessage:
            # Answering (typically 400) a request whose To cannot be parsed: no dialog
            # can come of it, so echo the To as received instead of raising again.
            has_tag = True
        if not has_tag:
            to = f"{to};tag={to_tag}"
    resp._headers["to"] = [to]
    resp._names["to"] = "To"
    resp._headers["call-id"] = list(h["call-id"])
    resp._names["call-id"] = "Call-ID"
    resp._headers["cseq"] = list(h["cseq"])
    resp._names["cseq"] = "CSeq"
    if status < 300 and "record-route" in h:
        resp._headers["record-route"] = list(h["record-route"])
        resp._names["record-route"] = "Record-Route"
    for name, value in headers:
        resp.add(name, value)
    resp.body = body
    return resp
