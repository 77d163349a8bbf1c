"""Registrar binding store, RFC 3261 §10.3, sans-IO.

Theory of operation
-------------------
The transport layer authenticates a REGISTER (``sip.auth``), maps its To URI to an
address-of-record (AOR) and calls ``SipRegistrar.register`` with the Contact values,
the Expires header, Call-ID, CSeq, the source address and ``now``. The registrar
applies RFC 3261 §10.3 steps 6-8 atomically (every binding change is committed or
none is) and returns a ``RegisterResult`` that says which response to send and
carries the Contact values (with their remaining ``expires``) for the 200 OK.

Bindings expire on their own: ``get_timer()`` tells when the next one ends and
``handle_timer(now)`` / ``expire(now)`` removes it. Every addition and removal is
reported through ``next_event()`` (``BindingAdded`` / ``BindingRemoved``) so the
application can mark agents' phones online or offline.

Each binding remembers where its REGISTER came from (``BindingSource``: transport,
ip, port). Behind NAT the Contact URI is unreachable, so requests for the AOR are
routed to that source instead: a lite form of RFC 5626 flow reuse. When the Contact
carries ``+sip.instance`` (RFC 5626 §4.1), the instance identifies the binding, so a
phone that reboots onto a new port replaces its old binding instead of adding one.

Persistence is the application's job: ``to_rows()`` returns plain tuples laid out as
``ROW_FIELDS`` and ``load_rows(rows, now)`` restores them. ``expires_at`` is in the
caller's clock; drive the registrar with wall-clock time if the rows must outlive a
restart.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from .events import SipEvent
from .exceptions import LocalProtocolError

__all__ = [
    "ROW_FIELDS",
    "Binding",
    "BindingAdded",
    "BindingRemoved",
    "BindingSource",
    "ContactSpec",
    "RegisterResult",
    "SipRegistrar",
    "default_uri_key",
]

#: Column names of the tuples ``to_rows`` returns.
ROW_FIELDS: tuple[str, ...] = (
    "aor",
    "uri",
    "expires_at",
    "q",
    "call_id",
    "cseq",
    "transport",
    "ip",
    "port",
    "instance",
    "registered_at",
)
#: RFC 3261 §8.1.1.5: CSeq sequence numbers are below 2**31.
MAX_CSEQ = 2**31 - 1
#: Default bound on contacts per AOR (phones, softphones, the browser).
MAX_CONTACTS_PER_AOR = 10

Row = tuple[
    str, str, float, float | None, str, int, str | None, str | None, int | None, str | None, float
]


def default_uri_key(uri: str) -> str:
    """A comparison key for Contact URIs, approximating RFC 3261 §19.1.4.

    Scheme and host are case-insensitive, the user part is not; parameters are kept
    as written. Pass a stricter function (built on the SIP URI parser) as
    ``SipRegistrar(uri_key=...)`` when available.

    :param uri: a Contact URI, with or without angle brackets.
    """
    text = uri.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    scheme, colon, rest = text.partition(":")
    if not colon:
        return text.lower()
    user, at, host = rest.rpartition("@")
    cut = min((i for i in (host.find(";"), host.find("?")) if i >= 0), default=len(host))
    host = host[:cut].lower() + host[cut:]
    return f"{scheme.lower()}:{user}{at}{host}"


@dataclass(frozen=True, slots=True)
class BindingSource:
    """Where a REGISTER came from: the flow requests to the AOR go back over."""

    transport: str
    """``udp``, ``tcp``, ``tls``, ``ws`` or ``wss``."""
    ip: str
    """Source IP address as seen by our socket."""
    port: int
    """Source port as seen by our socket."""


@dataclass(frozen=True, slots=True)
class ContactSpec:
    """One Contact header value of a REGISTER, already parsed by the caller."""

    uri: str
    """The Contact URI (without display name or header params)."""
    expires: int | None = None
    """The Contact's ``expires`` parameter, if any."""
    q: float | None = None
    """The Contact's ``q`` parameter (0-1), if any."""
    wildcard: bool = False
    """``Contact: *`` (RFC 3261 §10.2.2: remove all bindings)."""
    instance: str | None = None
    """The ``+sip.instance`` parameter (RFC 5626 §4.1), if any."""

    @classmethod
    def star(cls) -> ContactSpec:
        """The ``Contact: *`` wildcard."""
        return cls("*", wildcard=True)


