"""The browser phone's commands on ``/api/ws`` (docs/web.md, "Phone commands").

Why this exists: the CTI WebSocket (:mod:`hotline.api.ws`) carries the phone's
signaling too, so a page has one socket. These commands wait on the media workers
(WebRTC negotiation, endpoints), so unlike the CTI commands they are asynchronous: the
WebSocket runs each in its own task and replies when it is done.
"""

from __future__ import annotations

from typing import Any

from .gateway import PhoneError, Softphones, WebPhone

__all__ = ["PHONE_COMMANDS", "run_phone_command"]

#: Commands handled here.
PHONE_COMMANDS = ("rtc_offer", "phone_answer", "phone_reject", "phone_hangup", "echo_test",
                  "phone_dial", "phone_resume", "phone_transfer", "phone_threeway")


async def run_phone_command(phones: Softphones, phone: WebPhone,
                            msg: dict[str, Any]) -> dict[str, Any]:
    """Carry out one phone command; returns the reply's fields.

    :raises PhoneError: a bad argument (400) or a command that does not fit the
        phone's state (409).
    """
    cmd = msg.get("cmd")
    if cmd == "rtc_offer":
        sdp = msg.get("sdp")
        restart = msg.get("restart", False)
        if not isinstance(sdp, str):
            raise PhoneError("sdp: expected the offer's SDP text", 400)
        if not isinstance(restart, bool):
            raise PhoneError("restart: expected true or false", 400)
        return {"sdp": await phones.rtc_offer(phone, sdp, restart)}
    if cmd == "phone_answer":
        await phones.answer(phone)
    elif cmd == "phone_reject":
        await phones.reject(phone)
    elif cmd == "phone_hangup":
        await phones.hangup(phone)
    elif cmd == "phone_dial":
        await phones.dial(phone, msg.get("number"))  # type: ignore[arg-type]  # checked there
    elif cmd == "phone_resume":
        await phones.resume(phone)
    elif cmd == "phone_transfer":
        await phones.transfer(phone)
    elif cmd == "phone_threeway":
        await phones.threeway(phone)
    elif cmd == "echo_test":
        on = msg.get("on")
        if not isinstance(on, bool):
            raise PhoneError("on: expected true or false", 400)
        await phones.echo_test(phone, on)
    else:
        raise PhoneError(f"unknown command {str(cmd)[:32]!r}", 400)
    return {"phone": phone.status()}
