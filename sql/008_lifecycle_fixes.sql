-- 008_lifecycle_fixes: every webhook try logged from its start, and dead
-- letters only for jobs that are still failed. See doc/webhooks.md and
-- doc/lifecycle.md.

-- A try is logged when a notifier claims it, before the request leaves,
-- and completed with its outcome: a notifier that dies in the middle of a
-- request still leaves the try in the log. Until then duration_ms and
-- finished_at are NULL, and error says that no outcome was recorded.
ALTER TABLE webhook_attempts ALTER COLUMN duration_ms DROP NOT NULL;
ALTER TABLE webhook_attempts ADD COLUMN finished_at timestamptz;
-- Tries logged before: written when they ended.
UPDATE webhook_attempts SET finished_at = at WHERE finished_at IS NULL;

-- POST /jobs/{id}/retry now removes the job's dead letter in its own
-- transaction; these are the ones earlier retries left behind.
DELETE FROM dead_letters d USING jobs j
 WHERE j.id = d.job_id AND j.status <> 'failed';
