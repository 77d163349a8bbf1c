"""Ordered schema migrations for ``hotline.db``.

Each migration is a module ``mNNNN_<what>.py`` holding one ``SQL`` string and listed in
:data:`MIGRATIONS` in order. ``PRAGMA user_version`` in the database is the number of the
last one applied; :mod:`hotline.storage` applies the missing ones, each in its own
transaction, and refuses a database whose version is newer than :data:`LATEST`.

Rules: never edit a migration that has shipped; add a new one. SQL only (no Python data
fixes), so every migration is atomic inside ``BEGIN IMMEDIATE ... COMMIT``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hotline.migrations import (
    m0001_initial,
    m0002_recordings,
    m0003_voicemail,
    m0004_acd,
    m0005_wrapup,
)


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step."""

    #: The ``user_version`` the database has once this migration is applied.
    version: int
    #: Short description, for logs.
    name: str
    #: The DDL/DML script, without BEGIN/COMMIT.
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", m0001_initial.SQL),
    Migration(2, "recordings index", m0002_recordings.SQL),
    Migration(3, "voicemail messages", m0003_voicemail.SQL),
    Migration(4, "acd queue log and agent states", m0004_acd.SQL),
    Migration(5, "wrap-up code and notes on cdr", m0005_wrapup.SQL),
)
#: The schema version this code writes.
LATEST = MIGRATIONS[-1].version

assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1)), "migrations out of order"