@dataclass(frozen=True, slots=True)
class Binding:
    """A registered contact of an AOR."""

    aor: str
    """The address-of-record."""
    uri: str
    """The Contact URI to target."""
    expires_at: float
    """When the binding ends, in the caller's clock."""
    q: float | None
    """Preference (RFC 3261 §10.2.1.2); ``None`` counts as 1.0."""
    call_id: str
    """Call-ID of the REGISTER that last refreshed the binding."""
    cseq: int
    """CSeq number of that REGISTER."""
    source: BindingSource | None
    """Where that REGISTER came from."""
    instance: str | None = None
    """RFC 5626 instance id, if the UA sent one."""
    registered_at: float = 0.0
    """When the binding was first created."""

    def remaining(self, now: float) -> int:
        """Whole seconds left, rounded up, never negative (the 200 OK ``expires``).

        :param now: current time, seconds.
        """
        return max(0, math.ceil(self.expires_at - now - 1e-9))

    def contact_value(self, now: float) -> str:
        """The Contact header value for the 200 OK (RFC 3261 §10.3 step 8).

        :param now: current time, seconds.
        """
        value = f"<{self.uri}>;expires={self.remaining(now)}"
        if self.q is not None:
            value += f";q={_format_q(self.q)}"
        if self.instance is not None:
            value += f';+sip.instance="{self.instance}"'
        return value


def _format_q(q: float) -> str:
    # RFC 3261 §25.1: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
    text = f"{q:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


@dataclass(frozen=True, slots=True)
class RegisterResult:
    """What to answer to a REGISTER."""

    status: int
    """SIP status code: 200, 400, 403, 423 or 500."""
    reason: str
    """Reason phrase."""
    bindings: tuple[Binding, ...] = ()
    """All current bindings of the AOR (after the update when it succeeded)."""
    contact_values: tuple[str, ...] = ()
    """Contact header values for a 200 OK, each with its remaining expires."""
    min_expires: int | None = None
    """Value of the Min-Expires header a 423 must carry (RFC 3261 §10.3 step 7)."""
    detail: str = ""
    """Explanation for logs (and a Warning header, if the caller wants)."""

    @property
    def ok(self) -> bool:
        """Whether the request succeeded (2xx)."""
        return 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class BindingAdded(SipEvent):
    """A new contact was bound to an AOR."""

    binding: Binding
    """The new binding."""


@dataclass(frozen=True, slots=True)
class BindingRemoved(SipEvent):
    """A contact was unbound from an AOR."""

    binding: Binding
    """The binding as it was."""
    reason: str
    """``unregistered``, ``expired``, ``evicted`` or ``removed`` (by an operator)."""


def _sort_key(b: Binding) -> tuple[float, float]:
    # Highest q first, then the most recently refreshed.
    return (-(b.q if b.q is not None else 1.0), -b.expires_at)


