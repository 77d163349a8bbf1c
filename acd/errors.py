"""The ACD's one exception type (STYLE: one error tree per layer)."""

from __future__ import annotations

__all__ = ["AcdError"]


class AcdError(Exception):
    """A request the ACD cannot carry out; the message says why (unknown agent or queue,
    a state that does not allow it). The API answers it with 404 or 409."""

    #: HTTP status the API answers with.
    status = 409
