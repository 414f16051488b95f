-- Sessions (refresh-token families and their tokens) and login throttle counters.
-- One schema for SQLite and PostgreSQL: TEXT and BIGINT only, times in seconds since the Unix epoch.

-- A family is everything descended from one login; revoking it ends the session.
CREATE TABLE session_families (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    -- Absolute end of the session, whatever the refreshes.
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX session_families_username ON session_families (username);
CREATE INDEX session_families_expires_at ON session_families (expires_at);

-- Refresh tokens, by the hex SHA-256 digest of the token; the token itself is never stored.
-- A spent token (used_at set) is kept until it expires, so that presenting it again is recognised
-- as reuse.
CREATE TABLE refresh_tokens (
    digest TEXT PRIMARY KEY,
    family_id TEXT NOT NULL REFERENCES session_families (id) ON DELETE CASCADE,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

-- Login attempts per bucket (a digest of `user:NAME` or `address:IP`) in a fixed window.
CREATE TABLE login_throttle (
    bucket TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    -- 0 when not banned.
    banned_until BIGINT NOT NULL
);
CREATE INDEX login_throttle_window_start ON login_throttle (window_start);
