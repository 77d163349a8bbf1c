"""SIP dialogs (RFC 3261 §12): one leg of the B2BUA, UAC or UAS side, sans-IO.

Theory of operation
-------------------
A dialog is the state two UAs share after an INVITE got a 2xx (or a 1xx with a To
tag: an early dialog): Call-ID, local and remote tags, local and remote CSeq, the
route set (from Record-Route) and the remote target (from Contact). It is pure data
plus one state machine (Early → Confirmed → Terminated) kept as a literal table like
the transactions; it sends nothing itself. The TU:

* creates it with :meth:`SipDialog.from_uac` (our INVITE + a 1xx-with-tag or 2xx) or
  :meth:`SipDialog.from_uas` (their INVITE + the 1xx/2xx we send), and files it in a
  :class:`DialogSet`;
* builds in-dialog requests with :meth:`SipDialog.create_request` (Request-URI, Route,
  From/To/Call-ID/CSeq per §12.2.1.1; the stack adds the Via) and the ACK for a 2xx
  with :meth:`SipDialog.create_ack`; :meth:`SipDialog.next_hop` says where to send;
* passes incoming in-dialog requests to :meth:`SipDialog.receive_request` (CSeq order,
  target refresh, BYE) and responses to its requests to
  :meth:`SipDialog.receive_response` (early → confirmed, target refresh, 481/408).
  A request whose dialog :meth:`DialogSet.find` cannot find is answered 481 (§12.2.2).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from typing import NamedTuple

from .exceptions import (
    CallTransactionDoesNotExist,
    LocalProtocolError,
    MalformedMessage,
    RequestOutOfOrder,
)
from .message import SipMessage, SipRequest, SipResponse
from .uri import NameAddr, SipUri

logger = logging.getLogger("hotline.sip")

TARGET_REFRESH = frozenset(("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"))
"""Methods whose Contact replaces the remote target (RFC 3261 §12.2, RFC 3311, 6665)."""
CONTACT_METHODS = TARGET_REFRESH
"""Methods that carry our Contact when built by :meth:`SipDialog.create_request`."""


class DialogState(Enum):
    """States of a dialog (RFC 3261 §12)."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogInput(Enum):
    """Inputs of the dialog machine."""

    RECV_1XX = "recv_1xx"
    """A 1xx with a To tag to the dialog-creating INVITE arrived (UAC)."""
    RECV_2XX = "recv_2xx"
    """A 2xx to an INVITE of the dialog arrived (UAC)."""
    RECV_FAILURE = "recv_failure"
    """A 300-699 to the dialog-creating INVITE arrived (UAC)."""
    SEND_1XX = "send_1xx"
    SEND_2XX = "send_2xx"
    SEND_FAILURE = "send_failure"
    SEND_BYE = "send_bye"
    RECV_BYE = "recv_bye"
    RECV_DIALOG_GONE = "recv_dialog_gone"
    """481 or 408 to an in-dialog request (RFC 3261 §12.2.1.2)."""


_D = DialogState
_DI = DialogInput
DIALOG_TRANSITIONS: dict[tuple[DialogState, DialogInput], tuple[Callable[[SipDialog], None] | None, DialogState]] = {  # noqa: E501
    (_D.EARLY, _DI.RECV_1XX): (None, _D.EARLY),
    (_D.EARLY, _DI.SEND_1XX): (None, _D.EARLY),
    # §13.2.2.4 / §13.3.1.4: a 2xx confirms the early dialog.
    (_D.EARLY, _DI.RECV_2XX): (None, _D.CONFIRMED),
    (_D.EARLY, _DI.SEND_2XX): (None, _D.CONFIRMED),
    # §12.3: a non-2xx final to the INVITE ends its early dialogs.
    (_D.EARLY, _DI.RECV_FAILURE): (None, _D.TERMINATED),
    (_D.EARLY, _DI.SEND_FAILURE): (None, _D.TERMINATED),
    # §15: BYE ends early (caller side) or confirmed dialogs.
    (_D.EARLY, _DI.SEND_BYE): (None, _D.TERMINATED),
    (_D.EARLY, _DI.RECV_BYE): (None, _D.TERMINATED),
    (_D.EARLY, _DI.RECV_DIALOG_GONE): (None, _D.TERMINATED),
    # Confirmed: re-INVITE responses (and 2xx retransmissions) keep it confirmed;
    # a non-2xx to a re-INVITE does not end the dialog (§14.1).
    (_D.CONFIRMED, _DI.RECV_1XX): (None, _D.CONFIRMED),
    (_D.CONFIRMED, _DI.RECV_2XX): (None, _D.CONFIRMED),
    (_D.CONFIRMED, _DI.RECV_FAILURE): (None, _D.CONFIRMED),
    (_D.CONFIRMED, _DI.SEND_1XX): (None, _D.CONFIRMED),
    (_D.CONFIRMED, _DI.SEND_2XX): (None, _D.CONFIRMED),
    (_D.CONFIRMED, _DI.SEND_FAILURE): (None, _D.CONFIRMED),
    (_D.CONFIRMED, _DI.SEND_BYE): (None, _D.TERMINATED),
    (_D.CONFIRMED, _DI.RECV_BYE): (None, _D.TERMINATED),
    (_D.CONFIRMED, _DI.RECV_DIALOG_GONE): (None, _D.TERMINATED),
}


