"""Migration 2: the recordings index (one row per recorded contact, linked to its agents).

Times are ISO 8601 UTC text in the CDR format (``2024-05-01T08:00:00.000+00:00``), so a
recording sorts and compares with the CDRs of its call (``cdr.recording_id`` points here).
``path`` is relative to ``DATA_DIR/recordings`` with ``/`` separators (see
:mod:`recorder.naming`), so a data directory can be moved. Rows are never deleted: when
retention removes a file the row goes to state ``deleted`` and stays for audit.
"""

SQL = """
CREATE TABLE recordings (
    id          TEXT PRIMARY KEY,            -- e.g. 20240501T080000Z-3f9a1c2b
    call_id     TEXT NOT NULL DEFAULT '',    -- SIP Call-ID of the caller leg ('' if unknown)
    path        TEXT NOT NULL UNIQUE,        -- relative to DATA_DIR/recordings
    format      TEXT NOT NULL DEFAULT 'wav'  -- of the file at path
                CHECK (format IN ('wav', 'opus', 'mp3')),
    state       TEXT NOT NULL DEFAULT 'live'
                CHECK (state IN ('live', 'done', 'repaired', 'transcoded', 'deleted')),
    start_time  TEXT NOT NULL,
    end_time    TEXT,
    seconds     REAL,                        -- audio length, known once not live
    caller      TEXT NOT NULL DEFAULT '',
    callee      TEXT NOT NULL DEFAULT '',
    queue       TEXT
);
CREATE INDEX recordings_start ON recordings (start_time);
CREATE INDEX recordings_call ON recordings (call_id);
CREATE INDEX recordings_state ON recordings (state);
CREATE INDEX recordings_queue_start ON recordings (queue, start_time);

CREATE TABLE recording_agents (
    recording_id  TEXT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    agent_id      TEXT NOT NULL,
    joined_at     TEXT NOT NULL,             -- first time the agent joined the contact
    PRIMARY KEY (recording_id, agent_id)
) WITHOUT ROWID;
CREATE INDEX recording_agents_agent ON recording_agents (agent_id);
"""
