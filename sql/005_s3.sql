-- 005_s3: multipart uploads of the S3 backend (issue #6).
-- An upload above s3_multipart_threshold is an S3 multipart upload: its id
-- in the store, the part size the client was given and the number of parts.
-- The scheduler aborts the ones left unfinished past expires_at, so no
-- orphaned parts stay billed.
ALTER TABLE uploads
    ADD COLUMN multipart_id text CHECK (multipart_id IS NULL OR length(multipart_id) BETWEEN 1 AND 1024),
    ADD COLUMN part_size    bigint CHECK (part_size IS NULL OR part_size > 0),
    ADD COLUMN part_count   integer CHECK (part_count IS NULL OR part_count BETWEEN 1 AND 10000),
    ADD COLUMN aborted_at   timestamptz;
CREATE INDEX uploads_multipart_open ON uploads (expires_at)
    WHERE multipart_id IS NOT NULL AND completed_at IS NULL AND aborted_at IS NULL;
