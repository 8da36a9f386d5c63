-- Every statement on `messages` that cannot prune at plan time (the by-id batches: ids come
-- as an array) initialises one scan per partition, and so does every re-check of a row a
-- concurrent statement changed. Partitions a week ahead made that ten scans; the scheduler
-- now keeps only today's and tomorrow's ahead (it runs hourly, and rows of a day without a
-- partition still land in `messages_default`). Drops the empty ones further ahead.
DO $$
DECLARE
    part text;
    empty boolean;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'messages'::regclass AND c.relname ~ '^messages_[0-9]{8}$'
          AND to_date(substr(c.relname, 10), 'YYYYMMDD') > (now() AT TIME ZONE 'UTC')::date + 1
    LOOP
        EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %I)', part) INTO empty;
        IF empty THEN
            EXECUTE format('DROP TABLE %I', part);
        END IF;
    END LOOP;
END $$;