class DialogId(NamedTuple):
    """The dialog ID from our point of view (RFC 3261 §12)."""

    call_id: str
    local_tag: str
    remote_tag: str


def _strip_tag(value: str) -> NameAddr:
    na = NameAddr.parse(value)
    na.params.pop("tag", None)
    return na


def _with_tag(na: NameAddr, tag: str | None) -> str:
    out = NameAddr(na.uri, na.display, dict(na.params))
    if tag:
        out.params["tag"] = tag
    return str(out)


class SipDialog:
    """One dialog (RFC 3261 §12). Build it with :meth:`from_uac` or :meth:`from_uas`.

    :param role: ``"uac"`` (we sent the INVITE) or ``"uas"``.
    :param call_id: Call-ID.
    :param local_tag: our tag.
    :param remote_tag: the peer's tag ("" if an RFC 2543 peer sent none).
    :param local_uri: our From/To URI (no tag).
    :param remote_uri: the peer's URI (no tag).
    :param local_seq: last CSeq number we used, None if empty.
    :param remote_seq: last CSeq number the peer used, None if empty.
    :param route_set: Route values in the order we send them.
    :param remote_target: where in-dialog requests go (the peer's Contact).
    :param local_target: our Contact value, put on target refresh requests.
    :param state: Early or Confirmed.
    """

    def __init__(
        self,
        *,
        role: str,
        call_id: str,
        local_tag: str,
        remote_tag: str,
        local_uri: NameAddr,
        remote_uri: NameAddr,
        local_seq: int | None,
        remote_seq: int | None,
        route_set: list[str],
        remote_target: SipUri,
        local_target: str | None,
        state: DialogState,
    ) -> None:
        self.role = role
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.route_set = route_set
        self.remote_target = remote_target
        self.local_target = local_target
        self.state = state
        self._acks: dict[int, SipRequest] = {}

    def __repr__(self) -> str:
        return f"<SipDialog {self.role} {self.call_id} {self.state.name}>"

    # -- construction ----------------------------------------------------------------
    @classmethod
    def from_uac(cls, invite: SipRequest, response: SipResponse) -> SipDialog:
        """The dialog our INVITE created (RFC 3261 §12.1.2).

        :param invite: the INVITE we sent.
        :param response: a 1xx with a To tag (early dialog) or a 2xx (confirmed).
        :raises MalformedMessage: the response cannot create a dialog.
        """
        status = response.status
        tag = response.to_tag
        if status >= 300 or status == 100 or not tag:
            raise MalformedMessage(f"a {status} without a To tag cannot create a dialog")
        contacts = response.contacts
        # §12.1.2: route set = Record-Route of the response, reversed.
        routes = list(reversed(response.get_all("record-route")))
        return cls(
            role="uac",
            call_id=invite.call_id,
            local_tag=invite.from_tag or "",
            remote_tag=tag,
            local_uri=_strip_tag(invite.get("from") or ""),
            remote_uri=_strip_tag(response.get("to") or ""),
            local_seq=invite.cseq[0],
            remote_seq=None,
            route_set=routes,
            remote_target=contacts[0].uri if contacts else invite.uri,
            local_target=invite.get("contact"),
            state=DialogState.EARLY if status < 200 else DialogState.CONFIRMED,
        )

    @classmethod
    def from_uas(cls, invite: SipRequest, response: SipResponse) -> SipDialog:
        """The dialog our response to their INVITE creates (RFC 3261 §12.1.1).

        :param invite: the INVITE we received.
        :param response: the 1xx (with our To tag) or 2xx we are sending.
        :raises LocalProtocolError: the response has no To tag or is not 101-299.
        """
        status = response.status
        tag = response.to_tag
        if status >= 300 or status == 100 or not tag:
            raise LocalProtocolError(f"our {status} without a To tag cannot create a dialog")
        contacts = invite.contacts
        # §12.1.1: route set = Record-Route of the request, in order.
        return cls(
            role="uas",
            call_id=invite.call_id,
            local_tag=tag,
            remote_tag=invite.from_tag or "",
            local_uri=_strip_tag(invite.get("to") or ""),
            remote_uri=_strip_tag(invite.get("from") or ""),
            local_seq=None,
            remote_seq=invite.cseq[0],
            route_set=invite.get_all("record-route"),
            remote_target=contacts[0].uri if contacts else invite.from_.uri,
            local_target=response.get("contact"),
            state=DialogState.EARLY if status < 200 else DialogState.CONFIRMED,
        )

    # -- identity --------------------------------------------------------------------
    @property
    def id(self) -> DialogId:
        """(Call-ID, local tag, remote tag)."""
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    def match(self, msg: SipMessage) -> bool:
        """Whether ``msg`` belongs to this dialog (RFC 3261 §12.2.2, §12.2.1.2).

        :param msg: a request we received (To tag = ours) or a response to one of our
            requests (From tag = ours).
        """
        if msg.call_id != self.call_id:
            return False
        if isinstance(msg, SipRequest):
            return msg.to_tag == self.local_tag and (msg.from_tag or "") == self.remote_tag
        return msg.from_tag == self.local_tag and (msg.to_tag or "") == self.remote_tag

    # -- the machine -----------------------------------------------------------------
    def _fire(self, inp: DialogInput) -> None:
        entry = DIALOG_TRANSITIONS.get((self.state, inp))
        if entry is None:
            old = self.state
            self.state = DialogState.TERMINATED
            raise LocalProtocolError(f"dialog: {inp.name} is not allowed in {old.name}")
        effect, new = entry
        if effect is not None:
            effect(self)
        self.state = new

    # -- UAC side --------------------------------------------------------------------
    def create_request(
        self, method: str, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()
    ) -> SipRequest:
        """Build an in-dialog request (RFC 3261 §12.2.1.1); the stack adds the Via.

        :param method: BYE, INVITE (re-INVITE), UPDATE, INFO, REFER, OPTIONS...
        :param body: the body.
        :param headers: extra headers (Content-Type...), appended.
        :raises LocalProtocolError: for ACK/CANCEL (use :meth:`create_ack` and
            ``stack.cancel``) or on a terminated dialog.
        """
        if method in ("ACK", "CANCEL"):
            raise LocalProtocolError(f"{method} is not built by create_request")
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError(f"dialog {self.call_id} is terminated")
        # §12.2.1.1: the local CSeq is incremented by one (chosen if still empty).
        self.local_seq = 1 if self.local_seq is None else self.local_seq + 1
        request = self._build(method, self.local_seq)
        if method in CONTACT_METHODS and self.local_target:
            request.add("Contact", self.local_target)
        for name, value in headers:
            request.add(name, value)
        request.body = body
        if method == "BYE":
            # §15: the session ends as soon as the BYE is handed to its transaction.
            self._fire(DialogInput.SEND_BYE)
        return request

    def create_ack(self, response: SipResponse) -> SipRequest:
        """The ACK for a 2xx to an INVITE of this dialog (RFC 3261 §13.2.2.4).

        Built like any in-dialog request but with the INVITE's CSeq number; the same
        object is returned for a retransmitted 2xx, so the same ACK is re-sent.

        :param response: the 2xx.
        """
        num = response.cseq[0]
        ack = self._acks.get(num)
        if ack is None:
            ack = self._build("ACK", num)
            self._acks = {num: ack}  # only the latest INVITE's ACK can be needed again
        return ack

    def next_hop(self) -> SipUri:
        """Where an in-dialog request goes: the first Route, or the remote target
        (RFC 3261 §12.2.1.1, §8.1.2)."""
        if self.route_set:
            return NameAddr.parse(self.route_set[0]).uri
        return self.remote_target

    def _build(self, method: str, seq: int) -> SipRequest:
        routes = [NameAddr.parse(r) for r in self.route_set]
        route_values: list[str]
        if not routes:
            ruri = self.remote_target
            route_values = []
        elif "lr" in routes[0].uri.params:
            # §12.2.1.1: loose routing: Request-URI = remote target, Route = route set.
            ruri = self.remote_target
            route_values = list(self.route_set)
        else:
            # §12.2.1.1: strict routing: the first route becomes the Request-URI
            # (stripped of what a Request-URI may not carry, §19.1.1), the rest plus
            # the remote target the Route.
            ruri = routes[0].uri.copy()
            ruri.params.pop("method", None)
            ruri.headers = None
            route_values = list(self.route_set[1:]) + [f"<{self.remote_target}>"]
        request = SipRequest(method, ruri.copy())
        for value in route_values:
            request.add("Route", value)
        request.add("Max-Forwards", "70")
        request.add("From", _with_tag(self.local_uri, self.local_tag))
        request.add("To", _with_tag(self.remote_uri, self.remote_tag))
        request.add("Call-ID", self.call_id)
        request.add("CSeq", f"{seq} {method}")
        return request

    def receive_response(self, response: SipResponse) -> None:
        """Note a response to a request we sent in this dialog, including the
        dialog-creating INVITE (RFC 3261 §12.1.2, §12.2.1.2, §13.2.2.4).

        :param response: the response.
        """
        if self.state is DialogState.TERMINATED:
            return
        status = response.status
        method = response.cseq[1]
        contacts = response.contacts if 101 <= status < 300 else []
        if method == "INVITE" and self.state is DialogState.EARLY:
            if status < 200:
                self._fire(DialogInput.RECV_1XX)
            elif status < 300:
                self._fire(DialogInput.RECV_2XX)
                # §13.2.2.4: the route set is recomputed from the 2xx.
                self.route_set = list(reversed(response.get_all("record-route")))
            else:
                self._fire(DialogInput.RECV_FAILURE)
            if contacts:
                self.remote_target = contacts[0].uri
            return
        if status in (408, 481):
            self._fire(DialogInput.RECV_DIALOG_GONE)  # §12.2.1.2
        elif 200 <= status < 300 and method in TARGET_REFRESH and contacts:
            self.remote_target = contacts[0].uri  # §12.2.1.2: target refresh
        elif 200 <= status < 300 and method == "INVITE":
            self._fire(DialogInput.RECV_2XX)

    # -- UAS side --------------------------------------------------------------------
    def receive_request(self, request: SipRequest) -> None:
        """Check and note an in-dialog request (RFC 3261 §12.2.2).

        :param request: the request (its To tag is ours).
        :raises CallTransactionDoesNotExist: not this dialog, or it is terminated (481).
        :raises RequestOutOfOrder: CSeq below the remote sequence number (500).
        """
        if not self.match(request) or self.state is DialogState.TERMINATED:
            raise CallTransactionDoesNotExist(f"no dialog for {request.method} {request.call_id}")
        method = request.method
        if method not in ("ACK", "CANCEL"):
            num = request.cseq[0]
            if self.remote_seq is not None and num < self.remote_seq:
                raise RequestOutOfOrder(
                    f"CSeq {num} {method} is below the remote sequence number {self.remote_seq}"
                )
            self.remote_seq = num
        if method in TARGET_REFRESH:
            contacts = request.contacts
            if contacts and not contacts[0].wildcard:
                self.remote_target = contacts[0].uri  # §12.2.2: target refresh
        if method == "BYE":
            self._fire(DialogInput.RECV_BYE)

    def send_response(self, response: SipResponse) -> None:
        """Note a response we send to the dialog-creating INVITE or in the dialog.

        :param response: the response.
        """
        if self.state is DialogState.TERMINATED or response.cseq[1] != "INVITE":
            return
        status = response.status
        if status < 200:
            if status > 100:
                self._fire(DialogInput.SEND_1XX)
        elif status < 300:
            self._fire(DialogInput.SEND_2XX)
        else:
            self._fire(DialogInput.SEND_FAILURE)

    def terminate(self) -> None:
        """Forget the dialog (e.g. after an AckTimeout and our BYE)."""
        self.state = DialogState.TERMINATED


