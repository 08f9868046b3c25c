CREATE TABLE IF NOT EXISTS customers (
  id           INTEGER PRIMARY KEY,
  name         TEXT NOT NULL,
  status       TEXT,
  phone        TEXT,
  tags         JSON,          -- a JSON array, merged as an add-wins set
  last_seen_at TIMESTAMP
);
