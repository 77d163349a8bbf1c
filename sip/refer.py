"""REFER (RFC 3515) for blind and attended transfer, with Referred-By (RFC 3892),
Refer-Sub (RFC 4488) and Replaces carried in the Refer-To URI (RFC 3891 §6.1).

Theory of operation
-------------------
A transferor sends REFER inside its dialog with us. As the *referee*, the B2BUA:

1. parses it with :meth:`ReferRequest.from_request`: exactly one ``Refer-To``
   (RFC 3515 §2.4.1, else 400), the URI's embedded headers percent-decoded, a
   ``Replaces`` among them parsed (attended transfer, RFC 3891 §6.1); ``Referred-By``
   (RFC 3892) and ``Refer-Sub: false`` (RFC 4488) when present. Errors are
   :class:`MalformedRefer` (400) or :class:`ReferRejected` (403: a target we never act
   on, such as an ``http:`` URI or ``method=BYE``);
2. answers 202 with :meth:`ReferRequest.accept_headers` (``Refer-Sub: false`` echoed
   when the transferor turned the implicit subscription off);
3. unless ``subscribe`` is False, reports progress in the transferor's dialog with
   :func:`build_refer_notify`: ``SIP/2.0 100 Trying`` at once (RFC 3515 §2.4.4), then
   the final status of the triggered INVITE, ``Subscription-State: terminated;
   reason=noresource`` (§2.4.7);
4. sends the triggered INVITE to :attr:`ReferTo.uri` with :meth:`ReferRequest.invite_headers`
   (Referred-By copied, RFC 3892 §3; Replaces and other harmless embedded headers,
   RFC 3261 §19.1.5).

As the *referrer* (we transfer a peer elsewhere) it uses :func:`build_refer` and reads
the peer's NOTIFYs with :meth:`ReferProgress.from_notify`.

Everything here is pure: dialogs build the in-dialog requests, nothing is sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Self
from urllib.parse import quote, unquote

from .dialog import SipDialog
from .exceptions import LocalProtocolError, MalformedMessage, RemoteProtocolError
from .message import CANONICAL, REASONS, SIP_VERSION, SipRequest, canonical_name
from .replaces import MalformedReplaces, Replaces
from .uri import NameAddr, SipUri, is_digits, split_quoted

__all__ = [
    "DEFAULT_REFER_EXPIRES",
    "SIPFRAG_CONTENT_TYPE",
    "BadEvent",
    "MalformedRefer",
    "ReferProgress",
    "ReferRejected",
    "ReferRequest",
    "ReferTo",
    "ReferredBy",
    "build_refer",
    "build_refer_notify",
    "build_referred_by",
    "parse_sipfrag_status",
]

SIPFRAG_CONTENT_TYPE = "message/sipfrag;version=2.0"
"""RFC 3515 §2.4.5: the NOTIFY body is a message/sipfrag (RFC 3420)."""
DEFAULT_REFER_EXPIRES = 180
"""``expires`` of the implicit subscription in ``Subscription-State: active`` (s).
Long enough for a target that rings for the whole queue ring timeout."""
REFER_SCHEMES = frozenset(("sip", "sips", "tel"))
"""Refer-To schemes we act on; anything else is refused with 403."""

# RFC 3261 §19.1.5: headers of a URI that must not be copied into the request it
# triggers (dangerous, or falsely advertising our location or capabilities), plus
# what the B2BUA builds itself (To from the URI, framing, hop count).
_NOT_COPIED = frozenset(
    (
        "from", "call-id", "cseq", "via", "record-route", "route", "accept",
        "accept-encoding", "accept-language", "allow", "contact", "organization",
        "supported", "user-agent", "to", "max-forwards", "content-length",
        "content-type", "content-encoding", "body", "refer-to", "referred-by", "replaces",
    )
)  # fmt: skip
# RFC 3261 §25.1 hvalue = *( hnv-unreserved / unreserved / escaped ): what may stay bare.
_HVALUE_SAFE = "[]/?:+$-_.!~*'()"
_HNAME_SAFE = "[]/?:+$-_.!~*'()"
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


class MalformedRefer(RemoteProtocolError):
    """A REFER or its Refer-To/Referred-By/Refer-Sub header is malformed (400)."""

    status_hint = 400


class ReferRejected(RemoteProtocolError):
    """A well-formed REFER whose target we do not act on (403, RFC 3515 §2.4.2)."""

    status_hint = 403


class BadEvent(RemoteProtocolError):
    """A NOTIFY whose Event package is not ``refer`` (RFC 6665 §8.3.1: 489)."""

    status_hint = 489


# -- Refer-To ------------------------------------------------------------------------


def _decode_uri_headers(text: str, whole: str) -> list[tuple[str, str]]:
    """``hname=hvalue&...`` of a URI, percent-decoded (RFC 3261 §19.1.1)."""
    if _BAD_ESCAPE_RE.search(text):
        raise MalformedRefer(f"bad %-escape in Refer-To {whole[:120]!r}")
    out: list[tuple[str, str]] = []
    for item in text.split("&"):
        if not item:
            continue
        name, eq, value = item.partition("=")
        try:
            name = unquote(name, errors="strict").strip()
            decoded = unquote(value, errors="strict")
        except UnicodeDecodeError:
            raise MalformedRefer(f"non-UTF-8 %-escape in Refer-To {whole[:100]!r}") from None
        if not eq or not name:
            raise MalformedRefer(f"bad header {item[:60]!r} in Refer-To {whole[:120]!r}")
        key = canonical_name(name)
        out.append((CANONICAL.get(key, name), decoded))
    return out


def _escape_header_at(value: str) -> str:
    """Escape a bare '@' in the ``?headers`` part of a bracketed URI.

    A Call-ID such as ``abc@10.0.0.5`` left unescaped in an embedded Replaces would
    otherwise end the userinfo of a URI without a user part (RFC 3261 §25.1: the first
    '@' does).
    """
    lt = value.rfind("<")  # a display name may hold '<' inside quotes, a URI may not
    gt = value.find(">", lt + 1)
    q = value.find("?", lt + 1, gt) if lt >= 0 and gt > lt else -1
    if q < 0 or "@" not in value[q:gt]:
        return value
    return value[:q] + value[q:gt].replace("@", "%40") + value[gt:]


def _encode_uri_headers(headers: Iterable[tuple[str, str]]) -> str:
    return "&".join(
        f"{quote(name, safe=_HNAME_SAFE)}={quote(value, safe=_HVALUE_SAFE)}"
        for name, value in headers
    )


@dataclass(frozen=True, slots=True)
class ReferTo:
    """A parsed Refer-To value (RFC 3515 §2.1)."""

    uri: SipUri
    """The target: the Request-URI of the triggered INVITE (no ``?headers``, no
    ``method`` parameter)."""
    display: str | None = None
    """Display name, if any."""
    headers: tuple[tuple[str, str], ...] = ()
    """Headers embedded in the URI, percent-decoded, canonical names, in order."""
    replaces: Replaces | None = None
    """The embedded Replaces (attended transfer), parsed."""
    params: tuple[tuple[str, str | None], ...] = ()
    """Header parameters after the name-addr (generic-params)."""

    @classmethod
    def parse(cls, value: str) -> Self:
        """Parse one Refer-To value.

        :param value: e.g. ``<sip:bob@b.example?Replaces=a%40b%3Bto-tag%3D1%3Bfrom-tag%3D2>``.
        :raises MalformedRefer: unparseable, more than one value, bad escapes, or a
            malformed embedded Replaces (400).
        :raises ReferRejected: a scheme other than sip/sips/tel, or a ``method``
            parameter other than INVITE (403).
        """
        try:
            parts = [p for p in split_quoted(value, ",") if p.strip()]
            if len(parts) != 1:
                raise MalformedRefer(f"Refer-To must hold one URI: {value[:120]!r}")
            na = NameAddr.parse(_escape_header_at(parts[0]))
        except MalformedMessage as exc:
            raise MalformedRefer(f"bad Refer-To: {exc}") from None
        if na.wildcard:
            raise MalformedRefer(f"bad Refer-To {value[:120]!r}")
        uri = na.uri
        if uri.scheme not in REFER_SCHEMES:
            raise ReferRejected(f"Refer-To scheme {uri.scheme!r} is not sip, sips or tel")
        method = uri.params.get("method")
        if method is not None and method.upper() != "INVITE":
            # RFC 3515 §2.1: method= says what to send; we only place calls.
            raise ReferRejected(f"Refer-To asks for {method}, only INVITE is supported")
        headers: list[tuple[str, str]] = []
        if uri.headers is not None:
            headers = _decode_uri_headers(uri.headers, value)
        if uri.headers is not None or method is not None:
            # What is left is the Request-URI of the triggered INVITE, where neither
            # headers nor method= may appear (RFC 3261 §19.1.1 table 1).
            uri = uri.copy()
            uri.headers = None
            uri.params.pop("method", None)
        replaces: Replaces | None = None
        found = [v for n, v in headers if n == "Replaces"]
        if len(found) > 1:
            raise MalformedRefer(f"more than one Replaces in Refer-To {value[:120]!r}")
        if found:
            try:
                replaces = Replaces.parse(found[0])
            except MalformedReplaces as exc:
                raise MalformedRefer(f"bad Replaces in Refer-To: {exc}") from None
        return cls(uri, na.display, tuple(headers), replaces, tuple(na.params.items()))

    def __str__(self) -> str:
        uri = self.uri.copy()
        headers = [(n, v) for n, v in self.headers if n != "Replaces"]
        if self.replaces is not None:
            headers.append(("Replaces", str(self.replaces)))
        if headers:
            uri.headers = _encode_uri_headers(headers)
        return str(NameAddr(uri, self.display, dict(self.params)))

    @classmethod
    def build(
        cls,
        target: SipUri | str,
        *,
        replaces: Replaces | None = None,
        display: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Self:
        """A Refer-To for a REFER we send.

        :param target: where the peer should call (any ``?headers`` are replaced).
        :param replaces: for attended transfer: the dialog the peer's INVITE replaces,
            written from the target's view (:meth:`Replaces.for_dialog` of our leg to it).
        :param display: display name.
        :param headers: other headers to embed, unescaped.
        """
        uri = SipUri.parse(target) if isinstance(target, str) else target.copy()
        uri.headers = None
        return cls(uri, display, tuple(headers), replaces, ())

    @property
    def is_attended(self) -> bool:
        """True for an attended transfer (a Replaces is embedded)."""
        return self.replaces is not None


# -- Referred-By ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReferredBy:
    """A parsed Referred-By value (RFC 3892 §3)."""

    address: NameAddr
    """The referrer's name-addr, with the header params (``cid``)."""
    text: str
    """The value as received: copied verbatim into the triggered INVITE, as a signed
    Referred-By token (RFC 3892 §2) covers it."""

    @classmethod
    def parse(cls, value: str) -> Self:
        """Parse one Referred-By value.

        :param value: e.g. ``"Agent 1001" <sip:1001@pbx.example>;cid="2UWQFN309shb3@a.example"``.
        :raises MalformedRefer: not a name-addr/addr-spec (400).
        """
        try:
            parts = [p for p in split_quoted(value, ",") if p.strip()]
            if len(parts) != 1:
                raise MalformedRefer(f"Referred-By must hold one URI: {value[:120]!r}")
            na = NameAddr.parse(parts[0])
        except MalformedMessage as exc:
            raise MalformedRefer(f"bad Referred-By: {exc}") from None
        if na.wildcard:
            raise MalformedRefer(f"bad Referred-By {value[:120]!r}")
        return cls(na, value.strip())

    @property
    def uri(self) -> SipUri:
        """The referrer's URI."""
        return self.address.uri

    @property
    def cid(self) -> str | None:
        """The ``cid`` parameter (Content-ID of a signed Referred-By token), unquoted."""
        cid = self.address.params.get("cid")
        if cid is not None and len(cid) >= 2 and cid[0] == '"' and cid[-1] == '"':
            return cid[1:-1]
        return cid

    def __str__(self) -> str:
        return self.text


