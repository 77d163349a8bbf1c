"""Queue calls: what call control does for the ACD.

The ACD engine decides (who is offered which caller, when a caller leaves, when to
announce); this module carries its decisions out on SIP legs and media endpoints, and
tells the engine what happened on them:

* a caller reaching ``queue:NAME`` is answered, hears the queue's music on hold, and
  joins the line (:meth:`QueueCalls.enter`);
* :class:`~acd.events.CallOffered` rings the agent's registered phone with the screen-pop
  data in headers; its 200 is the agent's answer, checked with the engine (an offer
  withdrawn meanwhile gets a BYE), then the caller is bridged;
* a phone that refuses or cannot be reached is a ring-no-answer for the engine;
  :class:`~acd.events.OfferWithdrawn` CANCELs the ring;
* :class:`~acd.events.CallLeftQueue` sends the caller to its overflow/exit target, or
  confirms a callback and hangs up;
* :class:`~acd.events.Announce` and :class:`~acd.events.PlayMessage` play over the music;
* feature codes from agents' phones (``*50`` ready, ``*51`` not ready, ``*52`` log out)
  change the agent's state and answer with a beep;
* an agent's phone in any other call is busy for the ACD (``direct_call``).
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING

from acd.errors import AcdError
from acd.events import AcdEvent, Announce, CallLeftQueue, CallOffered, OfferWithdrawn, PlayMessage
from acd.ivr_actions import Transfer
from media.client import MediaError
from sip import sdp as sdplib
from sip.exceptions import ProtocolError
from sip.message import SipResponse
from sip.peer import Peer
from sip.uri import SipUri

from .acdctl import AcdService
from .callmodel import Call, CallState, Leg
from .config import QueueConfig, Target, parse_target, render_template
from .dialplan import rewrite
from .logs import CallLogAdapter

if TYPE_CHECKING:
    from .callcontrol import CallControl

logger = logging.getLogger("hotline.queue")

__all__ = ["QueueCalls"]

CONFIRM = "tone:beep"
"""What a feature code answers with when it worked."""
REFUSED = "tone:congestion"
"""... and when it did not (unknown code for this phone, a state that does not allow it)."""
CALLBACK_PROMPT = "tts:Thank you. We will call you back as soon as an agent is free."


def _key(call: Call) -> str:
    """The call's key in the ACD engine."""
    return call.acd_key or call.key


def announcement(queue: QueueConfig, position: int, estimated_wait: int) -> str:
    """The position / estimated-wait prompt of ``queue`` (its ``announce`` templates)."""
    if estimated_wait <= 0:
        return render_template(queue.announce_no_estimate, {"position": str(position)})
    minutes = max(1, math.ceil(estimated_wait / 60))
    return render_template(queue.announce, {"position": str(position),
                                            "minutes": str(minutes)})


