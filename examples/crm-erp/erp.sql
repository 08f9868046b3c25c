-- The ERP's own schema (PostgreSQL): ./pg.sh psql erp -f erp.sql
CREATE TABLE IF NOT EXISTS customers (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  company        text NOT NULL,
  email_address  text,
  phone_number   text,
  account_status text NOT NULL DEFAULT 'A' CHECK (account_status IN ('A', 'H')),   -- Active, On Hold
  credit_limit   numeric(12, 2) NOT NULL DEFAULT 5000   -- the ERP's own: never synced
);