def build_referred_by(
    referrer: NameAddr | SipUri | str, *, display: str | None = None, cid: str | None = None
) -> str:
    """A Referred-By value (RFC 3892 §3) for a REFER or a triggered INVITE.

    :param referrer: the referrer's URI or name-addr, or its text (header params kept).
    :param display: display name, overriding the name-addr's.
    :param cid: Content-ID of a Referred-By token in the body, if one is attached.
    """
    if isinstance(referrer, str):
        referrer = NameAddr.parse(referrer)
    if isinstance(referrer, NameAddr):
        na = NameAddr(referrer.uri.copy(), referrer.display, dict(referrer.params))
    else:
        na = NameAddr(referrer.copy())
    if display is not None:
        na.display = display
    if cid is not None:
        na.params["cid"] = f'"{cid}"'
    return str(na)


# -- the REFER request ---------------------------------------------------------------


def _parse_refer_sub(values: list[str]) -> bool:
    """RFC 4488 §4: ``Refer-Sub: true|false *(;params)``; absent means true."""
    if not values:
        return True
    if len(values) > 1:
        raise MalformedRefer("more than one Refer-Sub header")
    word = values[0].split(";", 1)[0].strip().lower()
    if word not in ("true", "false"):
        raise MalformedRefer(f"Refer-Sub must be true or false, got {values[0][:40]!r}")
    return word == "true"


