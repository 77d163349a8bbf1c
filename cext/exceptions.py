"""Exceptions raised by the cext façades (subclass built-ins, as aioquic's BufferReadError)."""


class MediaError(Exception):
    """Base of media-layer errors, carrying what the user needs to fix it."""


class JitterBufferError(ValueError):
    """A jitter buffer was given an impossible configuration or packet."""


class RtpParseError(ValueError):
    """An RTP/RTCP packet could not be parsed."""
