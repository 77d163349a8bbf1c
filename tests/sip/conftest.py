"""Shared fixtures for the SIP tests.

``loop`` runs each transport test on both the stdlib asyncio loop and uvloop (STYLE 15,
uvloop's ``UVTestCase``/``AIOTestCase`` idea). Tests are plain functions that call
``run(coro)``, which runs it on that loop bounded by a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


@pytest.fixture(params=["asyncio", "uvloop"])
def loop(request: pytest.FixtureRequest) -> Iterator[asyncio.AbstractEventLoop]:
    """A fresh event loop of each kind, closed (with its leftovers cancelled) afterwards."""
    import uvloop  # imported here so the other sip tests never depend on it

    lp = uvloop.new_event_loop() if request.param == "uvloop" else asyncio.new_event_loop()
    try:
        yield lp
    finally:
        pending = [t for t in asyncio.all_tasks(lp) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            lp.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        lp.run_until_complete(lp.shutdown_asyncgens())
        lp.close()


@pytest.fixture
def run(loop: asyncio.AbstractEventLoop) -> Callable[..., Any]:
    """``run(coro, timeout=10)``: run a coroutine on ``loop``, bounded by a timeout."""

    def _run(coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))

    return _run


class Node:
    """A real ``SipStack`` behind a ``SipTransportManager``, with a test-only responder.

    The responder answers 200 to OPTIONS (``make_response``) and records every event;
    ``await node.event(kind)`` waits for one. Test code, not a mock: the stack is real.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, **manager_kwargs: Any) -> None:
        # imported lazily: this conftest is shared with the sans-IO tests of sip/
        from sip.stack import SipStack
        from sip.transport import SipTransportManager

        self.loop = loop
        self.stack = SipStack()
        self.manager = SipTransportManager(
            self.stack, loop, on_events=self.on_events, **manager_kwargs
        )
        self.events: list[Any] = []
        self.answer = True
        self._changed = asyncio.Event()

    def on_events(self) -> None:
        from sip.events import RequestReceived
        from sip.message import make_response

        while (ev := self.stack.next_event()) is not None:
            self.events.append(ev)
            if (
                self.answer
                and isinstance(ev, RequestReceived)
                and ev.key is not None
                and ev.request.method == "OPTIONS"
            ):
                resp = make_response(ev.request, 200, to_tag="hotline-test")
                self.stack.send_response(resp, self.loop.time())
        self._changed.set()

    async def event(self, kind: type, count: int = 1, timeout: float = 5.0) -> list[Any]:
        """Wait until ``count`` events of ``kind`` were recorded; return them."""

        async def wait() -> list[Any]:
            while True:
                got = [e for e in self.events if isinstance(e, kind)]
                if len(got) >= count:
                    return got
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)


@pytest.fixture
def make_node(loop: asyncio.AbstractEventLoop) -> Iterator[Callable[..., Node]]:
    """Factory of :class:`Node`; every node is closed after the test."""
    nodes: list[Node] = []

    def factory(**kwargs: Any) -> Node:
        node = Node(loop, **kwargs)
        nodes.append(node)
        return node

    yield factory
    for node in nodes:
        node.manager.close()
        loop.run_until_complete(asyncio.wait_for(node.manager.wait_closed(), 5))


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed EC certificate for 127.0.0.1 (SAN IP), generated with openssl."""
    import subprocess

    d = tmp_path_factory.mktemp("tls")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


@pytest.fixture
def server_ctx(tls_cert: tuple[str, str]) -> Any:
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*tls_cert)
    return ctx


@pytest.fixture
def client_ctx(tls_cert: tuple[str, str]) -> Any:
    """A verifying client context that trusts the test certificate."""
    import ssl

    ctx = ssl.create_default_context(cafile=tls_cert[0])
    return ctx
