"""atheris harness for the SIP parser and stream framer (see fuzz/README.md).

Only a ProtocolError subclass may escape ``SipMessage.parse`` and the lazily parsed
properties; anything else is a crash that atheris reports with the input that caused it.
This module imports atheris only when run as a script, so tests can import ``one_input``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sip.exceptions import ProtocolError  # noqa: E402
from sip.message import SipMessage, SipRequest  # noqa: E402
from sip.transport_stream import SipStreamFramer  # noqa: E402

PROPERTIES = ("vias", "cseq", "from_", "to", "contacts", "max_forwards", "expires", "date")


def _exercise(data: bytes, stream: bool) -> None:
    try:
        msg = SipMessage.parse(data, stream=stream)
    except ProtocolError:
        return
    for name in PROPERTIES:
        try:
            getattr(msg, name)
        except ProtocolError:
            pass
    if isinstance(msg, SipRequest):
        try:
            msg.uri  # noqa: B018
        except ProtocolError:
            pass
    again = SipMessage.parse(bytes(msg), stream=stream)  # accepted => re-parses
    assert again.cseq == msg.cseq and again.body == msg.body


def one_input(data: bytes) -> None:
    """Feed one fuzzer input to the datagram parser, the stream parser and the framer."""
    _exercise(data, stream=False)
    _exercise(data, stream=True)
    framer = SipStreamFramer(max_message_size=4096)
    step = 1 + (data[0] % 64 if data else 0)
    for i in range(0, len(data), step):
        if framer.failed:
            break
        for item in framer.feed(data[i : i + step]):
            if isinstance(item, bytes):
                _exercise(item, stream=True)


def main() -> None:
    import atheris  # only here: not a dependency of hotline

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
