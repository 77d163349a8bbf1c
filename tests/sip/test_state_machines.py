"""Hypothesis over every transition table (STYLE 3): any (state, input) pair leads to a
known state (a missing pair raises LocalProtocolError and lands in TERMINATED), and
TERMINATED is reachable from every state."""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sip.dialog import DIALOG_TRANSITIONS, DialogInput, DialogState, SipDialog
from sip.exceptions import LocalProtocolError
from sip.message import SipMessage, SipRequest, SipResponse, make_response
from sip.peer import Peer
from sip.stack import SipStack
from sip.transaction import (
    MACHINES,
    InviteClientInput,
    InviteClientState,
    InviteServerInput,
    InviteServerState,
    NonInviteClientInput,
    NonInviteClientState,
    NonInviteServerInput,
    NonInviteServerState,
    SipInviteClientTransaction,
    SipInviteServerTransaction,
    SipNonInviteClientTransaction,
    SipNonInviteServerTransaction,
    client_key,
    server_key,
)

PEER = Peer("udp", "10.0.0.2", 5060)


def _request(method: str) -> SipRequest:
    req = SipRequest(method, "sip:b@10.0.0.2")
    req.add("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKsm")
    req.add("From", "<sip:a@x>;tag=1")
    req.add("To", "<sip:b@y>")
    req.add("Call-ID", "sm@test")
    req.add("CSeq", f"1 {method}")
    req.add("Contact", "<sip:a@10.0.0.1>")
    return req


STATUS = {
    "RECV_1XX": 180, "RECV_2XX": 200, "RECV_300_699": 486, "RECV_FINAL": 200,
    "SEND_1XX": 180, "SEND_2XX": 200, "SEND_300_699": 486, "SEND_FINAL": 200,
}

CLASSES: dict[type[Enum], Any] = {
    InviteClientState: (SipInviteClientTransaction, "INVITE", client_key),
    NonInviteClientState: (SipNonInviteClientTransaction, "OPTIONS", client_key),
    InviteServerState: (SipInviteServerTransaction, "INVITE", server_key),
    NonInviteServerState: (SipNonInviteServerTransaction, "OPTIONS", server_key),
}


def _message(inp: Enum, request: SipRequest) -> SipMessage | None:
    status = STATUS.get(inp.name)
    if status is not None:
        return make_response(request, status, to_tag="t")
    if inp.name == "RECV_ACK":
        ack = _request("ACK")
        return ack
    if inp.name == "RECV_REQUEST":
        return request
    return None


def _reachable(table: Any, start: Enum) -> set[Enum]:
    seen = {start}
    todo = deque([start])
    while todo:
        s = todo.popleft()
        for (src, _), (_, dst) in table.items():
            if src is s and dst not in seen:
                seen.add(dst)
                todo.append(dst)
    return seen


@pytest.mark.parametrize("states,inputs,table", MACHINES, ids=lambda x: getattr(x, "__name__", ""))
def test_terminated_reachable_from_every_state(states: Any, inputs: Any, table: Any) -> None:
    for state in states:
        if state.name != "TERMINATED":
            assert states.TERMINATED in _reachable(table, state), state
    # and every table entry names states and inputs of its own machine
    for (s, i), (_, d) in table.items():
        assert isinstance(s, states) and isinstance(i, inputs) and isinstance(d, states)


def _machine_case(states: type[Enum], inputs: type[Enum], table: Any) -> Any:
    return st.tuples(st.just((states, inputs, table)), st.sampled_from(list(states)),
                     st.sampled_from(list(inputs)), st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.one_of(*[_machine_case(*m) for m in MACHINES]))
def test_any_input_in_any_state_leads_to_a_known_state(case: Any) -> None:
    (states, inputs, table), state, inp, reliable = case
    cls, method, keyfn = CLASSES[states]
    stack = SipStack()
    request = _request(method)
    peer = Peer("tcp", "10.0.0.2", 5060, 1) if reliable else PEER
    txn = cls(stack, keyfn(request), request, peer, stack.config)
    if state is not states.TERMINATED:
        if keyfn is client_key:
            stack._client[txn.key] = txn
        else:
            stack._server[txn.key] = txn
        stack._bind(txn)
        # Arm the guard timers a transaction always has (B, F, H), as if it had
        # walked to ``state`` through the table.
        txn.start(0.0)
        if cls is SipInviteServerTransaction:
            txn._start_timer(InviteServerInput.TIMER_H, 32.0, 0.0)
    txn.state = state
    try:
        txn.fire(inp, 1.0, _message(inp, request))
    except LocalProtocolError:
        assert (state, inp) not in table
        assert txn.state is states.TERMINATED
    else:
        assert (state, inp) in table
    assert txn.state in set(states)
    if txn.state is states.TERMINATED:
        # A terminated transaction leaves nothing behind in its owner.
        assert stack.stats()["transactions"] == 0 and not txn.timers
    # Whatever happened, running every timer ends in TERMINATED or a state that only
    # the TU/network can move (never a leak with armed timers).
    for _ in range(200):
        at = stack.get_timer()
        if at is None:
            break
        stack.handle_timer(at)
    assert stack.get_timer() is None


def test_dialog_terminated_reachable() -> None:
    for state in DialogState:
        assert DialogState.TERMINATED in _reachable(DIALOG_TRANSITIONS, state)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(DialogState)), st.sampled_from(list(DialogInput)))
def test_dialog_any_input(state: DialogState, inp: DialogInput) -> None:
    invite = _request("INVITE")
    dialog = SipDialog.from_uas(invite, make_response(invite, 200, to_tag="t"))
    dialog.state = state
    try:
        dialog._fire(inp)
    except LocalProtocolError:
        assert (state, inp) not in DIALOG_TRANSITIONS
        assert dialog.state is DialogState.TERMINATED
    else:
        assert (state, inp) in DIALOG_TRANSITIONS
    assert dialog.state in set(DialogState)


def test_missing_pair_terminates_and_raises() -> None:
    stack = SipStack()
    request = _request("OPTIONS")
    txn = SipNonInviteServerTransaction(stack, server_key(request), request, PEER, stack.config)
    stack._server[txn.key] = txn
    txn.send(make_response(request, 200), 0.0)
    assert txn.state is NonInviteServerState.COMPLETED
    with pytest.raises(LocalProtocolError, match="SEND_FINAL is not allowed in COMPLETED"):
        txn.send(make_response(request, 500), 0.0)
    assert txn.state is NonInviteServerState.TERMINATED
    assert stack.stats()["transactions"] == 0
    assert isinstance(SipResponse(200), SipResponse)
    assert InviteClientInput.TIMER_A and InviteServerInput.TIMER_G and InviteServerState.ACCEPTED
    assert NonInviteClientInput.TIMER_E and InviteClientState.ACCEPTED
    assert NonInviteServerInput.TIMER_J
