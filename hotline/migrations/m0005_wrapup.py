"""Migration 5: the agent's wrap-up (disposition code and notes) saved with the CDR.

``POST /api/cdrs/{call_id}/wrapup`` sets ``wrapup_code`` and ``wrapup_notes`` on every
CDR row of the call (:meth:`hotline.storage.Storage.set_wrapup`); NULL until then. The
server writes a call's rows in batches and some only when the call ends (the agent legs),
so a wrap-up saved while the call still runs would miss the rows written after it: the
trigger gives a new row the wrap-up already saved on another row of the same call.
"""

SQL = """
ALTER TABLE cdr ADD COLUMN wrapup_code TEXT;      -- one of [acd] dispositions, or free text
ALTER TABLE cdr ADD COLUMN wrapup_notes TEXT;     -- the agent's notes, up to 2000 characters

CREATE TRIGGER cdr_wrapup_inherit AFTER INSERT ON cdr
WHEN NEW.wrapup_code IS NULL AND NEW.wrapup_notes IS NULL
BEGIN
    UPDATE cdr SET
        wrapup_code = (SELECT w.wrapup_code FROM cdr AS w WHERE w.call_id = NEW.call_id
                       AND w.id != NEW.id AND (w.wrapup_code IS NOT NULL
                                               OR w.wrapup_notes IS NOT NULL)
                       ORDER BY w.id DESC LIMIT 1),
        wrapup_notes = (SELECT w.wrapup_notes FROM cdr AS w WHERE w.call_id = NEW.call_id
                        AND w.id != NEW.id AND (w.wrapup_code IS NOT NULL
                                                OR w.wrapup_notes IS NOT NULL)
                        ORDER BY w.id DESC LIMIT 1)
    WHERE id = NEW.id AND EXISTS (SELECT 1 FROM cdr AS w WHERE w.call_id = NEW.call_id
                                  AND w.id != NEW.id AND (w.wrapup_code IS NOT NULL
                                                          OR w.wrapup_notes IS NOT NULL));
END;
"""
