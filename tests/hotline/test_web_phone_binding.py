"""Which registrar bindings are browser phones (their legs get the loopback jitter buffer,
and the softphone gateway removes stale ones when it starts)."""

from __future__ import annotations

from hotline.callcontrol import WEB_PHONE_INSTANCE, is_web_phone
from sip.registrar import ContactSpec, SipRegistrar


def test_is_web_phone_reads_the_stored_instance() -> None:
    reg = SipRegistrar()
    reg.register("1001", [ContactSpec("sip:1001@127.0.0.1:5999", expires=60,
                                      instance=f"<{WEB_PHONE_INSTANCE}1001>")],
                 "cid-web", 1, 0.0)
    reg.register("1002", [ContactSpec("sip:1002@192.0.2.9:5060", expires=60,
                                      instance="<urn:uuid:00000000-0000-1000-8000-000000000001>")],
                 "cid-desk", 1, 0.0)
    reg.register("1003", [ContactSpec("sip:1003@192.0.2.9:5062", expires=60)], "cid-old", 1, 0.0)
    web, desk, plain = (reg.lookup(aor, 1.0)[0] for aor in ("1001", "1002", "1003"))
    assert is_web_phone(web.instance)
    assert not is_web_phone(desk.instance) and not is_web_phone(plain.instance)