class QueueCalls:
    """Carries out the ACD's decisions on calls (see the module docstring)."""

    def __init__(self, cc: CallControl, acd: AcdService) -> None:
        self.cc = cc
        self.acd = acd
        acd.on_call_event = self.on_event
        self._callbacks: dict[str, Call] = {}
        """Callback calls by their ACD key, while they last."""

    # -- callers -------------------------------------------------------------------
    async def answer_into_queue(self, leg: Leg, name: str, priority: int) -> None:
        """A call routed to ``queue:NAME``: answer it, then join the line."""
        cc = self.cc
        queue = cc.config.queue(name)
        if queue is not None and not queue.record:
            leg.call.record = False  # before the answer, where recording starts
        if not await cc._create_answer_endpoint(leg):
            return
        if not cc._live(leg):
            return
        now = cc._clock()
        cc._send_answer(leg, now)
        self.enter(leg.call, leg, name, priority, {}, now)

    def enter(self, call: Call, leg: Leg, name: str, priority: int,
              variables: Mapping[str, str], now: float) -> None:
        """The answered caller ``leg`` joins queue ``name`` and hears its music."""
        queue = self.cc.config.queue(name)
        if queue is None:  # config checks targets, so only a bug gets here
            self.cc.hangup(call, now, "target_unavailable")
            return
        call.target = Target("queue", name)
        call.queue = name
        call.waiting = True
        call.hold_prompt = queue.moh or self.cc.moh
        if not queue.record:
            call.record = False
        if queue.silent_prompt is not None and call.silent_config is None:
            call.silent_config = (queue.silent_prompt, queue.silent_seconds)
        call.variables = {"called": call.called, **variables}
        self.cc._remix(call)
        try:
            position = self.acd.call(self.acd.engine.enqueue, call.key, name, now,
                                     caller=call.caller, priority=priority,
                                     variables=call.variables)
        except AcdError as exc:
            CallLogAdapter(logger, call.id).warning("queue_failed", extra={"error": str(exc)})
            self.cc.hangup(call, now, "target_unavailable")
            return
        if position:
            CallLogAdapter(logger, call.id).info("queue_join", extra={
                "queue": name, "position": position, "priority": priority})

    def digit(self, leg: Leg, digit: str, now: float) -> bool:
        """A waiting caller pressed a key: True if the queue took it (an exit key)."""
        call = leg.call
        if not call.waiting:
            return False
        return self.acd.call(self.acd.engine.key, _key(call), digit, now)

    # -- engine events ---------------------------------------------------------------
    def on_event(self, event: AcdEvent, now: float) -> None:
        """Carry out one of the engine's call events."""
        match event:
            case CallOffered():
                self._offer(event, now)
            case OfferWithdrawn():
                self._withdraw(event, now)
            case CallLeftQueue():
                self._left(event, now)
            case Announce(call_id=key, position=pos, estimated_wait=ewt):
                call = self._find(key)
                queue = self.cc.config.queue(call.queue or "") if call is not None else None
                if queue is not None:
                    self._play_over_music(key, announcement(queue, pos, ewt))
            case PlayMessage(call_id=key, prompt=prompt):
                self._play_over_music(key, prompt)

    def _find(self, key: str) -> Call | None:
        """The live call the ACD knows as ``key`` (a callback's call, else the caller's)."""
        return self._callbacks.get(key) or self.cc.calls.get(key)

    def _caller(self, key: str) -> tuple[Call, Leg] | None:
        call = self.cc.calls.get(key)
        if call is None or not call.legs:
            return None
        a = call.legs[0]
        if not a.uas or not self.cc._live(a):
            return None
        return call, a

    def _offer(self, ev: CallOffered, now: float) -> None:
        engine = self.acd.engine
        found = self._caller(ev.call_id)
        log = CallLogAdapter(logger, ev.call_id.split(";")[0])
        if ev.callback:
            self._offer_callback(ev, now)
            return
        if found is None:
            self.acd.call(engine.call_ended, ev.call_id, now)
            return
        call, a = found
        contact = self._agent_contact(ev, now)
        if contact is None:
            return
        peer, uri = contact
        headers = (
            ("X-Hotline-Queue", ev.queue),
            ("X-Hotline-Wait", str(round(ev.wait))),
            *((f"X-Hotline-Var-{k}", v) for k, v in sorted(ev.variables.items())
              if k.replace("_", "").isalnum()),
        )
        log.info("queue_offer", extra={"agent": ev.agent, "queue": ev.queue,
                                       "wait": round(ev.wait, 1)})
        self.cc._spawn(self.cc._dial(call, a, peer, uri, call.caller, user=ev.agent,
                                     offer=True, extra_headers=headers,
                                     display=f"[{ev.queue}] {call.caller}"))

    def _agent_contact(self, ev: CallOffered, now: float) -> tuple[Peer, SipUri] | None:
        """Where the agent's phone is registered; None (a refusal for the engine) if not."""
        contact = self.cc.phone_contact(ev.agent, now)
        if contact is None:
            CallLogAdapter(logger, ev.call_id.split(";")[0]).info(
                "agent_unreachable", extra={"agent": ev.agent, "queue": ev.queue})
            self.acd.call(self.acd.engine.rejected, ev.call_id, ev.agent, now)
        return contact

    # -- callbacks -----------------------------------------------------------------
    def _offer_callback(self, ev: CallOffered, now: float) -> None:
        """A callback's turn came: ring the agent first (a new call); when it answers,
        the customer is dialled out through the route for its number."""
        contact = self._agent_contact(ev, now)
        if contact is None:
            return
        peer, uri = contact
        call_id = secrets.token_hex(12) + "@hotline"
        call = Call(id=call_id, caller=ev.variables.get("called") or ev.callback,
                    called=ev.callback, target=Target("queue", ev.queue), started=now,
                    route=Target("queue", ev.queue))
        call.key = call_id + ";callback"
        call.acd_key = ev.call_id
        call.media_key = call_id
        call.queue = ev.queue
        call.callback = ev.callback
        call.variables = dict(ev.variables)
        self.cc.calls[call.key] = call
        self._callbacks[ev.call_id] = call
        CallLogAdapter(logger, call_id).info("callback_offer", extra={
            "agent": ev.agent, "queue": ev.queue, "number": ev.callback,
            "wait": round(ev.wait, 1)})
        self.cc._spawn(self.cc._dial(
            call, None, peer, uri, ev.callback, user=ev.agent, offer=True,
            extra_headers=(("X-Hotline-Queue", ev.queue), ("X-Hotline-Callback", ev.callback)),
            display=f"[{ev.queue}] callback {ev.callback}"))

    async def callback_answered(self, leg: Leg, response: SipResponse) -> None:
        """The agent answered a callback: dial the customer; the agent hears ringback."""
        cc = self.cc
        call = leg.call
        assert leg.ep is not None and leg.local_sdp is not None
        log = CallLogAdapter(logger, call.id)
        try:
            leg.remote_sdp = sdplib.SessionDescription.parse(
                response.body.decode("utf-8", "replace"))
            leg.media = await cc.media.accept_answer(leg.ep, leg.local_sdp, leg.remote_sdp)
        except (ProtocolError, MediaError) as exc:
            log.warning("callback_failed", extra={"error": str(exc)})
            cc.hangup(call, cc._clock(), "media_failed")
            return
        now = cc._clock()
        if not cc._live(leg):
            return
        route = cc._route(call.callback, call.caller, leg.user, from_trunk=False)
        if route is None or route.to.kind != "trunk":
            log.info("callback_failed", extra={"number": call.callback, "reason": "no route"})
            cc.hangup(call, now, "callback_no_route")
            return
        dialled = rewrite(call.callback, route.strip, route.prepend)
        cc._dial_trunk(call, leg, route.to.arg or "", dialled, now)
        cc._spawn(cc._ringback(leg))

    def callback_connected(self, call: Call, customer: Leg, now: float) -> None:
        """The customer answered the callback: the contact starts (CDR, recording with
        the customer on the left as for any caller)."""
        call.legs.remove(customer)
        call.legs.insert(0, customer)
        cc = self.cc
        call.state = CallState.ANSWERED
        call.answered_at = now
        CallLogAdapter(logger, call.id).info("callback_connected", extra={
            "agent": call.agent, "number": call.callback})
        if cc._on_answer is not None:
            cc._on_answer(call)

    def offer_failed(self, call: Call, agent: str, now: float) -> None:
        """No leg could be made toward the agent (no endpoint): as a refusal."""
        self.acd.call(self.acd.engine.rejected, _key(call), agent, now)

    def _withdraw(self, ev: OfferWithdrawn, now: float) -> None:
        call = self._find(ev.call_id)
        if call is None:
            return
        for leg in call.legs:
            if (leg.offer and leg.user == ev.agent and not leg.answered and not leg.cancelled
                    and self.cc._live(leg)):
                leg.cancelled = True
                self.cc.stack.cancel(leg.txn_key, now)

    def agent_answered(self, leg: Leg, now: float) -> bool:
        """An agent's phone answered an offer: True if the engine still wants it there
        (the caller is then bridged), False to hang the agent's leg up."""
        call = leg.call
        assert leg.user is not None
        ok = self.acd.call(self.acd.engine.answered, _key(call), leg.user, now)
        if ok:
            call.agent = leg.user
            call.waiting = False
            call.hold_prompt = None
            CallLogAdapter(logger, call.id).info("queue_answered", extra={
                "agent": leg.user, "queue": call.queue})
        return ok

    def agent_failed(self, leg: Leg, status: int, now: float) -> None:
        """The INVITE to an agent's phone failed (busy, declined, no answer, timeout)."""
        if not leg.cancelled:  # else we stopped it (ring-no-answer, answered elsewhere)
            CallLogAdapter(logger, leg.call.id).info("agent_refused", extra={
                "agent": leg.user, "status": status})
            if leg.user is not None:
                self.acd.call(self.acd.engine.rejected, _key(leg.call), leg.user, now)
        if leg.call.callback and not leg.call.answered_at:  # nobody left in that attempt
            self.cc._maybe_end(leg.call, f"sip:{status}", now)

    def _left(self, ev: CallLeftQueue, now: float) -> None:
        found = self._caller(ev.call_id)
        if found is None:
            return
        call, a = found
        call.waiting = False
        call.hold_prompt = None
        log = CallLogAdapter(logger, call.id)
        log.info("queue_leave", extra={"queue": ev.queue, "reason": ev.reason,
                                       "target": ev.target})
        if ev.reason == "callback":
            call.target = Target("play", CALLBACK_PROMPT)
            a.prompt = None
            self.cc._spawn(self.cc._local_app(a))
            return
        if not ev.target:
            self.cc.hangup(call, now, "queue_" + ev.reason)
            return
        try:
            target = parse_target(ev.target)
        except ValueError:
            self.cc.hangup(call, now, "target_unavailable")
            return
        self.cc._ivr_done(call, Transfer(target, call.variables), now)

    def _play_over_music(self, key: str, prompt: str) -> None:
        found = self._caller(key)
        if found is None:
            return
        call, a = found
        if not call.waiting or a.ep is None:
            return
        self.cc._spawn(self._play(call, a, prompt))

    async def _play(self, call: Call, a: Leg, prompt: str) -> None:
        async with call.lock:
            if not call.waiting or a.ep is None or not self.cc._live(a):
                return
            try:
                call.announce_id = await self.cc.media.play(a.ep, prompt)
            except MediaError as exc:
                CallLogAdapter(logger, call.id).warning("announce_failed",
                                                        extra={"error": str(exc)})
                return
            a.prompt = prompt
        CallLogAdapter(logger, call.id).info("queue_announce", extra={"prompt": prompt})

    def playback_done(self, leg: Leg, play_id: int) -> bool:
        """An announcement ended: the music comes back. True if it was ours."""
        call = leg.call
        if call.announce_id is None or play_id != call.announce_id:
            return False
        call.announce_id = None
        leg.prompt = None
        self.cc._remix(call)
        return True

    # -- call life -----------------------------------------------------------------
    def held(self, leg: Leg, on: bool, now: float) -> None:
        """An agent's leg of a queue call was put on hold or resumed (phone or API)."""
        call = leg.call
        if call.agent is not None and leg.user == call.agent:
            self.acd.call(self.acd.engine.hold, call.agent, now, on)

    def transferred(self, call: Call, to: str, now: float) -> None:
        """The queue call's agent handed the caller on."""
        if call.agent is not None:
            self.acd.call(self.acd.engine.transferred, _key(call), now, to)

    def call_ended(self, call: Call, now: float) -> None:
        """The call is over: the engine completes it (or counts an abandon)."""
        if call.callback and self._callbacks.get(_key(call)) is call:
            del self._callbacks[_key(call)]
        if call.queue is not None:
            self.acd.call(self.acd.engine.call_ended, _key(call), now,
                          by_agent=call.first_gone is not None
                          and call.first_gone == call.agent)

    def leg_started(self, leg: Leg, now: float) -> None:
        """An extension's phone joined a call that is not a queue offer: busy."""
        if leg.user is not None and not leg.offer and not leg.direct:
            leg.direct = True
            self.acd.call(self.acd.engine.direct_call, leg.user, now)

    def leg_ended(self, leg: Leg, now: float) -> None:
        if leg.direct and leg.user is not None:
            leg.direct = False
            self.acd.call(self.acd.engine.direct_end, leg.user, now)

    # -- feature codes ---------------------------------------------------------------
    def feature_code(self, called: str, user: str | None, now: float) -> Target | None:
        """Agent feature codes (``[acd]``): change the agent's state and return the
        target that confirms it (a beep, or congestion when refused); None if ``called``
        is not one."""
        codes = self.cc.config.acd
        if user is None or self.cc.config.agent(user) is None:
            return None
        engine = self.acd.engine
        try:
            if called == codes.ready_code:
                self.acd.call(engine.ready, user, now)
            elif called == codes.logout_code:
                self.acd.call(engine.logout, user, now)
            elif called.startswith(codes.not_ready_code):
                rest = called[len(codes.not_ready_code):]
                reasons = codes.reasons
                if rest and not (rest.isdigit() and 1 <= int(rest) <= len(reasons)):
                    return None
                reason = reasons[int(rest) - 1] if rest else "other"
                if engine.agents[user].state.value == "logged_out":
                    self.acd.call(engine.login, user, now)
                self.acd.call(engine.not_ready, user, now, reason)
            else:
                return None
        except AcdError as exc:
            logger.info("feature_code_refused", extra={"agent": user, "code": called,
                                                       "error": str(exc)})
            return Target("play", REFUSED)
        logger.info("feature_code", extra={"agent": user, "code": called,
                                           "state": engine.agents[user].state.value})
        return Target("play", CONFIRM)
