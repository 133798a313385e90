-- Run once by the PostgreSQL superuser when the cluster is created (the
-- pgvector image runs files in /docker-entrypoint-initdb.d). Passwords here
-- are for the local compose stack only.
CREATE ROLE itinera_owner LOGIN PASSWORD 'itinera-owner';
CREATE ROLE itinera_app LOGIN NOBYPASSRLS PASSWORD 'itinera-app';
CREATE DATABASE itinera OWNER itinera_owner;
\connect itinera
CREATE EXTENSION IF NOT EXISTS vector;
