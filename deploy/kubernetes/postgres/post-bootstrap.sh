#!/bin/sh
# Run once by Patroni on the first primary, right after initdb, with a
# superuser connection string as $1: creates the role and database treatyd
# uses (password from TREATY_DB_PASSWORD, the Secret's treaty-password).
set -eu
: "${TREATY_DB_PASSWORD:?TREATY_DB_PASSWORD is not set (Secret treaty-pg-secrets, key treaty-password)}"
psql "$1" -v ON_ERROR_STOP=1 -v pw="$TREATY_DB_PASSWORD" <<'SQL'
CREATE ROLE treaty LOGIN PASSWORD :'pw';
CREATE DATABASE treaty OWNER treaty;
SQL
