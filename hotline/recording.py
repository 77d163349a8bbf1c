"""Call recording for call control: one stereo recording per contact (caller left, the
other side right), indexed, transcoded after the call, repaired after a crash.

The pieces live elsewhere: the media worker writes the live WAV (``MediaPool.record``),
:mod:`recorder` repairs, indexes, transcodes and expires files. This module is the glue
the server calls per call: :meth:`CallRecorder.begin` when the caller is answered (the
recording id goes into the CDR at once), :meth:`CallRecorder.attach` to start or
re-point the worker's recording, :meth:`CallRecorder.stop` at the end; the worker's
``recording_done`` event finishes the index row and queues the transcode.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from media.client import EndpointHandle, MediaError, MediaPool, RecordingHandle
from media.events import RecordingDone
from recorder.exceptions import RecorderError
from recorder.index import RecordingIndex
from recorder.naming import recordings_dir
from recorder.recovery import Recovered, recover
from recorder.retention import apply_retention
from recorder.transcode import Transcoder

from .config import RecordingConfig
from .storage import Storage

logger = logging.getLogger("hotline.recording")

RETENTION_EVERY = 3600.0  # seconds between retention sweeps


class CallRecorder:
    """Recordings of live calls.

    :param storage: the site database (the index shares its connection).
    :param data_dir: the site's data directory (``recordings/`` below it).
    :param config: ``[recording]``.
    :param pool: the media workers.
    :param spawn: runs a coroutine as a tracked task (the server's).
    """

    def __init__(self, storage: Storage, data_dir: Path, config: RecordingConfig,
                 pool: MediaPool, spawn: Callable[..., object]) -> None:
        self.storage = storage
        self.data_dir = Path(data_dir)
        self.config = config
        self.pool = pool
        self.index = RecordingIndex(storage)
        self._spawn = spawn
        self._transcoder: Transcoder | None = None
        self._by_handle: dict[tuple[int, int], str] = {}
        """(worker, worker's recording id) -> our recording id, while live."""
        self.handles: dict[str, RecordingHandle] = {}
        """Our recording id -> the worker's recording, while live."""
        self._stopped: set[str] = set()

    # -- server lifecycle ----------------------------------------------------------
    def recover(self) -> list[Recovered]:
        """Repair what a crash left (before the media workers start)."""
        return recover(self.data_dir, self.storage)

    def after_start(self) -> None:
        """Transcode the backlog (recovered or never transcoded) in the background."""
        if self.config.format != "wav":
            pending = self.index.pending_transcode()
            if pending:
                logger.info("transcode_backlog", extra={"recordings": len(pending)})
            for rec in pending:
                self._spawn(self._transcode(rec.id))

    def sweep_retention(self, now: datetime | None = None) -> int:
        """Delete recordings older than ``retention_days``; returns how many."""
        removed = apply_retention(self.data_dir, self.storage, self.config.retention_days,
                                  now or datetime.now(UTC))
        if removed:
            logger.info("retention", extra={"removed": len(removed)})
        return len(removed)

    async def close(self) -> None:
        if self._transcoder is not None:
            await self._transcoder.close()

    # -- per call ------------------------------------------------------------------
    def begin(self, call_id: str, start: datetime, *, caller: str, callee: str,
              queue: str | None = None, agents: Sequence[str] = ()) -> str:
        """Index a new live recording for a call and return its id (for the CDR)."""
        rec = self.index.start(call_id, start, caller=caller, callee=callee, queue=queue,
                               agents=agents)
        return rec.id

    async def attach(self, rec_id: str, left: Sequence[EndpointHandle],
                     right: Sequence[EndpointHandle]) -> None:
        """Start the worker's recording of ``rec_id`` or change whose audio it takes
        (the agent side after a transfer: still one file)."""
        if rec_id in self._stopped:
            return
        handle = self.handles.get(rec_id)
        if handle is not None:
            await self.pool.record_update(handle, left, right)
            return
        rec = self.index.get(rec_id)
        assert rec is not None
        path = recordings_dir(self.data_dir) / rec.path
        handle = await self.pool.record(str(path), left, right)
        self.handles[rec_id] = handle
        self._by_handle[(handle.worker, handle.id)] = rec_id
        if rec_id in self._stopped:  # the call ended while we waited for the worker
            await self._stop_handle(rec_id)

    def add_agent(self, rec_id: str, agent_id: str, when: datetime) -> None:
        self.index.add_agent(rec_id, agent_id, when)

    async def pause(self, rec_id: str, paused: bool) -> None:
        """Pause (card details being read out) or resume a live recording."""
        handle = self.handles.get(rec_id)
        if handle is None:
            raise MediaError(f"recording: {rec_id} is not live")
        if paused:
            await self.pool.record_pause(handle)
        else:
            await self.pool.record_resume(handle)

    async def stop(self, rec_id: str) -> None:
        """The call ended: close the file (``recording_done`` finishes the row)."""
        self._stopped.add(rec_id)
        if rec_id in self.handles:
            await self._stop_handle(rec_id)

    async def _stop_handle(self, rec_id: str) -> None:
        handle = self.handles.get(rec_id)
        if handle is None:
            return
        try:
            await self.pool.record_stop(handle)
        except MediaError as exc:  # the worker died: recovery repairs the file
            logger.warning("recording_stop_failed", extra={"recording": rec_id,
                                                           "error": str(exc)})

    def on_recording_done(self, event: RecordingDone) -> None:
        """The worker closed a recording's file: finish the row, queue the transcode."""
        rec_id = self._by_handle.pop((event.worker, event.recording), None)
        if rec_id is None:
            return
        self.handles.pop(rec_id, None)
        self._stopped.discard(rec_id)
        rec = self.index.get(rec_id)
        if rec is None:
            return
        try:
            self.index.finish(rec_id, datetime.now(UTC), event.seconds)
        except RecorderError as exc:
            logger.warning("recording_index_failed", extra={"recording": rec_id,
                                                            "error": str(exc)})
            return
        if self.config.format != "wav":
            self._spawn(self._transcode(rec_id))

    async def _transcode(self, rec_id: str) -> None:
        rec = self.index.get(rec_id)
        if rec is None:
            return
        if self._transcoder is None:
            self._transcoder = Transcoder(1)
        try:
            await self._transcoder.transcode_recording(self.index, self.data_dir, rec,
                                                       self.config.format)
        except (RecorderError, OSError, asyncio.CancelledError) as exc:
            logger.warning("transcode_failed", extra={"recording": rec_id,
                                                      "error": str(exc) or type(exc).__name__})
