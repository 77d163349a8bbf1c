"""Protocol framing and request validation (sans-IO)."""

import pytest

from media.protocol import FrameDecoder, ProtocolError, encode_frame, validate_request


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_frames_roundtrip_drip_fed(chunk):
    msgs = [{"id": i, "op": "ping", "x": "é" * i} for i in range(5)] + [{"event": "dtmf"}]
    data = b"".join(encode_frame(m) for m in msgs)
    dec = FrameDecoder()
    out = []
    for i in range(0, len(data), chunk):
        out += dec.feed(memoryview(data)[i:i + chunk])
    assert out == msgs


def test_oversized_and_garbage_frames():
    with pytest.raises(ProtocolError, match="exceeds"):
        FrameDecoder(max_frame=10).feed(b"\x00\x00\x01\x00")
    with pytest.raises(ProtocolError, match="not a msgpack map"):
        FrameDecoder().feed(b"\x00\x00\x00\x01\x05")


def test_defaults_and_errors_name_the_field():
    rid, op, args = validate_request({"id": 3, "op": "create_endpoint", "codec": "pcma"})
    assert (rid, op, args["pt"], args["direction"], args["te_pt"]) == (3, "create_endpoint", 8,
                                                                        "sendrecv", None)
    cases = [
        ({"op": "ping"}, "id:"),
        ({"id": 1}, "op:"),
        ({"id": 1, "op": "nope"}, "op: unknown operation 'nope'"),
        ({"id": 1, "op": "create_endpoint", "codec": "opus"}, "codec:"),
        ({"id": 1, "op": "create_endpoint", "remote_ip": "1.2.3"}, "remote_ip:"),
        ({"id": 1, "op": "create_endpoint", "remote_ip": "1.2.3.4"}, "remote_port:"),
        ({"id": 1, "op": "create_endpoint", "te_pt": 300}, "te_pt: 300 is outside"),
        ({"id": 1, "op": "create_endpoint", "vad": 1}, "vad: expected true or false"),
        ({"id": 1, "op": "create_endpoint", "bogus": 1}, "bogus: unknown argument"),
        ({"id": 1, "op": "play", "endpoint": 1}, "source: required by play"),
        ({"id": 1, "op": "set_room", "room": "r", "endpoints": [1, "x"]}, "endpoints[1]:"),
        ({"id": 1, "op": "set_room", "room": "r", "endpoints": [1], "hears": {"a": []}},
         "hears: key 'a'"),
        ({"id": 1, "op": "dtmf_send", "endpoint": 1, "digits": "1", "duration_ms": 5},
         "duration_ms:"),
    ]
    for msg, err in cases:
        with pytest.raises(ProtocolError, match=err.replace("[", r"\[").replace("(", r"\(")):
            validate_request(msg)
