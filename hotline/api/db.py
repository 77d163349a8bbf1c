"""The HTTP API's own database connection, used from one worker thread.

Why this exists: an export of a year of CDRs or a recordings search must not stall SIP
and media control, which share the control process's event loop and its
:class:`~hotline.storage.Storage` connection. The API therefore opens a second
connection to the same ``hotline.db`` (SQLite in WAL mode lets readers run beside the
writer) and runs every query on a single worker thread: the event loop only awaits.
One thread is enough: ``Storage`` serialises calls on its connection anyway, and the
thread bounds how much of the machine API reads can take.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

from recorder.index import RecordingIndex

from ..storage import Storage

__all__ = ["ApiDatabase"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class ApiDatabase:
    """A :class:`Storage` and a :class:`RecordingIndex` on it, driven from a thread.

    :param data_dir: the site's data directory (``hotline.db`` is created if missing).
    """

    def __init__(self, data_dir: Path) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="hotline-api-db")
        self.storage = Storage.open(data_dir)
        self.index = RecordingIndex(self.storage)

    async def run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run ``fn(*args, **kwargs)`` (a storage or index call) on the database thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Wait for running queries, then close the connection."""
        self._executor.shutdown(wait=True)
        self.storage.close()
