-- The table the example keeps in sync; run it in each database
-- (./pg.sh psql crm -f schema.sql, and the same for erp and web).
CREATE TABLE IF NOT EXISTS customers (
  id           bigint PRIMARY KEY,
  name         text NOT NULL,
  status       text,
  phone        text,
  tags         text[],        -- merged as an add-wins set (orset)
  last_seen_at timestamptz    -- merged as the latest value seen (max)
);