@dataclass(frozen=True, slots=True)
class ReferRequest:
    """What a received REFER asks for."""

    refer_to: ReferTo
    """The target, with the embedded Replaces for an attended transfer."""
    referred_by: ReferredBy | None
    """Who referred (RFC 3892), if the REFER says."""
    subscribe: bool
    """False when ``Refer-Sub: false`` (RFC 4488): no NOTIFYs are sent."""
    event_id: str
    """The CSeq number of the REFER: the ``id`` of ``Event: refer`` (RFC 3515 §2.4.6)."""

    @classmethod
    def from_request(cls, request: SipRequest) -> Self:
        """Parse a received REFER.

        :param request: the REFER.
        :raises MalformedRefer: no or several Refer-To, bad Referred-By or Refer-Sub
            (400; RFC 3515 §2.4.1: exactly one Refer-To).
        :raises ReferRejected: a target we do not act on (403).
        """
        if request.method != "REFER":
            raise MalformedRefer(f"{request.method} is not a REFER")
        values = request.get_all("refer-to")
        if len(values) != 1:
            raise MalformedRefer(f"a REFER needs exactly one Refer-To, got {len(values)}")
        refer_to = ReferTo.parse(values[0])
        by_values = request.get_all("referred-by")
        if len(by_values) > 1:
            raise MalformedRefer("more than one Referred-By header")
        referred_by = ReferredBy.parse(by_values[0]) if by_values else None
        subscribe = _parse_refer_sub(request.get_all("refer-sub"))
        try:
            seq = request.cseq[0]
        except MalformedMessage as exc:
            raise MalformedRefer(str(exc)) from None
        return cls(refer_to, referred_by, subscribe, str(seq))

    def accept_headers(self) -> list[tuple[str, str]]:
        """Headers for our 202 Accepted (RFC 4488 §4: echo ``Refer-Sub: false``)."""
        return [] if self.subscribe else [("Refer-Sub", "false")]

    def invite_headers(self, *, require_replaces: bool = True) -> list[tuple[str, str]]:
        """Headers for the INVITE the REFER triggers, beyond what the B2BUA builds.

        Referred-By is copied (RFC 3892 §3), then the embedded Replaces (with
        ``Require: replaces`` so that a target that ignores Replaces refuses with 420
        instead of ringing as a second call), then the other embedded headers except
        those RFC 3261 §19.1.5 says not to honour.

        :param require_replaces: add ``Require: replaces`` when a Replaces is sent.
        """
        out: list[tuple[str, str]] = []
        if self.referred_by is not None:
            out.append(("Referred-By", str(self.referred_by)))
        if self.refer_to.replaces is not None:
            out.append(("Replaces", str(self.refer_to.replaces)))
            if require_replaces:
                out.append(("Require", "replaces"))
        for name, value in self.refer_to.headers:
            if canonical_name(name) not in _NOT_COPIED:
                out.append((name, value))
        return out


