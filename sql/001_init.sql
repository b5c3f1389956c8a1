-- 001_init: users, API keys, media, uploads, jobs, job inputs, events, outputs.
-- Applied by `kadrctl migrate` in one transaction; recorded in schema_migrations.
-- gen_random_uuid() is built into PostgreSQL 13 and later.

CREATE TABLE users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email           text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash   text,
    plan            text NOT NULL DEFAULT 'free',
    is_admin        boolean NOT NULL DEFAULT false,
    -- gen_random_uuid() draws on pg_strong_random(): two give 244 random bits.
    webhook_secret  text NOT NULL DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL DEFAULT '',
    prefix        text NOT NULL,              -- shown in lists: "kadr_AbCd"
    key_hash      text NOT NULL UNIQUE,       -- hex SHA-256 of the whole key
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at DESC);

CREATE TABLE media (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    filename       text NOT NULL,
    size           bigint NOT NULL CHECK (size >= 0),
    content_type   text NOT NULL DEFAULT 'application/octet-stream',
    kind           text NOT NULL DEFAULT 'other'
                   CHECK (kind IN ('video', 'audio', 'image', 'subtitle', 'other')),
    status         text NOT NULL DEFAULT 'uploading'
                   CHECK (status IN ('uploading', 'processing', 'ready', 'rejected', 'expired')),
    error_code     text,
    error_message  text,
    probe          jsonb,
    sha256         text,
    storage_key    text NOT NULL UNIQUE,
    source_job_id  uuid,                      -- set for job outputs
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz,
    deleted_at     timestamptz
);
CREATE INDEX media_user_list ON media (user_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE uploads (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    media_id       uuid NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    storage_key    text NOT NULL,
    declared_size  bigint NOT NULL CHECK (declared_size >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    completed_at   timestamptz
);
CREATE INDEX uploads_user ON uploads (user_id);
CREATE INDEX uploads_key ON uploads (storage_key);

CREATE TABLE jobs (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type              text NOT NULL DEFAULT 'edit',
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    progress          integer NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    stage             text,
    priority          integer NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
    attempts          integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 10),
    error_code        text,
    error_message     text,
    spec              jsonb NOT NULL,
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    webhook_url       text,
    idempotency_key   text,
    request_hash      text,                  -- SHA-256 of the body, for Idempotency-Key
    run_at            timestamptz,
    cancel_requested  boolean NOT NULL DEFAULT false,
    worker            text,                  -- consumer name holding the job
    lease_gen         bigint NOT NULL DEFAULT 0,
    lease_expires_at  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_user_list ON jobs (user_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX jobs_user_status ON jobs (user_id, status, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX jobs_waiting ON jobs (priority, created_at) WHERE status = 'pending';

-- Which media a job reads: ownership checks at submission, and waking the
-- jobs that wait for a probe to finish.
CREATE TABLE job_inputs (
    job_id    uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    media_id  uuid NOT NULL REFERENCES media (id),
    PRIMARY KEY (job_id, media_id)
);
CREATE INDEX job_inputs_media ON job_inputs (media_id);

CREATE TABLE job_events (
    id      bigserial PRIMARY KEY,
    job_id  uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    event   text NOT NULL,
    detail  jsonb
);
CREATE INDEX job_events_job ON job_events (job_id, id);

-- One row per named output of a job; registering twice is a no-op
-- (primary key), so a job processed twice still has its outputs once.
CREATE TABLE job_outputs (
    job_id      uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name        text NOT NULL,
    media_id    uuid NOT NULL REFERENCES media (id),
    attempt     integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, name)
);

-- The API's JSON views of a row, in one place so that every endpoint (and
-- kadrctl) renders the same objects. json (not jsonb) keeps the fields in
-- the order written here. Times are RFC 3339 UTC with milliseconds.
CREATE FUNCTION kadr_ts(t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE AS
$$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

CREATE FUNCTION kadr_media_json(m media) RETURNS json
    LANGUAGE sql STABLE AS
$$ SELECT json_build_object(
       'id', m.id, 'filename', m.filename, 'size', m.size,
       'content_type', m.content_type, 'kind', m.kind, 'status', m.status,
       'error', CASE WHEN m.error_code IS NULL THEN NULL
                     ELSE json_build_object('code', m.error_code, 'message', m.error_message) END,
       'probe', m.probe, 'sha256', m.sha256,
       'created_at', kadr_ts(m.created_at), 'expires_at', kadr_ts(m.expires_at)) $$;

CREATE FUNCTION kadr_job_json(j jobs) RETURNS json
    LANGUAGE sql STABLE AS
$$ SELECT json_build_object(
       'id', j.id, 'type', j.type, 'status', j.status, 'progress', j.progress,
       'stage', j.stage, 'priority', j.priority, 'attempts', j.attempts,
       'max_attempts', j.max_attempts,
       'error', CASE WHEN j.error_code IS NULL THEN NULL
                     ELSE json_build_object('code', j.error_code, 'message', j.error_message) END,
       'created_at', kadr_ts(j.created_at), 'started_at', kadr_ts(j.started_at),
       'finished_at', kadr_ts(j.finished_at), 'run_at', kadr_ts(j.run_at),
       'queue_position', NULL, 'eta_seconds', NULL,
       'spec', j.spec,
       'outputs', COALESCE((
           SELECT json_agg(json_build_object(
                      'name', o.name, 'media_id', o.media_id,
                      'url', '/api/v1/media/' || o.media_id || '/download',
                      'size', m.size, 'duration', (m.probe ->> 'duration')::double precision,
                      'content_type', m.content_type, 'sha256', m.sha256)
                  ORDER BY o.name = 'main' DESC, o.name)
             FROM job_outputs o JOIN media m ON m.id = o.media_id
            WHERE o.job_id = j.id AND m.deleted_at IS NULL), '[]'::json),
       'cached', false,
       'metadata', j.metadata) $$;
