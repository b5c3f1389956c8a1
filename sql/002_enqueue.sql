-- 002_enqueue: when work was last handed to Redis.
-- PostgreSQL is the truth and a queue message only a hint, so every worker
-- sweeps now and then for work that is due but has no recent message: a job
-- whose run_at has come, a job or probe whose push failed (Redis down at the
-- time), or whose message Redis lost. enqueued_at keeps the sweep from
-- pushing the same row again and again.
ALTER TABLE jobs ADD COLUMN enqueued_at timestamptz;
ALTER TABLE media ADD COLUMN enqueued_at timestamptz;
CREATE INDEX media_processing ON media (enqueued_at) WHERE status = 'processing';
