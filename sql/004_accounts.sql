-- 004_accounts: sessions (refresh-token families), refresh tokens, the
-- audit log of security events, and the indexes the limits count with.
-- See doc/security.md.

-- One login = one family. Every refresh replaces the family's token; a
-- token presented twice means it was copied, and revokes the family (and
-- with it every access token naming it in "sid").
CREATE TABLE token_families (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    revoked_reason  text CHECK (revoked_reason IN ('logout', 'reuse', 'admin'))
);
CREATE INDEX token_families_user ON token_families (user_id);

-- Refresh tokens carry 256 random bits, so a SHA-256 of them (hex) is
-- stored and looked up; the token itself is never stored.
CREATE TABLE refresh_tokens (
    token_hash  text PRIMARY KEY CHECK (length(token_hash) = 64),
    family_id   uuid NOT NULL REFERENCES token_families (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- Security events: login_failed, login_locked, user_registered,
-- api_key_created, api_key_revoked, token_family_revoked. email and addr
-- are kept for failures (the limits count them); user_id survives the
-- user's deletion as a plain value.
CREATE TABLE audit_events (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    event    text NOT NULL,
    user_id  uuid,
    email    text,
    addr     text,
    detail   jsonb
);
CREATE INDEX audit_events_at ON audit_events (at DESC, id DESC);
CREATE INDEX audit_login_failed_email ON audit_events (lower(email), at)
    WHERE event = 'login_failed';
CREATE INDEX audit_login_failed_addr ON audit_events (addr, at)
    WHERE event = 'login_failed';

-- The jobs-per-hour limit counts a user's jobs of the last hour, deleted
-- ones included (deleting must not refill the allowance).
CREATE INDEX jobs_user_created ON jobs (user_id, created_at);
-- Unfinished uploads of a user.
CREATE INDEX uploads_user_open ON uploads (user_id, expires_at) WHERE completed_at IS NULL;

-- The API's User object (doc/api.md), rendered in one place.
CREATE FUNCTION kadr_user_json(u users) RETURNS json
    LANGUAGE sql STABLE AS
$$ SELECT json_build_object(
       'id', u.id, 'email', u.email, 'plan', u.plan, 'is_admin', u.is_admin,
       'created_at', kadr_ts(u.created_at)) $$;
