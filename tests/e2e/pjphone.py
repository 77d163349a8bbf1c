"""A SIP phone for end-to-end tests: PJSIP (pjsua2) driven by JSON lines on stdin.

Debian's baresip 1.0 can hold and blind-transfer but has no attended transfer and no
way to hold from its control socket; PJSIP, the stack inside many softphones, does all
of it (``setHold``, ``xfer``, ``xferReplaces``, ``dialDtmf``). One process is one phone
(one extension on its own UDP port), so the server sees distinct phones.

Run: ``python pjphone.py CONFIG.json``; the config holds ``user``, ``password``,
``server`` (host:port), ``port`` (our SIP port), ``tone`` (WAV played into every call)
and ``dir`` (where each call's received audio is recorded, ``call-N.wav``), and optionally
``answer_after`` (seconds an incoming call rings before the phone answers; default 0).

Commands (one JSON object per line on stdin), calls named by index in creation order:
``{"cmd": "call", "uri": ...}``, ``hold``/``unhold``/``hangup`` with ``call``,
``xfer`` with ``call`` and ``uri`` (blind), ``xfer_replaces`` with ``call`` (the
transferee's) and ``dest`` (the target's), ``dtmf`` with ``call`` and ``digits``,
``quit``. Events go to stdout as JSON lines: ``registered``, ``incoming``,
``state`` (``CONFIRMED``/``DISCONNECTED``…), ``media`` (``active``/``local_hold``/
``remote_hold``/``none``), ``dtmf`` (a digit received), ``xfer_status``, ``error``.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
from typing import Any

import pjsua2 as pj


def emit(**event: Any) -> None:
    print(json.dumps(event), flush=True)


class Phone:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.calls: list[PhoneCall] = []
        self.pending: list[tuple[float, PhoneCall]] = []
        """Incoming calls ringing until their answer time (``answer_after``)."""
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        ec = pj.EpConfig()
        ec.uaConfig.threadCnt = 0
        ec.uaConfig.mainThreadOnly = True
        ec.uaConfig.userAgent = f"pjphone-{cfg['user']}"
        ec.logConfig.level = 4
        ec.logConfig.consoleLevel = 0
        ec.logConfig.filename = os.path.join(cfg["dir"], "pjsip.log")
        ec.medConfig.clockRate = 8000
        ec.medConfig.sndClockRate = 8000
        ec.medConfig.ecTailLen = 0
        ec.medConfig.noVad = True
        self.ep.libInit(ec)
        tc = pj.TransportConfig()
        tc.port = int(cfg["port"])
        tc.boundAddress = "127.0.0.1"
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
        self.ep.audDevManager().setNullDev()
        for codec in self.ep.codecEnum2():
            self.ep.codecSetPriority(codec.codecId, 255 if codec.codecId.startswith("PCMU/") else 0)
        self.ep.libStart()
        self.player = pj.AudioMediaPlayer()
        self.player.createPlayer(cfg["tone"], 0)  # 0: loop
        self.acc = PhoneAccount(self)
        ac = pj.AccountConfig()
        server = cfg["server"]
        ac.idUri = f"sip:{cfg['user']}@{server}"
        ac.regConfig.registrarUri = f"sip:{server}"
        ac.regConfig.timeoutSec = 300
        ac.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", cfg["user"], 0,
                                                      cfg["password"]))
        ac.natConfig.sipOutboundUse = 0
        ac.natConfig.contactRewriteUse = 0
        ac.natConfig.viaRewriteUse = 0
        ac.natConfig.sdpNatRewriteUse = 0
        ac.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        self.acc.create(ac)

    def command(self, c: dict[str, Any]) -> bool:
        op = pj.CallOpParam(True)
        name = c["cmd"]
        if name == "quit":
            return False
        if name == "call":
            call = PhoneCall(self, self.acc)
            self.calls.append(call)
            call.makeCall(c["uri"], op)
            return True
        call = self.calls[int(c["call"])]
        if name == "hold":
            call.setHold(op)
        elif name == "unhold":
            op.opt.flag = pj.PJSUA_CALL_UNHOLD
            call.reinvite(op)
        elif name == "hangup":
            call.hangup(op)
        elif name == "xfer":
            call.xfer(c["uri"], op)
        elif name == "xfer_replaces":
            call.xferReplaces(self.calls[int(c["dest"])], op)
        elif name == "dtmf":
            call.dialDtmf(c["digits"])
        else:
            emit(event="error", error=f"unknown command {name}")
        return True

    def run(self) -> None:
        buf = b""
        running = True
        while running:
            self.ep.libHandleEvents(10)
            now = time.monotonic()
            for item in [p for p in self.pending if p[0] <= now]:
                self.pending.remove(item)
                op = pj.CallOpParam()
                op.statusCode = 200
                item[1].answer(op)
            ready, _, _ = select.select([sys.stdin], [], [], 0)
            if not ready:
                continue
            chunk = os.read(sys.stdin.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not line.strip():
                    continue
                try:
                    running = self.command(json.loads(line)) and running
                except Exception as exc:  # noqa: BLE001 — report, keep the phone up
                    emit(event="error", error=repr(exc))
        for call in self.calls:
            call.close_recorder()
        self.ep.hangupAllCalls()
        for _ in range(50):
            self.ep.libHandleEvents(10)
        emit(event="quit")


class PhoneAccount(pj.Account):
    def __init__(self, phone: Phone) -> None:
        super().__init__()
        self.phone = phone

    def onRegState(self, prm: Any) -> None:
        emit(event="registered", code=prm.code)

    def onIncomingCall(self, prm: Any) -> None:
        call = PhoneCall(self.phone, self, prm.callId)
        self.phone.calls.append(call)
        emit(event="incoming", call=len(self.phone.calls) - 1)
        op = pj.CallOpParam()
        delay = float(self.phone.cfg.get("answer_after", 0))
        if delay > 0:
            op.statusCode = 180
            call.answer(op)
            self.phone.pending.append((time.monotonic() + delay, call))
            return
        op.statusCode = 200
        call.answer(op)


class PhoneCall(pj.Call):
    def __init__(self, phone: Phone, acc: pj.Account, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(acc, call_id)
        self.phone = phone
        self.recorder: pj.AudioMediaRecorder | None = None

    @property
    def index(self) -> int:
        return self.phone.calls.index(self)

    def close_recorder(self) -> None:
        self.recorder = None  # its destructor finishes the WAV header

    def onCallState(self, prm: Any) -> None:
        ci = self.getInfo()
        emit(event="state", call=self.index, state=ci.stateText, status=ci.lastStatusCode)

    def onCallMediaState(self, prm: Any) -> None:
        ci = self.getInfo()
        status = "none"
        for i, mi in enumerate(ci.media):
            if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            status = {pj.PJSUA_CALL_MEDIA_ACTIVE: "active",
                      pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "local_hold",
                      pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "remote_hold"}.get(mi.status, "none")
            if mi.status in (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD):
                am = self.getAudioMedia(i)
                self.phone.player.startTransmit(am)
                if self.recorder is None:
                    self.recorder = pj.AudioMediaRecorder()
                    path = os.path.join(self.phone.cfg["dir"], f"call-{self.index}.wav")
                    self.recorder.createRecorder(path)
                am.startTransmit(self.recorder)
        emit(event="media", call=self.index, status=status)

    def onDtmfDigit(self, prm: Any) -> None:
        emit(event="dtmf", call=self.index, digit=prm.digit)

    def onCallTransferStatus(self, prm: Any) -> None:
        emit(event="xfer_status", call=self.index, code=prm.statusCode, final=prm.finalNotify)


def main() -> None:
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    phone = Phone(cfg)
    phone.run()
    phone.ep.libDestroy()


if __name__ == "__main__":
    main()
