#!/usr/bin/env bash
# deploy_patroni_bootstrap_test: the Patroni side of deploy/kubernetes,
# with the real programs (Debian's patroni and postgresql-15):
#  1. `patroni --validate-config` accepts postgres/patroni.yml with the
#     PATRONI_* variables the StatefulSet sets, and refuses a broken copy;
#  2. postgres/post-bootstrap.sh, run as Patroni runs it (superuser
#     connection string as $1), creates role and database treaty on a
#     throwaway PostgreSQL (temp dir, loopback, random port), with a password
#     full of quotes: the role then logs in over TCP with that password
#     (scram-sha-256) and not with another one.
#   usage: patroni_bootstrap_test.sh DEPLOY_DIR
set -euo pipefail
deploy="$(cd "$1" && pwd)"
pgbin="${TREATY_PG_BIN:-/usr/lib/postgresql/15/bin}"
passed=0

for tool in patroni "$pgbin/initdb" "$pgbin/pg_ctl" psql; do
  if ! command -v "$tool" >/dev/null; then
    echo "deploy_patroni_bootstrap_test: $tool not found; run scripts/install-deps.sh" >&2
    exit 1
  fi
done

tmp="$(mktemp -d)"
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  as_pg=(runuser -u postgres --)
  chown postgres: "$tmp"
fi
cleanup() {
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# 1. Patroni's own validator, with the variables the StatefulSet sets; and a
#    broken copy (a wrong type, a bad address) must be refused.
validate() {
  PATRONI_NAME=treaty-pg-0 PATRONI_KUBERNETES_NAMESPACE=treaty PATRONI_KUBERNETES_POD_IP=10.0.0.5 \
    PATRONI_POSTGRESQL_CONNECT_ADDRESS=10.0.0.5:5432 PATRONI_RESTAPI_CONNECT_ADDRESS=10.0.0.5:8008 \
    PATRONI_SUPERUSER_PASSWORD=s PATRONI_REPLICATION_PASSWORD=r PATRONI_REWIND_PASSWORD=s \
    timeout 60 patroni --validate-config "$1"
}
validate "$deploy/postgres/patroni.yml"
echo "ok: patroni --validate-config postgres/patroni.yml"
passed=$((passed + 1))
sed 's/ttl: 30/ttl: thirty/; s/listen: 0.0.0.0:8008/listen: 0.0.0.0:80x8/' \
  "$deploy/postgres/patroni.yml" > "$tmp/broken.yml"
if out="$(validate "$tmp/broken.yml" 2>&1)"; then
  echo "FAIL: patroni --validate-config accepted a broken copy" >&2
  exit 1
fi
case "$out" in
  *"ttl thirty is not"*"integer"* | *"80x8"*) ;;
  *) echo "FAIL: unexpected validator output: $out" >&2; exit 1 ;;
esac
echo "ok: patroni --validate-config refuses a broken copy"
passed=$((passed + 1))

# 2. post-bootstrap.sh against a real PostgreSQL (a copy in the temp dir, so
#    that the postgres user can run it wherever the checkout is).
install -m 0555 "$deploy/postgres/post-bootstrap.sh" "$tmp/post-bootstrap.sh"
port=$((20000 + RANDOM % 20000))
"${as_pg[@]}" "$pgbin/initdb" -D "$tmp/data" -U postgres -A trust --no-sync >"$tmp/initdb.log" 2>&1 \
  || { cat "$tmp/initdb.log"; exit 1; }
cat >"$tmp/data/pg_hba.conf" <<HBA
local all postgres trust
host all treaty 127.0.0.1/32 scram-sha-256
HBA
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$tmp/data" -l "$tmp/pg.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$tmp -c fsync=off" start >/dev/null \
  || { cat "$tmp/pg.log"; exit 1; }

password="it's a \"quoted\" pa\$\$word; DROP ROLE x; --"
"${as_pg[@]}" env TREATY_DB_PASSWORD="$password" \
  "$tmp/post-bootstrap.sh" "postgresql://postgres@/postgres?host=$tmp&port=$port"
owner="$("${as_pg[@]}" psql -h "$tmp" -p "$port" -U postgres -d postgres -XAtc \
  "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'treaty'")"
[ "$owner" = treaty ] || { echo "FAIL: database treaty owned by '$owner', want treaty" >&2; exit 1; }
got="$(PGPASSWORD="$password" psql "host=127.0.0.1 port=$port user=treaty dbname=treaty" -XAtc 'SELECT current_user')"
[ "$got" = treaty ] || { echo "FAIL: login as treaty gave '$got'" >&2; exit 1; }
if PGPASSWORD=wrong psql "host=127.0.0.1 port=$port user=treaty dbname=treaty" -XAtc 'SELECT 1' >/dev/null 2>&1; then
  echo "FAIL: role treaty logged in with a wrong password" >&2
  exit 1
fi
echo "ok: post-bootstrap.sh created role and database treaty; the password logs in, a wrong one does not"
passed=$((passed + 1))

# Without the password the script refuses, naming the Secret key.
if out="$("${as_pg[@]}" env -u TREATY_DB_PASSWORD "$tmp/post-bootstrap.sh" \
  "postgresql://postgres@/postgres?host=$tmp&port=$port" 2>&1)"; then
  echo "FAIL: post-bootstrap.sh ran without TREATY_DB_PASSWORD" >&2
  exit 1
fi
case "$out" in
  *"treaty-pg-secrets, key treaty-password"*) ;;
  *) echo "FAIL: unexpected message: $out" >&2; exit 1 ;;
esac
echo "ok: post-bootstrap.sh without TREATY_DB_PASSWORD fails naming the Secret key"
passed=$((passed + 1))
echo "$passed passed, 0 failed"
