#!/usr/bin/env bash
# Run a command beside a throwaway PostgreSQL cluster, then stop and delete the cluster.
#
# Installs Debian's postgresql when no server binaries are found (CI machines start without it).
# The cluster listens on a free loopback port; the command sees its URL as
# REDLINE_TEST_DATABASE_URL (postgresql+psycopg://...). The exit status is the command's.
set -euo pipefail

find_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}

if ! BINDIR=$(find_bindir); then
  echo "with-postgres: installing Debian's postgresql" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "with-postgres: PostgreSQL server is missing and installing it needs root (apt-get install postgresql)" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
  BINDIR=$(find_bindir)
fi

# initdb refuses to run as root; run the server as the 'postgres' user Debian's package creates.
RUN=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  RUN=(runuser -u postgres --)
fi

PGDIR=$(mktemp -d /tmp/redline-pg.XXXXXX)
chmod 755 "$PGDIR"
[ ${#RUN[@]} -gt 0 ] && chown postgres "$PGDIR"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cleanup() {
  "${RUN[@]}" "$BINDIR/pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PGDIR"
}
trap cleanup EXIT

"${RUN[@]}" "$BINDIR/initdb" -D "$PGDIR/data" -U redline --auth=trust -E UTF8 >"$PGDIR/initdb.log" 2>&1 \
  || { cat "$PGDIR/initdb.log" >&2; exit 1; }
"${RUN[@]}" "$BINDIR/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w \
  -o "-p $PORT -k $PGDIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  start >/dev/null || { cat "$PGDIR/server.log" >&2; exit 1; }
"${RUN[@]}" "$BINDIR/createdb" -h 127.0.0.1 -p "$PORT" -U redline redline_test

export REDLINE_TEST_DATABASE_URL="postgresql+psycopg://redline@127.0.0.1:$PORT/redline_test"
echo "with-postgres: PostgreSQL $("$BINDIR/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT" >&2
set +e
"$@"
status=$?
set -e
exit $status