def build_refer(
    dialog: SipDialog,
    refer_to: ReferTo | SipUri | str,
    *,
    referred_by: str | None = None,
    subscribe: bool = True,
) -> SipRequest:
    """An in-dialog REFER asking ``dialog``'s peer to call ``refer_to``.

    :param dialog: our dialog with the transferee.
    :param refer_to: the target; a :class:`ReferTo` (e.g. from :meth:`ReferTo.build`
        with a Replaces for attended transfer) or a bare URI for a blind transfer.
    :param referred_by: a Referred-By value (:func:`build_referred_by`), if any.
    :param subscribe: False sends ``Refer-Sub: false`` (RFC 4488): no NOTIFYs wanted.
    """
    target = refer_to if isinstance(refer_to, ReferTo) else ReferTo.build(refer_to)
    headers = [("Refer-To", str(target))]
    if referred_by is not None:
        headers.append(("Referred-By", referred_by))
    if not subscribe:
        headers.append(("Refer-Sub", "false"))
    return dialog.create_request("REFER", headers=headers)


# -- NOTIFY --------------------------------------------------------------------------


def build_refer_notify(
    dialog: SipDialog,
    event_id: str | int,
    status: int,
    reason: str | None = None,
    *,
    expires: int = DEFAULT_REFER_EXPIRES,
    terminated: bool | None = None,
) -> SipRequest:
    """A NOTIFY reporting the progress of a REFER in the referrer's dialog.

    RFC 3515 §2.4.4-2.4.7: ``Event: refer;id=<REFER CSeq>``, a message/sipfrag body
    holding the status line of the triggered request (``SIP/2.0 100 Trying`` first),
    ``Subscription-State: active;expires=N`` while provisional and
    ``terminated;reason=noresource`` once final.

    :param dialog: the dialog the REFER came in.
    :param event_id: :attr:`ReferRequest.event_id`.
    :param status: status of the triggered INVITE (100 for the first NOTIFY).
    :param reason: reason phrase, the standard one if None.
    :param expires: seconds left of the implicit subscription while active.
    :param terminated: end the subscription; default: when ``status >= 200``.
    :raises LocalProtocolError: ``status`` is not 100-699.
    """
    if not 100 <= status <= 699:
        raise LocalProtocolError(f"NOTIFY status must be 100-699, got {status}")
    if reason is None:
        reason = REASONS.get(status, "Unknown")
    if terminated is None:
        terminated = status >= 200
    state = "terminated;reason=noresource" if terminated else f"active;expires={expires}"
    headers = [
        ("Event", f"refer;id={event_id}"),
        ("Subscription-State", state),
        ("Content-Type", SIPFRAG_CONTENT_TYPE),
    ]
    body = f"{SIP_VERSION} {status} {reason}\r\n".encode()
    return dialog.create_request("NOTIFY", body=body, headers=headers)


