-- Production PostgreSQL bootstrap, run once by a superuser. `quorum db bootstrap` does the same on
-- development and test servers. Passwords come from your secret store, never from this file.
--
--   quorum_owner: owns the schema and runs migrations (DATABASE_URL). BYPASSRLS so the narrow
--                 SECURITY DEFINER functions (login lookup, dispatcher) can cross tenants; the
--                 tables themselves FORCE row-level security for every other role.
--   quorum_app:   what the API and workers connect as (DATABASE_APP_URL). Neither owns the tables
--                 nor bypasses row-level security; each transaction names its tenant.
\set ON_ERROR_STOP on
CREATE ROLE quorum_owner LOGIN BYPASSRLS PASSWORD :'owner_password';
CREATE ROLE quorum_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'app_password';
CREATE DATABASE quorum OWNER quorum_owner;
\connect quorum
ALTER SCHEMA public OWNER TO quorum_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CONNECT ON DATABASE quorum TO quorum_app;
GRANT USAGE ON SCHEMA public TO quorum_app;
-- Table privileges and the row-level security policies are created by the migrations.
