-- Production PostgreSQL bootstrap: the database and its two roles, run once by a superuser.
--
--   QUORUM_OWNER_PASSWORD=... QUORUM_APP_PASSWORD=... psql "postgresql://postgres@HOST/postgres" -X -f roles.sql
--
-- The passwords come from the environment (your secret store), never from this file or the command
-- line, where `ps` would show them. docker-compose.yml runs this file as a postgres init script.
-- `quorum db bootstrap` then applies the migrations as the owner, and does all of this itself on
-- development and test servers, where it connects as a superuser.
--
--   quorum_owner  owns the database, the schema and every table, and runs the migrations (DATABASE_URL).
--                 BYPASSRLS so the narrow SECURITY DEFINER functions it owns (login lookup, API-key
--                 lookup, the dispatcher's due bots) can cross tenants; nothing else runs as it.
--                 Not a superuser: it cannot create roles, databases or extensions.
--   quorum_app    what the API and workers connect as (DATABASE_APP_URL). Neither owns the tables nor
--                 bypasses row-level security; each transaction names its tenant. The same attributes
--                 as the role `quorum db bootstrap` creates (tenants/db_commands.py, ensure_app_role).
--
-- Table privileges and the row-level security policies are created by the migrations.
\set ON_ERROR_STOP on
\getenv owner_password QUORUM_OWNER_PASSWORD
\getenv app_password QUORUM_APP_PASSWORD
\if :{?owner_password}
\else
\set owner_password ''
\endif
\if :{?app_password}
\else
\set app_password ''
\endif
SELECT length(:'owner_password') >= 16 AND length(:'app_password') >= 16 AS passwords_given \gset
\if :passwords_given
\else
DO $$ BEGIN RAISE EXCEPTION 'set QUORUM_OWNER_PASSWORD and QUORUM_APP_PASSWORD (16 characters or more)'; END $$;
\endif

CREATE ROLE quorum_owner LOGIN NOSUPERUSER BYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD :'owner_password';
CREATE ROLE quorum_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'app_password';
CREATE DATABASE quorum OWNER quorum_owner;
-- Only our two roles may connect to it.
REVOKE ALL ON DATABASE quorum FROM PUBLIC;
GRANT CONNECT ON DATABASE quorum TO quorum_app;

\connect quorum
ALTER SCHEMA public OWNER TO quorum_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO quorum_app;
