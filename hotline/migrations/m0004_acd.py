"""Migration 4: the ACD's queue log and agent state history (what :mod:`acd.stats` reads).

One row per :class:`acd.events.QueueEvent` in ``queue_log`` and one per
:class:`acd.events.AgentStateChanged` in ``agent_states``, written in batches by
:meth:`hotline.storage.Storage.append_acd_events`. Times are Unix epoch seconds (REAL,
sub-second), the engine's loop time plus the server's wall offset, so a report can cut
intervals anywhere. ``queue_log`` keeps Asterisk's ``queue_log`` shape (``data1`` ...
``data5`` in the event's field order, see :mod:`acd.queuelog`); a NULL ``dataN`` is a
field the event does not have, ``''`` an empty one. Rows are appended, never updated.
``audit`` keeps supervisors' actions (listen, whisper, barge, take over, force
disconnect, another agent's state changed).
"""

SQL = """
CREATE TABLE queue_log (
    id       INTEGER PRIMARY KEY,
    time     REAL NOT NULL,                  -- Unix epoch seconds
    call_id  TEXT NOT NULL,                  -- 'NONE' for member events (ADDMEMBER, PAUSE...)
    queue    TEXT NOT NULL,
    agent    TEXT NOT NULL,                  -- 'NONE' when no agent is involved
    event    TEXT NOT NULL,                  -- ENTERQUEUE, CONNECT, ABANDON, ...
    data1    TEXT,
    data2    TEXT,
    data3    TEXT,
    data4    TEXT,
    data5    TEXT
);
CREATE INDEX queue_log_time ON queue_log (time);
CREATE INDEX queue_log_agent_time ON queue_log (agent, time);
CREATE INDEX queue_log_call ON queue_log (call_id);

CREATE TABLE agent_states (
    id        INTEGER PRIMARY KEY,
    time      REAL NOT NULL,                 -- Unix epoch seconds of the transition
    agent     TEXT NOT NULL,
    state     TEXT NOT NULL,                 -- logged_out, ready, not_ready, ringing, ...
    previous  TEXT NOT NULL,
    reason    TEXT NOT NULL DEFAULT '',      -- not-ready reason code
    call_id   TEXT NOT NULL DEFAULT '',      -- the queue call rung, talked on or wrapped up
    queue     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX agent_states_time ON agent_states (time);
CREATE INDEX agent_states_agent_time ON agent_states (agent, time);

CREATE TABLE audit (
    id       INTEGER PRIMARY KEY,
    time     REAL NOT NULL,                  -- Unix epoch seconds
    actor    TEXT NOT NULL,                  -- the login or extension that acted
    action   TEXT NOT NULL,                  -- supervise:listen, force_disconnect, ...
    target   TEXT NOT NULL DEFAULT '',       -- the agent acted upon
    call_id  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_time ON audit (time);

-- The screen pop's "this caller's last calls".
CREATE INDEX cdr_caller_start ON cdr (caller, start_time);
"""
