-- The ERP's own schema (PostgreSQL): ./pg.sh psql erp -f erp.sql
CREATE TABLE IF NOT EXISTS customers (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name         text NOT NULL,
  status       text NOT NULL DEFAULT 'Active' CHECK (status IN ('Active', 'On Hold')),
  phone_number text,
  credit_limit numeric(12, 2) NOT NULL DEFAULT 5000   -- the ERP's own: never synced
);
CREATE TABLE IF NOT EXISTS orders (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id bigint REFERENCES customers (id),
  total       numeric(12, 2) NOT NULL
);
