-- 008_lifecycle_fixes: dead letters only for jobs that are still failed.
-- See doc/lifecycle.md.

-- POST /jobs/{id}/retry now removes the job's dead letter in its own
-- transaction; these are the ones earlier retries left behind.
DELETE FROM dead_letters d USING jobs j
 WHERE j.id = d.job_id AND j.status <> 'failed';