def parse_sipfrag_status(body: bytes) -> tuple[int, str]:
    """The status line of a message/sipfrag body (RFC 3420), e.g. ``(180, "Ringing")``.

    :param body: the NOTIFY body.
    :raises MalformedRefer: the first line is not a SIP status line.
    """
    line = body.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace").strip()
    parts = line.split(" ", 2)
    if (
        len(parts) < 2
        or parts[0].upper() != SIP_VERSION
        or len(parts[1]) != 3
        or not is_digits(parts[1])
        or not 100 <= int(parts[1]) <= 699
    ):
        raise MalformedRefer(f"message/sipfrag without a status line: {line[:80]!r}")
    return int(parts[1]), parts[2] if len(parts) > 2 else ""


@dataclass(frozen=True, slots=True)
class ReferProgress:
    """A NOTIFY about a REFER we sent (RFC 3515 §2.4.5)."""

    event_id: str | None
    """The ``id`` of ``Event: refer`` (the CSeq of our REFER), if given."""
    status: int
    """Status of the request the peer sent to the target."""
    reason: str
    """Its reason phrase."""
    terminated: bool
    """The subscription ended (no more NOTIFYs)."""

    @classmethod
    def from_notify(cls, request: SipRequest) -> Self:
        """Read a received NOTIFY for the refer event.

        :param request: the NOTIFY.
        :raises BadEvent: the Event is not ``refer`` (489).
        :raises MalformedRefer: no Subscription-State or a body without a status line.
        """
        event = request.get("event")
        package, _, ptext = (event or "").partition(";")
        if package.strip().lower() != "refer":
            raise BadEvent(f"NOTIFY for event {package.strip()[:40]!r}, not refer")
        event_id: str | None = None
        for item in ptext.split(";"):
            name, _, val = item.partition("=")
            if name.strip().lower() == "id":
                event_id = val.strip()
        state = request.get("subscription-state")
        if state is None:
            raise MalformedRefer("NOTIFY without Subscription-State")
        terminated = state.split(";", 1)[0].strip().lower() == "terminated"
        status, reason = parse_sipfrag_status(request.body)
        return cls(event_id, status, reason, terminated)

    @property
    def final(self) -> bool:
        """Whether the status is final (the transfer succeeded or failed)."""
        return self.status >= 200

    @property
    def succeeded(self) -> bool:
        """Whether the target answered 2xx."""
        return 200 <= self.status < 300
