"""Hold and re-offers in SDP (RFC 3264 §8, §8.4): recognising a hold offer, building
our own hold/resume re-offers with the o= version bumped."""

from __future__ import annotations

from pathlib import Path

import pytest

from sip.exceptions import LocalProtocolError
from sip.sdp import (
    Direction,
    SessionDescription,
    answer_offer,
    build_offer,
    bump_version,
    hold_direction,
    is_hold,
    offered_direction,
    reoffer,
    resume_direction,
    set_direction,
)

DATA = Path(__file__).resolve().parent.parent / "data"


def _sdp(*lines: str) -> SessionDescription:
    return SessionDescription.parse("".join(f"{line}\r\n" for line in lines))


def _phone(
    direction: str | None, conn: str = "192.168.1.50", session: str | None = None
) -> SessionDescription:
    """A desk phone's re-offer; ``direction`` None means no attribute (sendrecv)."""
    lines = [
        "v=0",
        "o=- 20518 20520 IN IP4 192.168.1.50",
        "s=SDP data",
        f"c=IN IP4 {conn}",
        "t=0 0",
    ]
    if session:
        lines.append(f"a={session}")
    lines += [
        "m=audio 11780 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
    ]
    if direction:
        lines.append(f"a={direction}")
    return _sdp(*lines)


@pytest.mark.parametrize(
    ("sdp", "hold"),
    [
        (_phone(None), False),
        (_phone("sendrecv"), False),
        # RFC 3264 §8.4: a=sendonly (from sendrecv) and a=inactive (from recvonly).
        (_phone("sendonly"), True),
        (_phone("inactive"), True),
        # recvonly: the peer only listens; it is not holding us.
        (_phone("recvonly"), False),
        # RFC 2543 hold: c=0.0.0.0, with or without a direction attribute.
        (_phone(None, conn="0.0.0.0"), True),
        (_phone("sendrecv", conn="0.0.0.0"), True),
        # Session-level attribute, overridden or not at media level (RFC 8866 §6.7).
        (_phone(None, session="sendonly"), True),
        (_phone("sendrecv", session="sendonly"), False),
    ],
)
def test_is_hold(sdp: SessionDescription, hold: bool) -> None:
    assert is_hold(sdp) is hold


def test_is_hold_ignores_rejected_streams() -> None:
    sdp = _sdp(
        "v=0",
        "o=- 1 2 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "a=sendonly",
        "m=video 0 RTP/AVP 96",
        "a=rtpmap:96 H264/90000",
    )
    assert is_hold(sdp)
    for m in sdp.media:
        m.port = 0
    assert not is_hold(sdp)  # nothing active: not a hold, a dead session
    assert not is_hold(_sdp("v=0", "o=- 1 2 IN IP4 192.0.2.1", "s=-", "t=0 0"))


def test_offered_direction_reads_c_zero_as_not_receiving() -> None:
    sdp = _phone("sendrecv", conn="0.0.0.0")
    assert offered_direction(sdp, sdp.media[0]) is Direction.SENDONLY
    sdp = _phone("recvonly", conn="0.0.0.0")
    assert offered_direction(sdp, sdp.media[0]) is Direction.INACTIVE


def test_answering_a_hold_offer() -> None:
    # The B2BUA answers a held phone recvonly and stops sending to it.
    offer = _phone("sendonly")
    answer, neg = answer_offer(offer, "203.0.113.10", 20000, session_id=7, version=3)
    assert is_hold(offer) and answer.media[0].direction is Direction.RECVONLY
    assert neg.on_hold


@pytest.mark.parametrize(
    ("current", "held", "resumed"),
    [
        (Direction.SENDRECV, Direction.SENDONLY, Direction.SENDRECV),
        (Direction.RECVONLY, Direction.INACTIVE, Direction.RECVONLY),
        (Direction.SENDONLY, Direction.SENDONLY, Direction.SENDRECV),
        (Direction.INACTIVE, Direction.INACTIVE, Direction.RECVONLY),
    ],
)
def test_hold_and_resume_directions(
    current: Direction, held: Direction, resumed: Direction
) -> None:
    assert hold_direction(current) is held
    assert resume_direction(hold_direction(current)) is resumed


def test_reoffer_for_hold_and_resume() -> None:
    first = build_offer("203.0.113.10", 20000, session_id=4242, version=1)
    held = reoffer(first, hold_direction(Direction.SENDRECV))
    # RFC 3264 §8: same session id, version + 1; the previous SDP is untouched.
    assert (held.origin.session_id, held.origin.session_version) == ("4242", "2")
    assert first.origin.session_version == "1"
    assert first.media[0].direction is Direction.SENDRECV
    assert held.media[0].direction is Direction.SENDONLY
    # Only the o= version and the direction line differ.
    diff = [(a, b) for a, b in zip(first.lines(), held.lines(), strict=True) if a != b]
    assert diff == [
        ("o=hotline 4242 1 IN IP4 203.0.113.10", "o=hotline 4242 2 IN IP4 203.0.113.10"),
        ("a=sendrecv", "a=sendonly"),
    ]
    resumed = reoffer(held, resume_direction(held.media[0].direction or Direction.SENDRECV))
    assert resumed.origin.session_version == "3"
    assert resumed.media[0].direction is Direction.SENDRECV
    # The far end reads our hold as a hold, and the resume as none.
    assert is_hold(SessionDescription.parse(str(held)))
    assert not is_hold(SessionDescription.parse(str(resumed)))
    # A plain re-offer (session refresh, new codec list...) only bumps the version.
    assert reoffer(resumed).lines()[1] == "o=hotline 4242 4 IN IP4 203.0.113.10"


def test_reoffer_of_a_captured_sdp_keeps_everything_else() -> None:
    text = (DATA / "sdp_baresip.txt").read_text().replace("\n", "\r\n")
    sdp = SessionDescription.parse(text)
    held = reoffer(sdp, Direction.SENDONLY)
    expected = text.replace("o=- 1402518737 1593719811 ", "o=- 1402518737 1593719812 ").replace(
        "a=sendrecv", "a=sendonly"
    )
    assert str(held) == expected
    assert str(sdp) == text


def test_set_direction_in_place() -> None:
    sdp = _phone("sendrecv", session="recvonly")
    sdp.media[0].attributes.append(sdp.media[0].attributes[-1])  # a stray second one
    set_direction(sdp, Direction.INACTIVE)
    names = [a.name for a in sdp.media[0].attributes]
    assert names == ["rtpmap", "rtpmap", "rtpmap", "fmtp", "ptime", "inactive"]
    assert sdp.direction is None  # session level removed: nothing contradicts
    # No attribute yet: appended.
    sdp = _phone(None)
    set_direction(sdp, Direction.SENDONLY, media_index=0)
    assert sdp.media[0].attributes[-1].name == "sendonly"
    with pytest.raises(LocalProtocolError, match="media_index 1 out of range"):
        set_direction(sdp, Direction.SENDONLY, media_index=1)


def test_set_direction_on_one_stream_keeps_session_level() -> None:
    sdp = _phone(None, session="sendrecv")
    set_direction(sdp, Direction.SENDONLY, media_index=0)
    assert sdp.direction is Direction.SENDRECV
    assert sdp.direction_for(sdp.media[0]) is Direction.SENDONLY


def test_bump_version_beyond_64_bits() -> None:
    sdp = _sdp("v=0", "o=- 1 18446744073709551615 IN IP4 192.0.2.1", "s=-", "t=0 0")
    assert bump_version(sdp) == 18446744073709551616
    assert str(sdp).splitlines()[1] == "o=- 1 18446744073709551616 IN IP4 192.0.2.1"
