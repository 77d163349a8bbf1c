"""Migration 1: registrations, CDRs, authentication events and bans.

Times: ``*_at``/``time``/``until`` columns holding machine state are Unix epoch seconds
(REAL); CDR times are ISO 8601 UTC text (``2024-05-01T08:00:00.000+00:00``), one fixed
format so that text order is time order and the table reads well in the sqlite3 shell.
"""

SQL = """
CREATE TABLE registrations (
    id           INTEGER PRIMARY KEY,
    aor          TEXT NOT NULL,              -- address of record, e.g. sip:1001@realm
    contact      TEXT NOT NULL,              -- contact URI as registered
    expires_at   REAL NOT NULL,              -- Unix epoch seconds
    q            REAL NOT NULL DEFAULT 1.0,
    call_id      TEXT NOT NULL,
    cseq         INTEGER NOT NULL,
    transport    TEXT NOT NULL,              -- udp, tcp, tls, ws, wss
    source_ip    TEXT NOT NULL,
    source_port  INTEGER NOT NULL,
    user_agent   TEXT NOT NULL DEFAULT '',
    instance_id  TEXT NOT NULL DEFAULT '',   -- RFC 5626 +sip.instance, if any
    UNIQUE (aor, contact)
);
CREATE INDEX registrations_expires ON registrations (expires_at);

CREATE TABLE cdr (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id       TEXT NOT NULL,             -- the call's id (same for all its legs)
    leg           TEXT NOT NULL,             -- caller, agent, supervisor, outbound, transfer
    parent_id     INTEGER REFERENCES cdr (id) ON DELETE SET NULL,
    direction     TEXT NOT NULL DEFAULT 'inbound',  -- inbound, outbound, internal
    start_time    TEXT NOT NULL,
    answer_time   TEXT,
    end_time      TEXT,
    caller        TEXT NOT NULL DEFAULT '',
    callee        TEXT NOT NULL DEFAULT '',
    trunk         TEXT,
    route         TEXT,                      -- the target the route sent the call to
    queue         TEXT,
    agent         TEXT,
    disposition   TEXT,                      -- answered, no-answer, busy, failed, abandoned, ...
    hangup_cause  TEXT,                      -- SIP status or reason, e.g. "487", "caller-bye"
    billsec       INTEGER NOT NULL DEFAULT 0,
    recording_id  TEXT
);
CREATE INDEX cdr_start ON cdr (start_time);
CREATE INDEX cdr_call ON cdr (call_id);
CREATE INDEX cdr_parent ON cdr (parent_id);

CREATE TABLE auth_events (
    id        INTEGER PRIMARY KEY,
    time      REAL NOT NULL,                 -- Unix epoch seconds
    ip        TEXT NOT NULL,
    username  TEXT NOT NULL DEFAULT '',
    result    TEXT NOT NULL,                 -- ok, bad-password, unknown-user, banned, ...
    source    TEXT NOT NULL DEFAULT 'sip'    -- sip or web
);
CREATE INDEX auth_events_ip_time ON auth_events (ip, time);
CREATE INDEX auth_events_time ON auth_events (time);

CREATE TABLE bans (
    ip       TEXT PRIMARY KEY,
    since    REAL NOT NULL,                  -- Unix epoch seconds
    until    REAL NOT NULL,                  -- Unix epoch seconds
    reason   TEXT NOT NULL DEFAULT ''
);
"""
