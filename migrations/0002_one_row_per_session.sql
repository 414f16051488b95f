-- One row per session, however often it is refreshed (issue #10, point 14): the session holds the
-- digest of its current refresh token, and every token of a session starts with the same 16 random
-- bytes, whose digest (`lookup`) recognises any earlier token of it as reuse. No row per spent token.

ALTER TABLE session_families ADD COLUMN lookup TEXT;
ALTER TABLE session_families ADD COLUMN token_digest TEXT;
ALTER TABLE session_families ADD COLUMN token_expires_at BIGINT NOT NULL DEFAULT 0;
-- Orders sessions started within the same second (wall-clock nanoseconds), for the per-user cap.
ALTER TABLE session_families ADD COLUMN started_order BIGINT NOT NULL DEFAULT 0;

-- Sessions from before the upgrade go on with their current token; their first refresh adopts the
-- token's first 16 bytes as their `lookup`.
UPDATE session_families SET
    token_digest = (SELECT t.digest FROM refresh_tokens t
                    WHERE t.family_id = session_families.id AND t.used_at IS NULL
                    ORDER BY t.issued_at DESC, t.digest LIMIT 1),
    token_expires_at = COALESCE((SELECT t.expires_at FROM refresh_tokens t
                                 WHERE t.family_id = session_families.id AND t.used_at IS NULL
                                 ORDER BY t.issued_at DESC, t.digest LIMIT 1), 0);

CREATE UNIQUE INDEX session_families_lookup ON session_families (lookup);
CREATE UNIQUE INDEX session_families_token_digest ON session_families (token_digest);
CREATE INDEX session_families_token_expires_at ON session_families (token_expires_at);
CREATE INDEX session_families_username_created_at ON session_families (username, created_at);

-- `refresh_tokens` gets no new rows. The tokens issued before the upgrade stay until they expire
-- (the background cleanup deletes them), so that a spent one presented again is still reuse.
