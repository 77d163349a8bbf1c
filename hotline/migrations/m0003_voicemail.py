"""Migration 3: voicemail messages (what :mod:`acd.voicemail` saves and lists).

One row per kept message (:class:`acd.ivr_actions.SaveMessage`). Times are ISO 8601 UTC
text in the CDR format, like migration 2. ``path`` is relative to ``DATA_DIR/voicemail``
with ``/`` separators, e.g. ``billing/20240501T080000Z-abc.wav``. ``heard_at`` is set by
:class:`acd.ivr_actions.MarkHeard` (NULL = new); :class:`acd.ivr_actions.DeleteMessage`
sets ``deleted_at`` and retention removes the file later, keeping the row for audit.
``variables`` is the call's IVR variables as a JSON object (caller input, CRM data).
"""

SQL = """
CREATE TABLE voicemail (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    box          TEXT NOT NULL,               -- [voicemail.BOX] name
    call_id      TEXT NOT NULL DEFAULT '',
    caller       TEXT NOT NULL DEFAULT '',
    received_at  TEXT NOT NULL,
    seconds      REAL NOT NULL DEFAULT 0,
    path         TEXT NOT NULL UNIQUE,        -- relative to DATA_DIR/voicemail
    heard_at     TEXT,                        -- NULL while the message is new
    deleted_at   TEXT,                        -- NULL until the owner deletes it
    variables    TEXT NOT NULL DEFAULT '{}'   -- JSON object of the call's variables
);
CREATE INDEX voicemail_box ON voicemail (box, deleted_at, received_at);
CREATE INDEX voicemail_call ON voicemail (call_id);
"""
