"""SipRegistrar: RFC 3261 §10.3 rules, stepped through time."""

from __future__ import annotations

import pytest

from sip.events import SipEvent
from sip.exceptions import LocalProtocolError
from sip.registrar import (
    ROW_FIELDS,
    BindingAdded,
    BindingRemoved,
    BindingSource,
    ContactSpec,
    SipRegistrar,
    default_uri_key,
)

AOR = "sip:1001@pbx.example.com"
PHONE = "sip:1001@192.168.1.50:5060"
SOFT = "sip:1001@10.0.0.9:5070;transport=tcp"
SRC = BindingSource("udp", "203.0.113.5", 40211)


def events(reg: SipRegistrar) -> list[SipEvent]:
    out = []
    while (ev := reg.next_event()) is not None:
        out.append(ev)
    return out


def test_register_refresh_and_expire_over_time() -> None:
    reg = SipRegistrar(min_expires=60, max_expires=3600, default_expires=3600)
    r = reg.register(AOR, [ContactSpec(PHONE)], "cid-1", 1, 100.0, header_expires=600, source=SRC)
    assert (r.status, r.reason) == (200, "OK")
    assert r.contact_values == (f"<{PHONE}>;expires=600",)
    (b,) = reg.lookup(AOR, 100.0)
    assert b.source == SRC and b.expires_at == 700.0
    assert [type(e) for e in events(reg)] == [BindingAdded]
    assert reg.get_timer() == 700.0

    # A refresh from the same Call-ID with a higher CSeq extends the binding silently.
    r = reg.register(AOR, [ContactSpec(PHONE)], "cid-1", 2, 400.0, header_expires=600)
    assert r.contact_values == (f"<{PHONE}>;expires=600",)
    assert reg.get_timer() == 1000.0
    assert events(reg) == []
    assert reg.lookup(AOR, 999.0)[0].registered_at == 100.0

    # Query (no Contact): current bindings with the remaining time.
    r = reg.register(AOR, [], "cid-q", 1, 550.5)
    assert r.contact_values == (f"<{PHONE}>;expires=450",)

    assert reg.expire(999.9) == []
    gone = reg.expire(1000.0)
    assert [g.uri for g in gone] == [PHONE]
    assert events(reg) == [BindingRemoved(gone[0], "expired")]
    assert reg.lookup(AOR, 1000.0) == [] and reg.get_timer() is None and reg.aors() == []


def test_expires_sources_precedence_and_capping() -> None:
    reg = SipRegistrar(min_expires=60, max_expires=3600, default_expires=1800)
    r = reg.register(
        AOR, [ContactSpec(PHONE, expires=120), ContactSpec(SOFT)], "c", 1, 0.0, header_expires=300
    )
    assert sorted(r.contact_values) == sorted([f"<{PHONE}>;expires=120", f"<{SOFT}>;expires=300"])
    r = reg.register("sip:1002@pbx", [ContactSpec(PHONE)], "d", 1, 0.0)
    assert r.contact_values == (f"<{PHONE}>;expires=1800",)
    r = reg.register("sip:1003@pbx", [ContactSpec(PHONE, expires=99999)], "e", 1, 0.0)
    assert r.contact_values == (f"<{PHONE}>;expires=3600",)


def test_interval_too_brief_423() -> None:
    reg = SipRegistrar(min_expires=60)
    r = reg.register(AOR, [ContactSpec(PHONE, expires=30)], "c", 1, 0.0)
    assert (r.status, r.reason, r.min_expires) == (423, "Interval Too Brief", 60)
    assert r.contact_values == () and reg.lookup(AOR, 0.0) == []
    # Atomic: one too-brief contact fails the whole request.
    r = reg.register(
        AOR, [ContactSpec(SOFT, expires=600), ContactSpec(PHONE, expires=59)], "c", 2, 0.0
    )
    assert r.status == 423 and reg.lookup(AOR, 0.0) == []
    assert reg.register(AOR, [ContactSpec(PHONE, expires=60)], "c", 3, 0.0).ok


def test_wildcard_rules() -> None:
    reg = SipRegistrar()
    reg.register(AOR, [ContactSpec(PHONE), ContactSpec(SOFT)], "c", 1, 0.0)
    events(reg)
    r = reg.register(AOR, [ContactSpec.star()], "c", 2, 1.0, header_expires=10)
    assert (r.status, r.detail) == (400, "Contact: * needs Expires: 0 and no other Contact")
    r = reg.register(AOR, [ContactSpec.star()], "c", 2, 1.0)
    assert r.status == 400
    r = reg.register(AOR, [ContactSpec.star(), ContactSpec(PHONE)], "c", 2, 1.0, header_expires=0)
    assert r.status == 400
    assert len(reg.lookup(AOR, 1.0)) == 2
    # Same Call-ID with a CSeq that is not higher: the removal fails as a whole.
    r = reg.register(AOR, [ContactSpec.star()], "c", 1, 1.0, header_expires=0)
    assert r.status == 500 and len(reg.lookup(AOR, 1.0)) == 2
    r = reg.register(AOR, [ContactSpec.star()], "other", 1, 1.0, header_expires=0)
    assert (r.status, r.contact_values) == (200, ())
    ev = events(reg)
    assert sorted(e.binding.uri for e in ev if isinstance(e, BindingRemoved)) == sorted(
        [PHONE, SOFT]
    )
    assert all(e.reason == "unregistered" for e in ev if isinstance(e, BindingRemoved))
    assert reg.get_timer() is None


