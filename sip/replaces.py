"""The SIP ``Replaces`` header (RFC 3891): parse, build and match it against a dialog.

Theory of operation
-------------------
``Replaces: <call-id>;to-tag=<t>;from-tag=<f>[;early-only]`` names a dialog that the
INVITE carrying it should take over (attended transfer, call pickup). The tags are
written *from the point of view of the UA that receives the Replaces*, as if the
INVITE were a request inside the replaced dialog (RFC 3891 §3, §6.1): its ``to-tag``
is the receiver's local tag and its ``from-tag`` is the receiver's remote tag, whoever
sent the dialog's original INVITE. So:

* the UA that *builds* a Replaces for a peer uses ``to-tag`` = its remote tag and
  ``from-tag`` = its local tag (:meth:`Replaces.for_dialog`);
* the UA that *receives* it looks up ``DialogId(call_id, local_tag=to_tag,
  remote_tag=from_tag)`` (:attr:`Replaces.dialog_id`) and lets
  :func:`check_replaces` / :func:`match_replaces` say what to answer (RFC 3891 §3):

  ========================================  ==========================================
  matched dialog                            answer to the new INVITE
  ========================================  ==========================================
  none                                      481 Call/Transaction Does Not Exist
  terminated                                603 Decline
  confirmed, ``early-only`` present         486 Busy Here
  confirmed                                 accept; end the old dialog with BYE
  early, we sent its INVITE (role "uac")    accept; end the old dialog with CANCEL
  early, we received its INVITE ("uas")     481, and the old dialog is left alone
  ========================================  ==========================================

Authorisation (is this peer allowed to replace that call? answer 403) stays with the
caller. Parsing is strict: a Replaces without exactly one ``to-tag`` and one
``from-tag``, or more than one Replaces, or a Replaces on a method other than INVITE is
answered 400 (:class:`MalformedReplaces`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Self

from .dialog import DialogId, DialogState, SipDialog
from .exceptions import MalformedMessage, RemoteProtocolError
from .message import SipRequest
from .uri import split_quoted

__all__ = [
    "MalformedReplaces",
    "Replaces",
    "ReplacesMatch",
    "check_replaces",
    "match_replaces",
    "parse_replaces_header",
]

# RFC 3261 §25.1: callid = word ["@" word]; word excludes SP, ';' and ','.
_WORD_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~()<>:\\\"/[]?{}"
)
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")


class MalformedReplaces(RemoteProtocolError):
    """A Replaces header violates RFC 3891 §6.1, or is used where §3 forbids it (400)."""

    status_hint = 400


def _is_callid(text: str) -> bool:
    word, at, rest = text.partition("@")
    if not word or not _WORD_CHARS.issuperset(word):
        return False
    return not at or (bool(rest) and _WORD_CHARS.issuperset(rest))


@dataclass(frozen=True, slots=True)
class Replaces:
    """One Replaces value (RFC 3891 §6.1), tags as the receiving UA sees them."""

    call_id: str
    """Call-ID of the dialog to replace (compared octet by octet, RFC 3261 §20.8)."""
    to_tag: str
    """The receiver's local tag in that dialog."""
    from_tag: str
    """The receiver's remote tag in that dialog."""
    early_only: bool = False
    """Only an early dialog may be replaced: a confirmed one gets 486 (RFC 3891 §3)."""

    @classmethod
    def parse(cls, value: str) -> Self:
        """Parse a Replaces header value.

        :param value: e.g. ``"98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff"``.
        :raises MalformedReplaces: no Call-ID, a missing or repeated tag, bad params.
        """
        text = value.strip()
        if "," in text:
            raise MalformedReplaces(f"more than one Replaces value in {text[:80]!r}")
        call_id, _, ptext = text.partition(";")
        call_id = call_id.strip()
        if not _is_callid(call_id):
            raise MalformedReplaces(f"bad Call-ID in Replaces {text[:80]!r}")
        to_tag: str | None = None
        from_tag: str | None = None
        early_only = False
        for item in ptext.split(";") if ptext else []:
            name, eq, val = item.partition("=")
            name = name.strip().lower()
            val = val.strip()
            if not name or not _TOKEN_CHARS.issuperset(name):
                raise MalformedReplaces(f"bad parameter {item.strip()!r} in Replaces {text[:80]!r}")
            if name in ("to-tag", "from-tag"):
                # RFC 3891 §6.1: exactly one of each, a token.
                if not eq or not val or not _TOKEN_CHARS.issuperset(val):
                    raise MalformedReplaces(f"bad {name} in Replaces {text[:80]!r}")
                if (to_tag if name == "to-tag" else from_tag) is not None:
                    raise MalformedReplaces(f"more than one {name} in Replaces {text[:80]!r}")
                if name == "to-tag":
                    to_tag = val
                else:
                    from_tag = val
            elif name == "early-only":
                early_only = True
            # Other generic-params are allowed by the grammar and ignored.
        if to_tag is None or from_tag is None:
            missing = "to-tag" if to_tag is None else "from-tag"
            raise MalformedReplaces(f"Replaces without {missing}: {text[:80]!r}")
        return cls(call_id, to_tag, from_tag, early_only)

    def __str__(self) -> str:
        flag = ";early-only" if self.early_only else ""
        return f"{self.call_id};to-tag={self.to_tag};from-tag={self.from_tag}{flag}"

    @classmethod
    def for_dialog(cls, dialog: SipDialog, *, early_only: bool = False) -> Self:
        """The Replaces to send to ``dialog``'s peer so that it replaces ``dialog``.

        RFC 3891 §3: the peer reads to-tag as its local tag, so to-tag is our remote
        tag and from-tag our local tag, whichever side sent the dialog's INVITE.

        :param dialog: our side of the dialog to replace.
        :param early_only: ask the peer to refuse (486) if the dialog is confirmed.
        """
        return cls(dialog.call_id, dialog.remote_tag, dialog.local_tag, early_only)

    @property
    def dialog_id(self) -> DialogId:
        """The ID of the replaced dialog as the receiving UA files it (RFC 3891 §3)."""
        return DialogId(self.call_id, self.to_tag, self.from_tag)

    def matches(self, dialog: SipDialog) -> bool:
        """Whether this Replaces names ``dialog`` (our side of it; terminated or not).

        :param dialog: a dialog of the UA that received the Replaces.
        """
        return dialog.id == self.dialog_id