class SipRegistrar:
    """In-memory location service fed by REGISTER requests (RFC 3261 §10.3).

    :param min_expires: shortest interval accepted; shorter non-zero ones get 423.
    :param max_expires: longest interval granted; longer ones are shortened.
    :param default_expires: interval when neither Contact nor Expires says.
    :param max_contacts: bindings kept per AOR; the oldest are evicted beyond it.
    :param uri_key: Contact URI comparison key (RFC 3261 §19.1.4).
    """

    def __init__(
        self,
        min_expires: int = 60,
        max_expires: int = 3600,
        default_expires: int = 3600,
        *,
        max_contacts: int = MAX_CONTACTS_PER_AOR,
        uri_key: Callable[[str], str] = default_uri_key,
    ) -> None:
        # RFC 3261 §10.3 step 7: a registrar may only refuse intervals under one hour.
        if not 0 < min_expires <= 3600:
            raise LocalProtocolError(f"min_expires must be 1-3600, got {min_expires}")
        if not min_expires <= default_expires <= max_expires:
            raise LocalProtocolError("need min_expires <= default_expires <= max_expires")
        if max_contacts < 1:
            raise LocalProtocolError("max_contacts must be positive")
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self.max_contacts = max_contacts
        self._uri_key = uri_key
        # aor → binding key → binding
        self._aors: dict[str, dict[str, Binding]] = {}
        # (expires_at, aor, key); entries may be outdated, checked on pop.
        self._heap: list[tuple[float, str, str]] = []
        self._events: deque[SipEvent] = deque()

    # -- helpers

    def _key(self, uri: str, instance: str | None) -> str:
        return f"instance:{instance}" if instance is not None else self._uri_key(uri)

    def _result(
        self,
        aor: str,
        now: float,
        status: int = 200,
        reason: str = "OK",
        detail: str = "",
        min_expires: int | None = None,
    ) -> RegisterResult:
        bindings = tuple(self.lookup(aor, now))
        return RegisterResult(
            status,
            reason,
            bindings,
            tuple(b.contact_value(now) for b in bindings) if 200 <= status < 300 else (),
            min_expires,
            detail,
        )

    def _expire_aor(self, aor: str, now: float) -> None:
        table = self._aors.get(aor)
        if not table:
            return
        for key, binding in list(table.items()):
            if binding.expires_at <= now:
                del table[key]
                self._events.append(BindingRemoved(binding, "expired"))
        if not table:
            del self._aors[aor]

    # -- the REGISTER verb

    def register(
        self,
        aor: str,
        contacts: Sequence[ContactSpec],
        call_id: str,
        cseq: int,
        now: float,
        *,
        header_expires: int | None = None,
        source: BindingSource | None = None,
    ) -> RegisterResult:
        """Apply a REGISTER to the bindings of ``aor`` (RFC 3261 §10.3 steps 6-8).

        :param aor: the canonical address-of-record (from the To header).
        :param contacts: the Contact values; empty for a query.
        :param call_id: the Call-ID header.
        :param cseq: the CSeq number.
        :param now: current time, seconds.
        :param header_expires: the Expires header value, if present.
        :param source: where the request came from (stored for NAT traversal).
        :return: the status to answer and, for 2xx, the Contact values.
        """
        if not call_id:
            return self._result(aor, now, 400, "Bad Request", "empty Call-ID")
        if not 0 <= cseq <= MAX_CSEQ:
            return self._result(aor, now, 400, "Bad Request", f"CSeq {cseq} out of range")
        if header_expires is not None and header_expires < 0:
            return self._result(aor, now, 400, "Bad Request", "negative Expires")
        self._expire_aor(aor, now)
        # Step 6: no Contact means a query.
        if not contacts:
            return self._result(aor, now)
        table = self._aors.get(aor, {})

        if any(c.wildcard for c in contacts):
            # Step 6: "*" only alone and with Expires: 0, else 400.
            if len(contacts) != 1 or header_expires != 0:
                return self._result(
                    aor, now, 400, "Bad Request", "Contact: * needs Expires: 0 and no other Contact"
                )
            for binding in table.values():
                if binding.call_id == call_id and cseq <= binding.cseq:
                    return self._result(
                        aor,
                        now,
                        500,
                        "Server Internal Error",
                        f"CSeq {cseq} is not above {binding.cseq}",
                    )
            for binding in table.values():
                self._events.append(BindingRemoved(binding, "unregistered"))
            self._aors.pop(aor, None)
            return self._result(aor, now)

        # Step 7, first pass: intervals.
        intervals: list[int] = []
        for c in contacts:
            expires = c.expires if c.expires is not None else header_expires
            if expires is None:
                expires = self.default_expires
            if expires < 0:
                return self._result(aor, now, 400, "Bad Request", f"negative expires for {c.uri}")
            if c.q is not None and not 0.0 <= c.q <= 1.0:
                return self._result(aor, now, 400, "Bad Request", f"q={c.q} out of range")
            if 0 < expires < self.min_expires:
                # RFC 3261 §10.3 step 7: 423 with Min-Expires.
                return self._result(
                    aor,
                    now,
                    423,
                    "Interval Too Brief",
                    f"expires {expires} is below {self.min_expires}",
                    min_expires=self.min_expires,
                )
            intervals.append(min(expires, self.max_expires))

        # Step 7, second pass: tentative updates on a copy, committed only if all succeed.
        pending = dict(table)
        added: list[Binding] = []
        removed: list[tuple[Binding, str]] = []
        touched: set[str] = set()
        for c, expires in zip(contacts, intervals, strict=True):
            key = self._key(c.uri, c.instance)
            existing = pending.get(key)
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                # "If not, the update MUST be aborted and the request fails."
                return self._result(
                    aor,
                    now,
                    500,
                    "Server Internal Error",
                    f"CSeq {cseq} is not above {existing.cseq} for {c.uri}",
                )
            if expires == 0:
                if existing is not None:
                    del pending[key]
                    removed.append((existing, "unregistered"))
                    touched.discard(key)
                continue
            binding = Binding(
                aor=aor,
                uri=c.uri,
                expires_at=now + expires,
                q=c.q,
                call_id=call_id,
                cseq=cseq,
                source=source,
                instance=c.instance,
                registered_at=existing.registered_at if existing is not None else now,
            )
            if existing is None:
                added.append(binding)
            elif existing.uri != binding.uri:
                # Same instance, new URI: the old contact is gone.
                removed.append((existing, "unregistered"))
                added.append(binding)
            pending[key] = binding
            touched.add(key)

        if len(touched) > self.max_contacts:
            return self._result(
                aor,
                now,
                403,
                "Forbidden",
                f"more than {self.max_contacts} contacts in one REGISTER",
            )
        # Evict the oldest bindings this request did not refresh.
        while len(pending) > self.max_contacts:
            victim = min(
                (k for k in pending if k not in touched),
                key=lambda k: (pending[k].registered_at, pending[k].expires_at),
            )
            removed.append((pending.pop(victim), "evicted"))

        # Commit.
        if pending:
            self._aors[aor] = pending
        else:
            self._aors.pop(aor, None)
        for binding, why in removed:
            if binding in added:
                continue
            self._events.append(BindingRemoved(binding, why))
        for binding in added:
            if self._aors.get(aor, {}).get(self._key(binding.uri, binding.instance)) is binding:
                self._events.append(BindingAdded(binding))
        for key in touched:
            heapq.heappush(self._heap, (pending[key].expires_at, aor, key))
        return self._result(aor, now)

    # -- queries

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """Live bindings of ``aor``, highest q first, then the most recently refreshed.

        :param aor: the address-of-record.
        :param now: current time, seconds.
        """
        table = self._aors.get(aor, {})
        return sorted((b for b in table.values() if b.expires_at > now), key=_sort_key)

    def aors(self) -> list[str]:
        """AORs that have at least one binding (live or not yet expired by the timer)."""
        return sorted(self._aors)

    def remove(self, aor: str, uri: str | None = None) -> list[Binding]:
        """Remove bindings by hand (operator action, or a flow that failed).

        :param aor: the address-of-record.
        :param uri: only the binding with this Contact URI; ``None`` for all.
        :return: the removed bindings.
        """
        table = self._aors.get(aor, {})
        wanted = None if uri is None else self._uri_key(uri)
        gone = [b for b in table.values() if wanted is None or self._uri_key(b.uri) == wanted]
        for b in gone:
            del table[self._key(b.uri, b.instance)]
            self._events.append(BindingRemoved(b, "removed"))
        if not table:
            self._aors.pop(aor, None)
        return gone

    # -- timers and events

    def get_timer(self) -> float | None:
        """When the next binding expires, or ``None`` when there is none."""
        while self._heap:
            expires_at, aor, key = self._heap[0]
            binding = self._aors.get(aor, {}).get(key)
            if binding is not None and binding.expires_at == expires_at:
                return expires_at
            heapq.heappop(self._heap)
        return None

    def expire(self, now: float) -> list[Binding]:
        """Drop bindings whose time has come.

        :param now: current time, seconds.
        :return: the expired bindings, earliest first.
        """
        gone: list[Binding] = []
        while self._heap and self._heap[0][0] <= now:
            expires_at, aor, key = heapq.heappop(self._heap)
            table = self._aors.get(aor)
            binding = table.get(key) if table is not None else None
            if table is None or binding is None or binding.expires_at != expires_at:
                continue
            del table[key]
            if not table:
                del self._aors[aor]
            gone.append(binding)
            self._events.append(BindingRemoved(binding, "expired"))
        return gone

    def handle_timer(self, now: float) -> None:
        """Timer callback: same as ``expire(now)`` (aioquic verb).

        :param now: current time, seconds.
        """
        self.expire(now)

    def next_event(self) -> SipEvent | None:
        """Pop the next ``BindingAdded``/``BindingRemoved`` event, or ``None``."""
        return self._events.popleft() if self._events else None

    # -- persistence

    def to_rows(self) -> list[Row]:
        """All bindings as plain tuples laid out as ``ROW_FIELDS``, for SQLite."""
        rows: list[Row] = []
        for aor in sorted(self._aors):
            for b in sorted(self._aors[aor].values(), key=_sort_key):
                src = b.source
                rows.append(
                    (
                        b.aor,
                        b.uri,
                        b.expires_at,
                        b.q,
                        b.call_id,
                        b.cseq,
                        src.transport if src else None,
                        src.ip if src else None,
                        src.port if src else None,
                        b.instance,
                        b.registered_at,
                    )
                )
        return rows

    def load_rows(self, rows: Iterable[Sequence[object]], now: float) -> int:
        """Restore bindings saved by ``to_rows``, skipping those expired at ``now``.

        Loaded bindings replace any in memory with the same key; no events are emitted.

        :param rows: tuples laid out as ``ROW_FIELDS``.
        :param now: current time, seconds, in the clock of the saved ``expires_at``.
        :return: how many bindings were loaded.
        :raises LocalProtocolError: a row has the wrong shape or types.
        """
        loaded = 0
        for index, row in enumerate(rows):
            binding = self._binding_from_row(index, row)
            if binding.expires_at <= now:
                continue
            key = self._key(binding.uri, binding.instance)
            self._aors.setdefault(binding.aor, {})[key] = binding
            heapq.heappush(self._heap, (binding.expires_at, binding.aor, key))
            loaded += 1
        return loaded

    @staticmethod
    def _binding_from_row(index: int, row: Sequence[object]) -> Binding:
        if len(row) != len(ROW_FIELDS):
            raise LocalProtocolError(
                f"registrar row {index}: expected {len(ROW_FIELDS)} fields, got {len(row)}"
            )
        aor, uri, expires_at, q, call_id, cseq, transport, ip, port, instance, reg_at = row

        def bad(name: str) -> LocalProtocolError:
            return LocalProtocolError(f"registrar row {index}: bad {name}")

        if not isinstance(aor, str) or not aor:
            raise bad("aor")
        if not isinstance(uri, str) or not uri:
            raise bad("uri")
        if not isinstance(expires_at, int | float) or isinstance(expires_at, bool):
            raise bad("expires_at")
        if q is not None and (not isinstance(q, int | float) or not 0 <= q <= 1):
            raise bad("q")
        if not isinstance(call_id, str):
            raise bad("call_id")
        if not isinstance(cseq, int) or isinstance(cseq, bool) or not 0 <= cseq <= MAX_CSEQ:
            raise bad("cseq")
        if instance is not None and not isinstance(instance, str):
            raise bad("instance")
        if not isinstance(reg_at, int | float) or isinstance(reg_at, bool):
            raise bad("registered_at")
        source: BindingSource | None = None
        if transport is not None or ip is not None or port is not None:
            if (
                not isinstance(transport, str)
                or not isinstance(ip, str)
                or not isinstance(port, int)
                or not 0 < port < 65536
            ):
                raise bad("source")
            source = BindingSource(transport, ip, port)
        return Binding(
            aor,
            uri,
            float(expires_at),
            None if q is None else float(q),
            call_id,
            cseq,
            source,
            instance,
            float(reg_at),
        )

    def refresh_source(self, aor: str, uri: str, source: BindingSource) -> Binding | None:
        """Point an existing binding at a new source (e.g. after a keep-alive on a new port).

        :param aor: the address-of-record.
        :param uri: the Contact URI of the binding.
        :param source: the new source.
        :return: the updated binding, or ``None`` when there is none.
        """
        table = self._aors.get(aor, {})
        wanted = self._uri_key(uri)
        for key, b in table.items():
            if self._uri_key(b.uri) == wanted:
                table[key] = replace(b, source=source)
                return table[key]
        return None
