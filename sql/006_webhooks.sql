-- 006_webhooks: the outbox of webhook deliveries, and the log of every try.
--
-- A trigger on jobs writes the delivery in the same transaction that gives
-- the job its final status, so no code path (worker, API cancel, scheduler,
-- an operator's UPDATE) can finish a job and forget its webhook, and nobody
-- waits for the receiver: kadr-notify sends the rows later (doc/webhooks.md).

CREATE TABLE webhook_deliveries (
    id                bigserial PRIMARY KEY,
    job_id            uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event             text NOT NULL
                      CHECK (event IN ('job.completed', 'job.failed', 'job.cancelled')),
    -- The job's lease generation when it reached the final state. It counts
    -- every attempt ever started and never goes back (attempts does, on a
    -- hand-back or a dead-letter requeue), so it tells a second outcome of
    -- a requeued job from the same outcome written twice.
    lease_gen         bigint NOT NULL,
    url               text NOT NULL,
    -- The body as sent, frozen when the event happened: a later change of
    -- the job (its outputs expiring) does not rewrite what it said then.
    payload           text NOT NULL,
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    first_attempt_at  timestamptz,
    last_status       integer,              -- HTTP status of the last answer
    last_error        text,
    delivered_at      timestamptz,
    failed_at         timestamptz,          -- given up on
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, event, lease_gen)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX webhook_deliveries_job ON webhook_deliveries (job_id);

CREATE TABLE webhook_attempts (
    id           bigserial PRIMARY KEY,
    delivery_id  bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    status_code  integer,                   -- NULL when no HTTP answer came
    error        text,                      -- NULL when delivered
    duration_ms  integer NOT NULL,
    notifier     text
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

-- Runs at COMMIT (a deferred constraint trigger): the worker fences its
-- outcome by writing the status first and registers the outputs after it in
-- the same transaction, and the payload must show them. The row is read
-- again then; a status changed once more before the commit is that later
-- change's business.
CREATE FUNCTION kadr_webhook_enqueue() RETURNS trigger
    LANGUAGE plpgsql AS
$$
DECLARE
    j jobs;
BEGIN
    SELECT * INTO j FROM jobs WHERE id = NEW.id;
    IF NOT FOUND OR j.status IS DISTINCT FROM NEW.status OR j.webhook_url IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries (job_id, user_id, event, lease_gen, url, payload)
    VALUES (j.id, j.user_id, 'job.' || j.status, j.lease_gen, j.webhook_url,
            json_build_object('event', 'job.' || j.status, 'job', kadr_job_json(j))::text)
    ON CONFLICT (job_id, event, lease_gen) DO NOTHING;
    RETURN NULL;
END
$$;

-- UPDATE OF status: progress and heartbeat writes never queue it.
CREATE CONSTRAINT TRIGGER jobs_webhook_update AFTER UPDATE OF status ON jobs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.status IN ('completed', 'failed', 'cancelled')
          AND OLD.status IS DISTINCT FROM NEW.status
          AND NEW.webhook_url IS NOT NULL)
    EXECUTE FUNCTION kadr_webhook_enqueue();
-- A job born final (a result served from a cache, a job refused at once).
CREATE CONSTRAINT TRIGGER jobs_webhook_insert AFTER INSERT ON jobs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.status IN ('completed', 'failed', 'cancelled') AND NEW.webhook_url IS NOT NULL)
    EXECUTE FUNCTION kadr_webhook_enqueue();
