#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster (Debian's packages) for tests, without systemd.
#
#   start_pg.sh DIR PORT [DB] [USER] [PASSWORD]
#
# DIR       folder for the cluster (created; must not already hold a cluster): DIR/data,
#           DIR/sock (unix socket), DIR/postgres.log, DIR/url, DIR/env
# PORT      TCP port on 127.0.0.1 (e.g. 54329)
# DB/USER/PASSWORD default to workbench/workbench/workbench
#
# Prints one line on stdout: postgresql+psycopg://USER:PASSWORD@127.0.0.1:PORT/DB
# Everything else goes to stderr. Exit status is non-zero with a "start_pg: ..." message
# on any failure. The role gets CREATEDB so tests can CREATE DATABASE ... TEMPLATE ...
# Stop with: stop_pg.sh DIR   (add --rm to delete DIR too)
set -euo pipefail

die() { echo "start_pg: $*" >&2; exit 1; }
say() { echo "start_pg: $*" >&2; }

[ $# -ge 2 ] || die "usage: start_pg.sh DIR PORT [DB] [USER] [PASSWORD]"
DIR=$1 PORT=$2 DB=${3:-workbench} PGUSER_=${4:-workbench} PW=${5:-workbench}
[[ $PORT =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1024 ] && [ "$PORT" -le 65535 ] || die "port '$PORT' is not a number in 1024..65535"
[[ $DB =~ ^[a-z_][a-z0-9_]*$ ]] || die "database name '$DB' must match [a-z_][a-z0-9_]*"
[[ $PGUSER_ =~ ^[a-z_][a-z0-9_]*$ ]] || die "user name '$PGUSER_' must match [a-z_][a-z0-9_]*"
[[ $PW != *"'"* && $PW != *"@"* && $PW != *"/"* && $PW != *":"* ]] || die "password must not contain ' @ / :"

# 1. Refuse a busy port or a used folder, with the reason (before installing anything).
if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then
    die "port $PORT on 127.0.0.1 is already in use (another cluster? see: ss -ltnp 'sport = :$PORT')"
fi
if [ -e "$DIR/data/PG_VERSION" ]; then
    die "$DIR/data already holds a cluster; stop it (stop_pg.sh $DIR --rm) or choose another folder"
fi
# 1b. Install Debian's server if missing. The image may already have it; don't upgrade then.
pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [ -z "$(pg_bindir)" ] || [ ! -x "$(pg_bindir)/initdb" ]; then
    [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed and only root can apt-get install it"
    say "installing Debian's postgresql ..."
    # No default 'main' cluster: we make our own.
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/no-main.conf
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends postgresql >&2 \
        || { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends postgresql >&2; } \
        || die "apt-get install postgresql failed"
fi
BIN=$(pg_bindir)
[ -x "$BIN/initdb" ] || die "no initdb under /usr/lib/postgresql/*/bin after install"

# 2. Who runs the server: initdb/postgres refuse root, so root runs them as 'postgres'.
if [ "$(id -u)" = 0 ]; then
    RUNAS=postgres
    id -u "$RUNAS" >/dev/null 2>&1 || die "user '$RUNAS' does not exist (it comes with postgresql-common)"
    as() { runuser -u "$RUNAS" -- "$@"; }
else
    RUNAS=$(id -un)
    as() { "$@"; }
fi

mkdir -p "$DIR" || die "cannot create $DIR"
DIR=$(cd "$DIR" && pwd)
mkdir -p "$DIR/data" "$DIR/sock"
chmod 700 "$DIR/data"
[ "$RUNAS" = "$(id -un)" ] || chown -R "$RUNAS": "$DIR"
as test -w "$DIR/data" || die "$RUNAS cannot write $DIR/data: a parent folder is not searchable by $RUNAS (pytest's tmp_path is mode 0700; use mktemp -d under /tmp)"

t0=$(date +%s.%N)
# 4. initdb: local socket trusted (superuser 'postgres' for setup), TCP needs a password.
as "$BIN/initdb" -D "$DIR/data" -U postgres -E UTF8 --locale=C.UTF-8 --no-sync \
    --auth-local=trust --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1 \
    || { tail -20 "$DIR/initdb.log" >&2; die "initdb failed (log: $DIR/initdb.log)"; }
t1=$(date +%s.%N)

# 5. Start, on 127.0.0.1:PORT and a socket in DIR/sock. Durability settings off: a test cluster.
as "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" -w -t 60 \
    -o "-p $PORT -k $DIR/sock -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >&2 || { tail -20 "$DIR/postgres.log" >&2 2>/dev/null; die "server did not start (log: $DIR/postgres.log)"; }
t2=$(date +%s.%N)

# 6. Role and database.
PSQL=("$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR/sock" -p "$PORT" -U postgres -d postgres)
as "${PSQL[@]}" -c "CREATE ROLE $PGUSER_ LOGIN CREATEDB PASSWORD '$PW'" >&2 \
    || die "could not create role $PGUSER_ (log: $DIR/postgres.log)"
as "${PSQL[@]}" -c "CREATE DATABASE $DB OWNER $PGUSER_" >&2 \
    || die "could not create database $DB"
t3=$(date +%s.%N)

# 7. Check the password login over TCP, as the tests will connect.
PGPASSWORD=$PW "$BIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U "$PGUSER_" -d "$DB" -tAc "select 1" >/dev/null \
    || die "password login over TCP to $DB as $PGUSER_ failed"

URL="postgresql+psycopg://$PGUSER_:$PW@127.0.0.1:$PORT/$DB"
echo "$URL" >"$DIR/url"
cat >"$DIR/env" <<EOF
export WORKBENCH_STORE='$URL'
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=$PGUSER_ PGPASSWORD='$PW' PGDATABASE=$DB
EOF
[ "$RUNAS" = "$(id -un)" ] || chown "$RUNAS": "$DIR/url" "$DIR/env"
printf 'start_pg: PostgreSQL %s up in %s (initdb %.2fs, start %.2fs, role+db %.2fs)\n' \
    "$("$BIN/postgres" -V | awk '{print $3}')" "$DIR" "$(echo "$t1-$t0" | bc)" "$(echo "$t2-$t1" | bc)" "$(echo "$t3-$t2" | bc)" >&2
echo "$URL"