def test_out_of_order_cseq_is_refused_atomically() -> None:
    reg = SipRegistrar()
    reg.register(AOR, [ContactSpec(PHONE)], "c", 5, 0.0, header_expires=600)
    r = reg.register(AOR, [ContactSpec(SOFT), ContactSpec(PHONE)], "c", 5, 1.0)
    assert (r.status, r.reason) == (500, "Server Internal Error")
    assert r.detail == f"CSeq 5 is not above 5 for {PHONE}"
    assert [b.uri for b in reg.lookup(AOR, 1.0)] == [PHONE]
    assert reg.register(AOR, [ContactSpec(PHONE)], "c", 4, 1.0).status == 500
    # A different Call-ID (a rebooted phone) always updates.
    assert reg.register(AOR, [ContactSpec(PHONE, expires=0)], "new", 1, 1.0).ok
    assert reg.lookup(AOR, 1.0) == []


def test_expires_zero_removes_one_binding() -> None:
    reg = SipRegistrar()
    reg.register(AOR, [ContactSpec(PHONE), ContactSpec(SOFT)], "c", 1, 0.0)
    events(reg)
    r = reg.register(
        AOR,
        [ContactSpec(PHONE.upper().replace("SIP:1001@", "sip:1001@"))],
        "c",
        2,
        1.0,
        header_expires=0,
    )
    # Host comparison is case-insensitive, so this matched the phone binding.
    assert r.ok and [b.uri for b in r.bindings] == [SOFT]
    (ev,) = events(reg)
    assert isinstance(ev, BindingRemoved) and ev.binding.uri == PHONE


def test_lookup_sorted_by_q_then_recency() -> None:
    reg = SipRegistrar()
    reg.register(AOR, [ContactSpec("sip:a@h1", q=0.5)], "c1", 1, 0.0)
    reg.register(AOR, [ContactSpec("sip:b@h2")], "c2", 1, 10.0)
    reg.register(AOR, [ContactSpec("sip:c@h3", q=1.0)], "c3", 1, 20.0)
    reg.register(AOR, [ContactSpec("sip:d@h4", q=0.9)], "c4", 1, 30.0)
    assert [b.uri for b in reg.lookup(AOR, 31.0)] == [
        "sip:c@h3",
        "sip:b@h2",
        "sip:d@h4",
        "sip:a@h1",
    ]
    r = reg.register(AOR, [], "q", 1, 31.0)
    assert r.contact_values[-1] == "<sip:a@h1>;expires=3569;q=0.5"
    assert r.contact_values[0] == "<sip:c@h3>;expires=3589;q=1.0"
    assert reg.register(AOR, [ContactSpec("sip:e@h", q=1.5)], "c5", 1, 0.0).status == 400


def test_instance_id_replaces_binding_after_reboot() -> None:
    reg = SipRegistrar()
    inst = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"
    reg.register(AOR, [ContactSpec("sip:1001@192.0.2.4:5060", instance=inst)], "boot1", 1, 0.0)
    reg.register(AOR, [ContactSpec("sip:1001@192.0.2.4:5062", instance=inst)], "boot2", 1, 50.0)
    (b,) = reg.lookup(AOR, 50.0)
    assert b.uri == "sip:1001@192.0.2.4:5062"
    assert [type(e).__name__ for e in events(reg)] == [
        "BindingAdded",
        "BindingRemoved",
        "BindingAdded",
    ]
    assert b.contact_value(50.0).endswith(f';+sip.instance="{inst}"')


def test_max_contacts_evicts_oldest() -> None:
    reg = SipRegistrar(max_contacts=2)
    reg.register(AOR, [ContactSpec("sip:a@h")], "c1", 1, 0.0)
    reg.register(AOR, [ContactSpec("sip:b@h")], "c2", 1, 1.0)
    events(reg)
    reg.register(AOR, [ContactSpec("sip:c@h")], "c3", 1, 2.0)
    assert sorted(b.uri for b in reg.lookup(AOR, 2.0)) == ["sip:b@h", "sip:c@h"]
    removed = [e for e in events(reg) if isinstance(e, BindingRemoved)]
    assert [(e.binding.uri, e.reason) for e in removed] == [("sip:a@h", "evicted")]
    r = reg.register(AOR, [ContactSpec(f"sip:{x}@h") for x in "xyz"], "c4", 1, 3.0)
    assert r.status == 403 and len(reg.lookup(AOR, 3.0)) == 2
    # The evicted binding's timer entry is stale and skipped.
    assert reg.get_timer() == 3601.0


