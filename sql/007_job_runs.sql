-- 007_job_runs: what the jobs-per-hour limit counts (doc/security.md).
--
-- The limit is on runs, not on job rows: POST /jobs starts one, and so does
-- POST /jobs/{id}/retry, which gives a failed or cancelled job fresh
-- attempts. Counting jobs.created_at alone let a user retry one job without
-- end. One row per run; the API inserts it in the transaction that creates
-- or retries the job, under the user's quota lock, and counts the rows of
-- the last hour. Rows are kept a day (kadrctl cleanup), long enough for any
-- window the limit uses. job_id has no foreign key on purpose: a run counts
-- whatever later happens to its job.
CREATE TABLE job_runs (
    id       bigserial PRIMARY KEY,
    user_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    job_id   uuid NOT NULL,
    kind     text NOT NULL CHECK (kind IN ('created', 'retried')),
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_runs_user_at ON job_runs (user_id, at);

-- The runs of the hour before this migration, so that it opens no gap.
INSERT INTO job_runs (user_id, job_id, kind, at)
    SELECT user_id, id, 'created', created_at FROM jobs
     WHERE created_at > now() - interval '1 hour';
INSERT INTO job_runs (user_id, job_id, kind, at)
    SELECT j.user_id, e.job_id, 'retried', e.at
      FROM job_events e JOIN jobs j ON j.id = e.job_id
     WHERE e.event = 'retried' AND e.at > now() - interval '1 hour';