def parse_replaces_header(request: SipRequest) -> Replaces | None:
    """The Replaces of a received request, or None if it has none.

    :param request: the request.
    :raises MalformedReplaces: more than one Replaces, a Replaces in a request other
        than INVITE, or a malformed value (RFC 3891 §3: 400).
    """
    values = request.get_all("replaces")
    if not values:
        return None
    if request.method != "INVITE":
        raise MalformedReplaces(f"Replaces in a {request.method} request")
    try:
        parts = [p for v in values for p in split_quoted(v, ",")]
    except MalformedMessage as exc:
        raise MalformedReplaces(str(exc)) from None
    if len(parts) != 1:
        raise MalformedReplaces(f"{len(parts)} Replaces values in one INVITE")
    return Replaces.parse(parts[0])


@dataclass(frozen=True, slots=True)
class ReplacesMatch:
    """What to do with an INVITE carrying Replaces (RFC 3891 §3)."""

    dialog: SipDialog | None
    """The dialog the Replaces named, if any (also set when refused with 486/603/481)."""
    status: int | None
    """None: accept the INVITE (2xx) and end ``dialog`` with ``end_with``; otherwise
    answer the INVITE with this status and leave ``dialog`` alone."""
    end_with: Literal["BYE", "CANCEL"] | None
    """How to end the replaced dialog once the new INVITE is accepted."""
    reason: str
    """Why, in words (for the log)."""

    @property
    def accepted(self) -> bool:
        """Whether the new INVITE may be accepted."""
        return self.status is None


def check_replaces(replaces: Replaces, dialog: SipDialog | None) -> ReplacesMatch:
    """Decide on a Replaces once the caller has looked up its dialog.

    :param replaces: the parsed header.
    :param dialog: the dialog filed under ``replaces.dialog_id`` (terminated ones
        included, for the 603), or None.
    """
    if dialog is None or not replaces.matches(dialog):
        return ReplacesMatch(None, 481, None, f"no dialog {replaces.dialog_id}")
    state = dialog.state
    if state is DialogState.TERMINATED:
        # RFC 3891 §3: a dialog that has already terminated: SHOULD decline with 603.
        return ReplacesMatch(dialog, 603, None, "the replaced dialog has terminated")
    if state is DialogState.CONFIRMED:
        if replaces.early_only:
            # RFC 3891 §3 and §7.1: early-only on a confirmed dialog: 486 Busy Here.
            return ReplacesMatch(dialog, 486, None, "early-only, but the dialog is confirmed")
        return ReplacesMatch(dialog, None, "BYE", "confirmed dialog: accept, then BYE it")
    if dialog.role == "uac":
        # RFC 3891 §3: an early dialog this UA initiated: accept, then CANCEL it.
        return ReplacesMatch(dialog, None, "CANCEL", "our early dialog: accept, then CANCEL it")
    # RFC 3891 §3: an early dialog not initiated by this UA: 481, leave it alone.
    return ReplacesMatch(dialog, 481, None, "an early dialog we did not initiate")


def match_replaces(replaces: Replaces, dialogs: Iterable[SipDialog]) -> ReplacesMatch:
    """Find and judge the dialog a Replaces names among ``dialogs``.

    If several match (a forked early dialog), a live one wins over a terminated one:
    RFC 3891 §3 says to act on only one.

    :param replaces: the parsed header.
    :param dialogs: candidate dialogs of this UA, e.g. a :class:`~sip.dialog.DialogSet`
        (before ``prune()``, so that a terminated dialog still gets 603).
    """
    found: SipDialog | None = None
    for dialog in dialogs:
        if replaces.matches(dialog):
            if dialog.state is not DialogState.TERMINATED:
                found = dialog
                break
            found = found or dialog
    return check_replaces(replaces, found)
