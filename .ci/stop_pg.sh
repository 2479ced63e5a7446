#!/usr/bin/env bash
# Stop a cluster made by start_pg.sh:  stop_pg.sh DIR [--rm]
# Exit 0 if it is stopped afterwards (also when it was not running); --rm deletes DIR.
set -euo pipefail
die() { echo "stop_pg: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: stop_pg.sh DIR [--rm]"
DIR=$1 RM=${2:-}
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$BIN" ] || die "PostgreSQL is not installed"
[ -d "$DIR/data" ] || die "$DIR/data does not exist: nothing to stop"
if [ "$(id -u)" = 0 ]; then as() { runuser -u "$(stat -c %U "$DIR/data")" -- "$@"; }; else as() { "$@"; }; fi
if [ -f "$DIR/data/postmaster.pid" ]; then
    as "$BIN/pg_ctl" -D "$DIR/data" -m fast -w -t 30 stop >&2 \
        || as "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w -t 30 stop >&2 \
        || die "could not stop the server in $DIR/data (log: $DIR/postgres.log)"
else
    echo "stop_pg: not running ($DIR/data)" >&2
fi
if [ "$RM" = "--rm" ]; then rm -rf "$DIR"; fi
