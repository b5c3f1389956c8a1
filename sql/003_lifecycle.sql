-- 003_lifecycle: dead letters, per-user concurrency, workers online, the
-- scheduler's bookkeeping, and queue_position / eta_seconds in the Job.
-- See doc/lifecycle.md.

-- How many jobs of the user may be processing at once; NULL takes the
-- configuration's user_max_processing. Set per plan (issue #5).
ALTER TABLE users ADD COLUMN max_processing integer
    CHECK (max_processing IS NULL OR max_processing BETWEEN 1 AND 1000);

-- The stream a pending job was last pushed to: the scheduler pushes a job
-- that waited long again at a more urgent priority (anti-starvation) and
-- remembers it here so that it does so once per step.
ALTER TABLE jobs ADD COLUMN pushed_priority integer;

-- A job out of attempts: failed, and recorded here until an operator
-- requeues or purges it (kadrctl dlq, GET /api/v1/admin/queue).
CREATE TABLE dead_letters (
    job_id         uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    attempts       integer NOT NULL,
    error_code     text NOT NULL,
    error_message  text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_created ON dead_letters (created_at, job_id);

-- Workers announce themselves every few seconds; "online" is a recent
-- seen_at. A worker that stops cleanly deletes its row.
CREATE TABLE workers (
    name        text PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    slots       integer NOT NULL,
    busy        integer NOT NULL DEFAULT 0
);

-- Counting a user's processing jobs at every claim, and finding leases
-- that ran out.
CREATE INDEX jobs_processing ON jobs (user_id) WHERE status = 'processing';
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status = 'processing';
CREATE INDEX media_retention ON media (created_at) WHERE deleted_at IS NULL AND status <> 'expired';

-- queue_position: pending jobs that are due and that a worker takes before
-- this one (more urgent, or as urgent and older); NULL unless this job is
-- pending and due. eta_seconds: for a processing job with some progress,
-- the time left at the rate seen so far.
CREATE OR REPLACE FUNCTION kadr_job_json(j jobs) RETURNS json
    LANGUAGE sql STABLE AS
$$ SELECT json_build_object(
       'id', j.id, 'type', j.type, 'status', j.status, 'progress', j.progress,
       'stage', j.stage, 'priority', j.priority, 'attempts', j.attempts,
       'max_attempts', j.max_attempts,
       'error', CASE WHEN j.error_code IS NULL THEN NULL
                     ELSE json_build_object('code', j.error_code, 'message', j.error_message) END,
       'created_at', kadr_ts(j.created_at), 'started_at', kadr_ts(j.started_at),
       'finished_at', kadr_ts(j.finished_at), 'run_at', kadr_ts(j.run_at),
       'queue_position',
       CASE WHEN j.status = 'pending' AND j.deleted_at IS NULL
                 AND (j.run_at IS NULL OR j.run_at <= now()) THEN
           (SELECT count(*) FROM jobs o
             WHERE o.status = 'pending' AND o.deleted_at IS NULL
               AND (o.run_at IS NULL OR o.run_at <= now())
               AND (o.priority < j.priority
                    OR (o.priority = j.priority AND (o.created_at, o.id) < (j.created_at, j.id))))
       END,
       'eta_seconds',
       CASE WHEN j.status = 'processing' AND j.progress > 0 AND j.started_at IS NOT NULL THEN
           round(extract(epoch FROM now() - j.started_at) * (100 - j.progress) / j.progress)::bigint
       END,
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
