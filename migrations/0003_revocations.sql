-- Sessions end now, not at `exp` (issue #14): every session gets a `sid`, 128 random bits in hex
-- that its access tokens carry, and ending a session records its sid here until the last token
-- issued in it has expired. Every instance holds the unexpired rows in memory and checks tokens
-- against that copy alone; this table is how the instances (and the command line) tell each other.

-- Random, not derived from anything: it names the session in tokens anyone can read, and gives
-- nothing towards a refresh token. NULL for sessions from before this migration until their next
-- refresh gives them one.
ALTER TABLE session_families ADD COLUMN sid TEXT;
CREATE UNIQUE INDEX session_families_sid ON session_families (sid);

CREATE TABLE revocations (
    sid TEXT PRIMARY KEY,
    -- When the session was ended, by the clock of whoever ended it: instances poll by it.
    revoked_at BIGINT NOT NULL,
    -- When the last token issued in the session can have expired (revoked_at plus the token
    -- lifetime and clock leeway of whoever ended it); the row goes after that.
    until BIGINT NOT NULL
);
CREATE INDEX revocations_revoked_at ON revocations (revoked_at);
CREATE INDEX revocations_until ON revocations (until);
