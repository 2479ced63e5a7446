#!/usr/bin/env bash
# The PostgreSQL pass of `make test`: start a throwaway cluster (Debian's postgresql,
# installed by start_pg.sh when missing), run the store-backed suite against it, stop it.
#
#   test_postgres.sh PYTHON [pytest args...]
#
# Fails, saying why, when PostgreSQL cannot be installed or started: never a silent skip.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:?usage: test_postgres.sh PYTHON [pytest args...]}
shift
DIR=$(mktemp -d /tmp/workbench-pg.XXXXXX)
chmod 755 "$DIR"  # the server runs as 'postgres' when we are root: it must reach the folder
PORT=$("$PYTHON" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
cleanup() { [ ! -d "$DIR/cluster/data" ] || .ci/stop_pg.sh "$DIR/cluster" >/dev/null 2>&1 || true; rm -rf "$DIR"; }
trap cleanup EXIT
if ! URL=$(.ci/start_pg.sh "$DIR/cluster" "$PORT" 2>"$DIR/start.log"); then
    cat "$DIR/start.log" >&2
    echo "PostgreSQL pass: FAILED: PostgreSQL could not be started (see above); the DuckDB pass ran alone." >&2
    exit 1
fi
tail -1 "$DIR/start.log"
# The notebooks and most browser tests drive the same services on their own DuckDB files;
# the store-backed suite and the main browser tests (on a PostgreSQL demo copy) run here. Of
# the scenarios run on both sides, the server's half: the file half's operations are this
# pass's other tests.
WORKBENCH_TEST_PG=$URL "$PYTHON" -m pytest -m "(not browser or both_backends) and not file_side" \
    --ignore=tests/test_notebooks.py -p no:cacheprovider "$@"
