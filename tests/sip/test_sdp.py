"""SDP parsing (RFC 8866) and offer/answer (RFC 3264) against captured bodies in tests/data."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sip.exceptions import IncompatibleMedia, LocalProtocolError, MalformedSdp
from sip.sdp import (
    DEFAULT_CODECS,
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    Direction,
    RtpMap,
    SessionDescription,
    answer_offer,
    build_offer,
    negotiated_from_answer,
)

DATA = Path(__file__).resolve().parent.parent / "data"


def load(name: str) -> str:
    """A test SDP with CRLF line ends, as it travels in a SIP body."""
    return (DATA / name).read_text().replace("\n", "\r\n")


@pytest.mark.parametrize(
    "name", ["sdp_chrome.txt", "sdp_asterisk.txt", "sdp_freeswitch.txt", "sdp_baresip.txt"]
)
def test_round_trip_exact(name: str) -> None:
    text = load(name)
    assert str(SessionDescription.parse(text)) == text


def test_lf_only_input_is_normalised_to_crlf() -> None:
    raw = (DATA / "sdp_asterisk.txt").read_text()
    assert "\r" not in raw
    assert str(SessionDescription.parse(raw)) == raw.replace("\n", "\r\n")


def test_missing_final_newline_is_added() -> None:
    text = load("sdp_asterisk.txt")
    assert str(SessionDescription.parse(text.rstrip("\r\n"))) == text


def test_chrome_fields() -> None:
    sdp = SessionDescription.parse(load("sdp_chrome.txt"))
    assert sdp.origin.session_id == "4611731400430051336"
    assert sdp.origin.session_version == "2"
    assert sdp.session_name == "-"
    assert sdp.connection is None
    assert sdp.attribute("group") == "BUNDLE 0"
    assert sdp.has_attribute("extmap-allow-mixed")
    (m,) = sdp.media
    assert (m.media, m.port, m.proto) == ("audio", 54312, "UDP/TLS/RTP/SAVPF")
    assert m.formats == ["111", "63", "9", "0", "8", "13", "110", "126"]
    assert m.rtpmaps[111] == RtpMap(111, "opus", 48000, 2)
    assert m.rtpmaps[126] == RtpMap(126, "telephone-event", 8000)
    assert m.fmtp["111"] == "minptime=10;useinbandfec=1"
    assert m.rtcp_mux
    assert m.direction is Direction.SENDRECV
    assert sdp.connection_for(m) is not None
    assert sdp.connection_for(m).host == "192.168.1.23"  # type: ignore[union-attr]
    candidates = m.attribute_values("candidate")
    assert len(candidates) == 3
    assert candidates[1].endswith(
        "typ srflx raddr 192.168.1.23 rport 54312 generation 0 network-id 1 network-cost 10"
    )
    assert m.attribute(
        "fingerprint",
    ).startswith("sha-256 7B:8B:F0")  # type: ignore[union-attr]
    assert m.attribute("setup") == "actpass"
    assert m.attribute("ice-ufrag") == "Gx3k"
    assert m.ptime is None


def test_asterisk_fields() -> None:
    sdp = SessionDescription.parse(load("sdp_asterisk.txt"))
    assert sdp.connection is not None and sdp.connection.address == "10.20.0.5"
    (m,) = sdp.media
    assert m.formats == ["8", "0", "3", "101"]
    assert m.ptime == 20.0
    assert m.attribute("maxptime") == "150"
    assert m.codec_for(3) == RtpMap(3, "GSM", 8000)
    assert m.fmtp == {"101": "0-16"}


def test_freeswitch_session_and_rejected_video() -> None:
    sdp = SessionDescription.parse(load("sdp_freeswitch.txt"))
    assert sdp.origin.username == "FreeSWITCH"
    audio, video = sdp.media
    assert sdp.direction_for(audio) is Direction.SENDONLY
    assert video.port == 0 and video.formats == ["96"]
    assert audio.fmtp["18"] == "annexb=no"


def test_baresip_ipv6_and_bandwidth() -> None:
    sdp = SessionDescription.parse(load("sdp_baresip.txt"))
    assert sdp.origin.addrtype == "IP6"
    assert sdp.connection is not None and sdp.connection.addrtype == "IP6"
    assert sdp.connection.host == "2001:db8:0:1::42"
    assert [(b.bwtype, b.bandwidth) for b in sdp.bandwidths] == [("AS", 80)]
    (m,) = sdp.media
    assert [(b.bwtype, b.bandwidth) for b in m.bandwidths] == [("TIAS", 64000)]
    assert sdp.attribute("tool") == "baresip 3.10.1"


def test_invalid_file_error() -> None:
    with pytest.raises(MalformedSdp, match=r"^SDP line 8: expected <type>=<value>$"):
        SessionDescription.parse(load("sdp_invalid.txt"))


def test_truncated_file_error() -> None:
    with pytest.raises(
        MalformedSdp,
        match=r"^SDP line 6: m= needs <media> <port>\[/<number>\] <proto> <fmt> \.\.\.$",
    ):
        SessionDescription.parse(load("sdp_truncated.txt"))


HEAD = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "SDP: empty body"),
        ("o=- 1 1 IN IP4 192.0.2.1\r\n", "SDP line 1: the first line must be v=0"),
        ("v=1\r\n", "SDP line 1: unsupported SDP version '1', expected v=0"),
        ("v=0\r\ns=-\r\nt=0 0\r\n", "SDP: missing o= line"),
        ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nt=0 0\r\n", "SDP: missing s= line"),
        (HEAD, "SDP: missing t= line"),
        ("v=0\r\no=- 1 1 IN IP4\r\n", "SDP line 2: o= needs 6 fields, got 5"),
        (
            "v=0\r\no=- x 1 IN IP4 192.0.2.1\r\n",
            "SDP line 2: o= session id must be numeric, got 'x'",
        ),
        (HEAD + "c=IN IP4 300.1.2.3\r\n", "SDP line 4: c=: bad IP4 address '300.1.2.3'"),
        (HEAD + "c=IN IP6 2001:db8::zz\r\n", "SDP line 4: c=: bad IP6 address '2001:db8::zz'"),
        (HEAD + "c=IN IP4\r\n", "SDP line 4: c= needs <nettype> <addrtype> <connection-address>"),
        (HEAD + "b=AS\r\n", "SDP line 4: b= needs <bwtype>:<bandwidth>, got 'AS'"),
        (HEAD + "t=0\r\n", "SDP line 4: t= needs <start-time> <stop-time>, got '0'"),
        (
            HEAD + "t=0 0\r\nc=IN IP4 192.0.2.1\r\n",
            "SDP line 5: c= line out of order at session level",
        ),
        (HEAD + "s=again\r\n", "SDP line 4: s= line out of order at session level"),
        (HEAD + "x=1\r\n", "SDP line 4: unexpected x= line at session level"),
        (HEAD + "a =foo\r\n", "SDP line 4: expected <type>=<value>"),
        (HEAD + "A=foo\r\n", "SDP line 4: expected <type>=<value>"),
        (HEAD + "\r\nt=0 0\r\n", "SDP line 4: expected <type>=<value>"),
        (HEAD + "m=audio 1 RTP/AVP 0\r\n", "SDP line 4: m= before any t= line"),
        (
            HEAD + "t=0 0\r\nm=audio 70000 RTP/AVP 0\r\n",
            "SDP line 5: m= port must be 0-65535, got '70000'",
        ),
        (
            HEAD + "t=0 0\r\nm=audio 4000 RTP/AVP 128\r\n",
            "SDP line 5: m= RTP payload type must be 0-127, got '128'",
        ),
        (
            HEAD + "t=0 0\r\nm=audio 4000/0 RTP/AVP 0\r\n",
            "SDP line 5: m= port count must be a positive integer, got '4000/0'",
        ),
        (
            HEAD + "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
            "SDP line 6: bad rtpmap '0 PCMU'",
        ),
        (
            HEAD + "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=ptime:fast\r\n",
            "SDP line 6: ptime needs a number, got 'fast'",
        ),
        (
            HEAD + "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly:yes\r\n",
            "SDP line 6: sendonly takes no value, got 'yes'",
        ),
        (
            HEAD + "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=fmtp:101\r\n",
            "SDP line 6: fmtp needs <format> <parameters>, got '101'",
        ),
        (
            HEAD + "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\nc=IN IP4 192.0.2.1\r\n",
            "SDP line 7: c= line out of order at media level",
        ),
        (
            HEAD + "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\no=- 1 1 IN IP4 192.0.2.1\r\n",
            "SDP line 6: unexpected o= line at media level",
        ),
        (
            HEAD + "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=\r\n",
            "SDP line 6: a= needs <attribute>[:<value>], got ''",
        ),
        (
            HEAD + "t=0 0\r\nz=0 0\r\nr=1 2 3\r\n",
            "SDP line 6: r= line out of order at session level",
        ),
        (HEAD + "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\r\n", "SDP line 5: expected <type>=<value>"),
    ],
)
def test_exact_errors(body: str, message: str) -> None:
    with pytest.raises(MalformedSdp) as info:
        SessionDescription.parse(body)
    assert str(info.value) == message
    assert info.value.status_hint == 400


def test_repeat_and_multiple_timing_round_trip() -> None:
    text = HEAD + "t=3034423619 3042462419\r\nr=604800 3600 0 90000\r\nt=0 0\r\na=recvonly\r\n"
    sdp = SessionDescription.parse(text)
    assert [t.repeats for t in sdp.timing] == [["604800 3600 0 90000"], []]
    assert str(sdp) == text


def test_oversized_body() -> None:
    with pytest.raises(MalformedSdp, match="exceeds"):
        SessionDescription.parse(HEAD + "a=x:" + "y" * 70000 + "\r\n")


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("vosctma=0123456789 :/.\r\nINP4RTAVxyz-")), max_size=200)
)
def test_fuzz_only_malformed_sdp(text: str) -> None:
    try:
        sdp = SessionDescription.parse(text)
    except MalformedSdp:
        return
    # Whatever parses must serialise and re-parse to the same text.
    assert str(SessionDescription.parse(str(sdp))) == str(sdp)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_fuzz_mutated_captures(data: st.DataObject) -> None:
    text = load(
        data.draw(
            st.sampled_from(
                ["sdp_chrome.txt", "sdp_asterisk.txt", "sdp_freeswitch.txt", "sdp_baresip.txt"]
            )
        )
    )
    pos = data.draw(st.integers(0, len(text) - 1))
    cut = data.draw(st.integers(0, 5))
    insert = data.draw(st.text(max_size=4))
    mutated = text[:pos] + insert + text[pos + cut :]
    try:
        sdp = SessionDescription.parse(mutated)
    except MalformedSdp:
        return
    assert str(SessionDescription.parse(str(sdp))) == str(sdp)


# ----------------------------------------------------------------------- offer/answer


def test_answer_asterisk_offer_honours_offerer_order() -> None:
    answer, neg = answer_offer(
        SessionDescription.parse(load("sdp_asterisk.txt")),
        "198.51.100.7",
        30000,
        DEFAULT_CODECS,
        77,
        1,
    )
    assert str(answer) == (
        "v=0\r\n"
        "o=hotline 77 1 IN IP4 198.51.100.7\r\n"
        "s=hotline\r\n"
        "c=IN IP4 198.51.100.7\r\n"
        "t=0 0\r\n"
        "m=audio 30000 RTP/AVP 8 101\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )
    assert (neg.codec, neg.payload_type, neg.clock_rate) == ("PCMA", 8, 8000)
    assert (neg.remote_address, neg.remote_port) == ("10.20.0.5", 17612)
    assert neg.telephone_event_pt == 101
    assert neg.direction is Direction.SENDRECV and not neg.on_hold
    assert neg.ptime == 20 and not neg.rtcp_mux


def test_answer_freeswitch_sendonly_rejects_video_keeps_line_count() -> None:
    offer = SessionDescription.parse(load("sdp_freeswitch.txt"))
    answer, neg = answer_offer(offer, "198.51.100.7", 30000, session_id=5, version=9)
    assert len(answer.media) == 2
    audio, video = answer.media
    # G722 is first in the offer but unsupported: PCMU is the first we support.
    assert audio.formats == ["0", "101"]
    assert audio.direction is Direction.RECVONLY
    assert neg.direction is Direction.RECVONLY and neg.on_hold
    assert video.lines() == ["m=video 0 RTP/AVP 96"]
    assert SessionDescription.parse(str(answer)).media[1].port == 0


def test_answer_baresip_ipv6_telephone_event_pt_kept_and_rtcp_mux() -> None:
    offer = SessionDescription.parse(load("sdp_baresip.txt"))
    answer, neg = answer_offer(offer, "2001:db8::7", 30000)
    assert answer.connection is not None and answer.connection.addrtype == "IP6"
    assert answer.origin.addrtype == "IP6"
    (m,) = answer.media
    assert m.formats == ["0", "97"]
    assert m.fmtp == {"97": "0-15"}
    assert m.rtcp_mux
    assert neg.telephone_event_pt == 97 and neg.rtcp_mux
    assert neg.remote_address == "2001:db8:0:1::42"
    no_mux, _ = answer_offer(offer, "2001:db8::7", 30000, rtcp_mux=False)
    assert not no_mux.media[0].rtcp_mux


def test_answer_chrome_savpf_is_not_acceptable() -> None:
    with pytest.raises(IncompatibleMedia) as info:
        answer_offer(SessionDescription.parse(load("sdp_chrome.txt")), "198.51.100.7", 30000)
    assert str(info.value) == (
        "SDP offer not acceptable: m-line 0: unsupported transport UDP/TLS/RTP/SAVPF"
    )
    assert info.value.status_hint == 488


OFFER = (
    "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\n"
    "c=IN IP4 192.0.2.10\r\nt=0 0\r\n{session}"
    "m=audio 49170 RTP/AVP {fmts}\r\n{media}"
)


@pytest.mark.parametrize(
    ("session", "media", "ours"),
    [
        ("", "", Direction.SENDRECV),
        ("", "a=sendonly\r\n", Direction.RECVONLY),
        ("", "a=recvonly\r\n", Direction.SENDONLY),
        ("", "a=inactive\r\n", Direction.INACTIVE),
        ("a=sendonly\r\n", "", Direction.RECVONLY),
        ("a=sendonly\r\n", "a=sendrecv\r\n", Direction.SENDRECV),
    ],
)
def test_answer_direction(session: str, media: str, ours: Direction) -> None:
    offer = SessionDescription.parse(OFFER.format(session=session, fmts="0", media=media))
    answer, neg = answer_offer(offer, "198.51.100.7", 30000)
    assert answer.media[0].direction is ours
    assert neg.direction is ours


def test_answer_rfc2543_hold_address() -> None:
    text = OFFER.format(session="", fmts="0", media="").replace(
        "c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0"
    )
    answer, neg = answer_offer(SessionDescription.parse(text), "198.51.100.7", 30000)
    assert answer.media[0].direction is Direction.RECVONLY
    assert neg.remote_address == "0.0.0.0" and neg.on_hold


def test_answer_static_payload_without_rtpmap_and_dynamic_unknown_skipped() -> None:
    text = OFFER.format(session="", fmts="96 8", media="a=ptime:30\r\n")
    answer, neg = answer_offer(SessionDescription.parse(text), "198.51.100.7", 30000)
    assert answer.media[0].formats == ["8"]
    assert neg.telephone_event_pt is None and neg.codec == "PCMA" and neg.ptime == 30


def test_answer_second_audio_stream_and_port0_rejected() -> None:
    text = OFFER.format(session="", fmts="0", media="") + (
        "m=audio 0 RTP/AVP 0\r\nm=audio 49180 RTP/AVP 8\r\n"
    )
    text = text.replace("m=audio 49170 RTP/AVP 0", "m=audio 0 RTP/AVP 0", 1)
    answer, neg = answer_offer(SessionDescription.parse(text), "198.51.100.7", 30000)
    assert [m.port for m in answer.media] == [0, 0, 30000]
    assert neg.media_index == 2 and neg.codec == "PCMA"


def test_answer_no_common_codec() -> None:
    text = OFFER.format(
        session="", fmts="18 96", media="a=rtpmap:18 G729/8000\r\na=rtpmap:96 opus/48000/2\r\n"
    )
    with pytest.raises(IncompatibleMedia) as info:
        answer_offer(SessionDescription.parse(text), "198.51.100.7", 30000)
    assert str(info.value) == (
        "SDP offer not acceptable: m-line 0: no common codec in [G729, opus]"
    )


def test_answer_no_audio_at_all() -> None:
    text = HEAD + "t=0 0\r\nm=video 5000 RTP/AVP 96\r\n"
    with pytest.raises(
        IncompatibleMedia, match="^SDP offer not acceptable: the offer has no active audio stream$"
    ):
        answer_offer(SessionDescription.parse(text), "198.51.100.7", 30000)


def test_answer_bad_local_arguments() -> None:
    offer = SessionDescription.parse(load("sdp_asterisk.txt"))
    with pytest.raises(LocalProtocolError, match="not an IP address: 'pbx.local'"):
        answer_offer(offer, "pbx.local", 30000)
    with pytest.raises(LocalProtocolError, match="local_port must be 1-65535, got 0"):
        answer_offer(offer, "198.51.100.7", 0)
    with pytest.raises(LocalProtocolError, match="at least one audio codec"):
        answer_offer(offer, "198.51.100.7", 3000, [TELEPHONE_EVENT])


def test_build_offer_exact_and_parseable() -> None:
    offer = build_offer("198.51.100.7", 40000, session_id=123, version=4)
    assert str(offer) == (
        "v=0\r\n"
        "o=hotline 123 4 IN IP4 198.51.100.7\r\n"
        "s=hotline\r\n"
        "c=IN IP4 198.51.100.7\r\n"
        "t=0 0\r\n"
        "m=audio 40000 RTP/AVP 0 8 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )
    assert str(SessionDescription.parse(str(offer))) == str(offer)
    hold = build_offer("198.51.100.7", 40000, [PCMA, PCMU], 123, 5, direction=Direction.SENDONLY)
    assert hold.media[0].formats == ["8", "0"]
    assert hold.media[0].direction is Direction.SENDONLY


def test_offer_answer_between_our_two_sides() -> None:
    offer = build_offer("192.0.2.1", 40000, [PCMA, PCMU, TELEPHONE_EVENT], 1, 1, rtcp_mux=True)
    answer, answerer_view = answer_offer(SessionDescription.parse(str(offer)), "192.0.2.2", 50000)
    offerer_view = negotiated_from_answer(offer, SessionDescription.parse(str(answer)))
    assert answerer_view.codec == offerer_view.codec == "PCMA"
    assert (offerer_view.remote_address, offerer_view.remote_port) == ("192.0.2.2", 50000)
    assert (answerer_view.remote_address, answerer_view.remote_port) == ("192.0.2.1", 40000)
    assert offerer_view.telephone_event_pt == answerer_view.telephone_event_pt == 101
    assert offerer_view.rtcp_mux and answerer_view.rtcp_mux


def test_offer_hold_answered_recvonly() -> None:
    offer = build_offer("192.0.2.1", 40000, session_id=1, version=2, direction=Direction.SENDONLY)
    answer, answerer_view = answer_offer(offer, "192.0.2.2", 50000)
    assert answerer_view.direction is Direction.RECVONLY
    assert negotiated_from_answer(offer, answer).direction is Direction.SENDONLY


def test_negotiated_from_real_asterisk_style_answer() -> None:
    offer = build_offer("192.0.2.1", 40000)
    answer = SessionDescription.parse(
        "v=0\r\no=- 5 5 IN IP4 10.20.0.5\r\ns=Asterisk\r\nc=IN IP4 10.20.0.5\r\nt=0 0\r\n"
        "m=audio 17000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:40\r\na=recvonly\r\n"
    )
    neg = negotiated_from_answer(offer, answer)
    assert (neg.codec, neg.payload_type, neg.ptime) == ("PCMU", 0, 40)
    assert neg.direction is Direction.SENDONLY


@pytest.mark.parametrize(
    ("media", "message"),
    [
        ("", "SDP answer has 0 m-lines, the offer had 1"),
        ("m=audio 0 RTP/AVP 0\r\n", "SDP answer rejected every audio stream"),
        (
            "m=audio 17000 RTP/AVP 18\r\n",
            "SDP answer m-line 0 accepts none of the codecs we offered",
        ),
        ("m=video 17000 RTP/AVP 96\r\n", "SDP answer m-line 0 is video, the offer's is audio"),
    ],
)
def test_negotiated_from_bad_answer(media: str, message: str) -> None:
    offer = build_offer("192.0.2.1", 40000)
    answer = SessionDescription.parse(
        "v=0\r\no=- 5 5 IN IP4 10.20.0.5\r\ns=-\r\nc=IN IP4 10.20.0.5\r\nt=0 0\r\n" + media
    )
    with pytest.raises(IncompatibleMedia) as info:
        negotiated_from_answer(offer, answer)
    assert str(info.value) == message