@pytest.mark.parametrize(
    ("call_id", "cseq", "header_expires", "detail"),
    [
        ("", 1, None, "empty Call-ID"),
        ("c", -1, None, "CSeq -1 out of range"),
        ("c", 2**31, None, "CSeq 2147483648 out of range"),
        ("c", 1, -5, "negative Expires"),
    ],
)
def test_bad_requests(call_id: str, cseq: int, header_expires: int | None, detail: str) -> None:
    reg = SipRegistrar()
    r = reg.register(AOR, [ContactSpec(PHONE)], call_id, cseq, 0.0, header_expires=header_expires)
    assert (r.status, r.detail) == (400, detail)
    assert reg.lookup(AOR, 0.0) == []


def test_expired_binding_does_not_block_new_registration() -> None:
    reg = SipRegistrar()
    reg.register(AOR, [ContactSpec(PHONE, expires=60)], "c", 9, 0.0)
    # Not yet reaped by the timer, but expired: same Call-ID with a lower CSeq is accepted.
    r = reg.register(AOR, [ContactSpec(PHONE, expires=60)], "c", 1, 61.0)
    assert r.ok and r.contact_values == (f"<{PHONE}>;expires=60",)
    assert [e.reason for e in events(reg) if isinstance(e, BindingRemoved)] == ["expired"]


def test_rows_round_trip_and_load_skips_expired() -> None:
    reg = SipRegistrar()
    reg.register(AOR, [ContactSpec(PHONE, q=0.7)], "c", 1, 0.0, source=SRC, header_expires=600)
    reg.register("sip:1002@pbx", [ContactSpec(SOFT)], "d", 3, 0.0, header_expires=60)
    rows = reg.to_rows()
    assert rows == [
        (AOR, PHONE, 600.0, 0.7, "c", 1, "udp", "203.0.113.5", 40211, None, 0.0),
        ("sip:1002@pbx", SOFT, 60.0, None, "d", 3, None, None, None, None, 0.0),
    ]
    assert len(ROW_FIELDS) == len(rows[0])
    fresh = SipRegistrar()
    assert fresh.load_rows(rows, 100.0) == 1
    assert fresh.lookup(AOR, 100.0) == reg.lookup(AOR, 100.0)
    assert fresh.get_timer() == 600.0
    assert fresh.next_event() is None
    # CSeq ordering survives the restore.
    assert fresh.register(AOR, [ContactSpec(PHONE)], "c", 1, 101.0).status == 500


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ((AOR,), "registrar row 0: expected 11 fields, got 1"),
        (
            (AOR, PHONE, "soon", None, "c", 1, None, None, None, None, 0.0),
            "registrar row 0: bad expires_at",
        ),
        ((AOR, PHONE, 9.0, 2.0, "c", 1, None, None, None, None, 0.0), "registrar row 0: bad q"),
        (
            (AOR, PHONE, 9.0, None, "c", True, None, None, None, None, 0.0),
            "registrar row 0: bad cseq",
        ),
        (
            (AOR, PHONE, 9.0, None, "c", 1, "udp", "1.2.3.4", None, None, 0.0),
            "registrar row 0: bad source",
        ),
    ],
)
def test_load_rows_rejects_bad_rows(row: tuple[object, ...], message: str) -> None:
    with pytest.raises(LocalProtocolError) as info:
        SipRegistrar().load_rows([row], 0.0)
    assert str(info.value) == message


def test_remove_and_refresh_source() -> None:
    reg = SipRegistrar()
    reg.register(AOR, [ContactSpec(PHONE), ContactSpec(SOFT)], "c", 1, 0.0, source=SRC)
    events(reg)
    new = BindingSource("tcp", "203.0.113.5", 50000)
    updated = reg.refresh_source(AOR, PHONE, new)
    assert updated is not None and updated.source == new
    assert reg.refresh_source(AOR, "sip:nobody@x", new) is None
    assert [b.uri for b in reg.remove(AOR, SOFT)] == [SOFT]
    assert [e.reason for e in events(reg) if isinstance(e, BindingRemoved)] == ["removed"]
    assert [b.uri for b in reg.remove(AOR)] == [PHONE]
    assert reg.aors() == []


def test_uri_key() -> None:
    assert default_uri_key("<SIP:Alice@Example.COM:5060;Transport=TCP>") == (
        "sip:Alice@example.com:5060;Transport=TCP"
    )
    assert default_uri_key("sip:alice@h") != default_uri_key("sip:Alice@h")


def test_bad_configuration() -> None:
    with pytest.raises(LocalProtocolError):
        SipRegistrar(min_expires=0)
    with pytest.raises(LocalProtocolError):
        SipRegistrar(min_expires=7200, max_expires=9000, default_expires=8000)
    with pytest.raises(LocalProtocolError):
        SipRegistrar(min_expires=60, max_expires=100, default_expires=3600)