class DialogSet:
    """The dialogs of a TU, indexed by dialog ID (RFC 3261 §12).

    :meth:`find` locates the dialog of an incoming request or of a response to one
    of our in-dialog requests; a request with a To tag that finds none is answered
    481 (§12.2.2) by the TU.
    """

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, SipDialog] = {}

    def add(self, dialog: SipDialog) -> None:
        """File a dialog.

        :param dialog: the dialog.
        """
        self._dialogs[dialog.id] = dialog

    def discard(self, dialog: SipDialog) -> None:
        """Forget a dialog (no error if unknown).

        :param dialog: the dialog.
        """
        if self._dialogs.get(dialog.id) is dialog:
            del self._dialogs[dialog.id]

    def find(self, msg: SipMessage) -> SipDialog | None:
        """The dialog ``msg`` belongs to, or None.

        :param msg: a received request or a response to our request.
        """
        if isinstance(msg, SipRequest):
            key = DialogId(msg.call_id, msg.to_tag or "", msg.from_tag or "")
        else:
            key = DialogId(msg.call_id, msg.from_tag or "", msg.to_tag or "")
        dialog = self._dialogs.get(key)
        if dialog is None or dialog.state is DialogState.TERMINATED:
            return None
        return dialog

    def prune(self) -> int:
        """Drop terminated dialogs; return how many."""
        dead = [k for k, d in self._dialogs.items() if d.state is DialogState.TERMINATED]
        for k in dead:
            del self._dialogs[k]
        return len(dead)

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self) -> Iterator[SipDialog]:
        return iter(list(self._dialogs.values()))
