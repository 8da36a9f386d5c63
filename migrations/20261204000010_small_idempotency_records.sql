-- Idempotency-Key records keep only what Postgres cannot rebuild: the dispatch id, the request's
-- digest and a small `summary` (the status the dispatch started in and the rejected recipients).
-- A replay rebuilds the accepted messages from the dispatch's rows. Records written before this
-- migration keep their whole `response` and are replayed from it until they expire (24 h).
ALTER TABLE idempotency_records ALTER COLUMN response DROP NOT NULL;
ALTER TABLE idempotency_records ADD COLUMN summary text;
ALTER TABLE idempotency_records ADD CONSTRAINT idempotency_records_answer
    CHECK (response IS NOT NULL OR summary IS NOT NULL);
