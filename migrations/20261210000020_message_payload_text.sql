-- A message's payload is the Graph API request body the engine built: the api writes it once
-- and a worker sends it as it is, and nothing queries inside it. As jsonb it was parsed on
-- every insert and printed back to text on every claim (about 10 microseconds of database
-- time each per message, measured on 5,000 such payloads: 50 ms against 9 ms as text). Text
-- keeps it byte for byte. An old api's `::jsonb` insert still works (jsonb is assigned to
-- text), as does an old worker's `payload::text`. Rewrites the table's partitions once.
ALTER TABLE messages ALTER COLUMN payload TYPE text USING payload::text;
