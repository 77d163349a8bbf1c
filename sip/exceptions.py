"""The one error tree of the SIP layer.

Parsing code raises; the transaction/transport layer catches, answers with
``status_hint`` where RFC 3261 allows a response, and emits an event. A
``ProtocolError`` never reaches an asyncio callback.
"""

from __future__ import annotations


class SipError(Exception):
    """Base of every error raised by ``sip/``."""


class ProtocolError(SipError):
    """A message or action violates the protocol.

    :param msg: what is wrong, phrased for the person who has to fix it.
    :param status_hint: the SIP status code to answer with, if an answer is allowed.
    """

    status_hint: int = 400

    def __init__(self, msg: str, status_hint: int | None = None) -> None:
        super().__init__(msg)
        if status_hint is not None:
            self.status_hint = status_hint


class LocalProtocolError(ProtocolError):
    """We were asked to do something the protocol forbids (a bug on our side)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids.

    Like h11, it cannot be instantiated directly: raise a subclass or
    ``MalformedMessage``.
    """

    def __new__(cls, *args: object, **kwargs: object) -> RemoteProtocolError:
        if cls is RemoteProtocolError:
            raise TypeError("raise a subclass of RemoteProtocolError, e.g. MalformedMessage")
        return super().__new__(cls)


class MalformedMessage(RemoteProtocolError):
    """The bytes are not a SIP message (RFC 3261 §25 grammar)."""

    status_hint = 400


class MessageTooLarge(RemoteProtocolError):
    """A message or stream buffer exceeded its size cap."""

    status_hint = 513


class UnsupportedExtension(RemoteProtocolError):
    """The request requires an extension we do not support (Require:)."""

    status_hint = 420


class CallTransactionDoesNotExist(RemoteProtocolError):
    """No dialog or transaction matches the request."""

    status_hint = 481


class AuthError(SipError):
    """Digest authentication could not be performed (bad challenge, unknown algorithm)."""


class MalformedSdp(RemoteProtocolError):
    """An SDP body violates the RFC 8866 grammar (answer 400)."""

    status_hint = 400


class IncompatibleMedia(RemoteProtocolError):
    """An SDP offer or answer cannot be negotiated (RFC 3264 §6: answer 488)."""

    status_hint = 488


class MalformedAuthHeader(RemoteProtocolError):
    """A WWW-Authenticate/Authorization value violates RFC 7616/3261 §25 grammar."""

    status_hint = 400


class RequestOutOfOrder(RemoteProtocolError):
    """An in-dialog request's CSeq is below the remote sequence number (RFC 3261
    §12.2.2: answer 500)."""

    status_hint = 500
