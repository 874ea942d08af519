#!/usr/bin/env bash
# Run one command against a throwaway PostgreSQL cluster, then remove the cluster.
#
#   scripts/pgtest.sh COMMAND [ARG...]
#   e.g. scripts/pgtest.sh .venv/bin/python -m pytest -m web
#
# The cluster lives in a fresh directory (mktemp -d, /tmp/webprof-pg.XXXXXX): initdb'd
# as the unprivileged `postgres` user when run as root (PostgreSQL refuses to run as
# root), otherwise as the calling user. It listens on 127.0.0.1 only, on a free port,
# with its unix socket inside that private directory, and runs with fsync, synchronous
# commit and full-page writes off: its data is discarded anyway, and tests create and
# drop databases and truncate tables all the time. A role `webprof` with CREATEDB
# (pytest-django creates test_webprof) and a database `webprof` are created; COMMAND
# runs with DATABASE_URL=postgresql://webprof:<random>@127.0.0.1:<port>/webprof.
#
# The cluster is stopped and its directory removed when COMMAND ends, fails, or the
# script gets SIGINT/SIGTERM/SIGHUP; the script exits with COMMAND's status. A cluster
# left behind by a SIGKILLed run is removed by the next run (its owner pid is dead).
# PG_BINDIR overrides where initdb/pg_ctl/psql are (default: newest
# /usr/lib/postgresql/*/bin, as Debian and Ubuntu install them).
set -euo pipefail

PREFIX=webprof-pg
ROLE=webprof
DBNAME=webprof

say() { printf 'pgtest: %s\n' "$*" >&2; }
die() { printf 'pgtest: error: %s\n' "$*" >&2; exit 1; }

[ $# -gt 0 ] || die "usage: $0 COMMAND [ARG...] (runs COMMAND with DATABASE_URL set)"

if [ -z "${PG_BINDIR:-}" ]; then
    PG_BINDIR=$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V | tail -n 1 || true)
fi
for tool in initdb pg_ctl psql; do
    [ -x "${PG_BINDIR:-/nonexistent}/$tool" ] \
        || die "no $tool in '${PG_BINDIR:-}'; install PostgreSQL (scripts/setup.sh does: apt-get install postgresql) or set PG_BINDIR"
done

# Run a PostgreSQL tool as the cluster's owner.
if [ "$(id -u)" -eq 0 ]; then
    OWNER=postgres
    id -u "$OWNER" >/dev/null 2>&1 || die "no '$OWNER' user to run PostgreSQL as (the postgresql package creates it)"
    as_owner() { runuser -u "$OWNER" -- "$@"; }
else
    OWNER=$(id -un)
    as_owner() { "$@"; }
fi

# Stop the postmaster of cluster directory $1 (fast, then by pid) and remove the directory.
remove_cluster() {
    local dir=$1 pid
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -m immediate -w -t 20 stop >/dev/null 2>&1 || true
        pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
        if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -rf -- "$dir"
}

# Clusters whose creating script is gone (SIGKILL, power loss of the shell) go first.
for stale in /tmp/"$PREFIX".*; do
    [ -f "$stale/owner-pid" ] || continue
    owner_pid=$(cat "$stale/owner-pid" 2>/dev/null || true)
    if [[ "$owner_pid" =~ ^[0-9]+$ ]] && ! kill -0 "$owner_pid" 2>/dev/null; then
        say "removing stale cluster $stale (its run, pid $owner_pid, is gone)"
        remove_cluster "$stale"
    fi
done

DIR=$(mktemp -d "/tmp/$PREFIX.XXXXXX")
# shellcheck disable=SC2317  # cleanup and on_signal run from traps
cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    remove_cluster "$DIR"
    say "cluster stopped and removed (${SECONDS}s after start)"
    exit "$status"
}
trap cleanup EXIT
# On a signal: pass it on to COMMAND (a Ctrl-C reaches it from the terminal too; Python
# folds the two into one KeyboardInterrupt), let it finish its own teardown, then exit
# with the conventional 128+signal status; the EXIT trap removes the cluster.
child=
# shellcheck disable=SC2317
on_signal() {
    if [ -n "$child" ]; then
        kill "-$1" "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    exit "$2"
}
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap 'on_signal HUP 129' HUP

echo $$ >"$DIR/owner-pid"
mkdir -m 0700 "$DIR/sock"
chown "$OWNER" "$DIR" "$DIR/sock"
chmod 0700 "$DIR"

# The socket directory is private (0700, owner only), so local "trust" admits only the
# owner; TCP on 127.0.0.1 needs the role's password.
as_owner "$PG_BINDIR/initdb" -D "$DIR/data" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; die "initdb failed (output above)"; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Another process may take the free port between the probe and the bind: try a few.
PORT=
for _attempt in 1 2 3 4 5; do
    port=$(free_port)
    if as_owner "$PG_BINDIR/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$DIR/sock" \
        -o "-c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null 2>&1; then
        PORT=$port
        break
    fi
    grep -q 'could not bind' "$DIR/postgres.log" 2>/dev/null \
        || { tail -n 20 "$DIR/postgres.log" >&2 || true; die "PostgreSQL did not start (log above)"; }
done
[ -n "$PORT" ] || die "PostgreSQL found no free port on 127.0.0.1 in 5 attempts"

PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
as_owner "$PG_BINDIR/psql" -h "$DIR/sock" -p "$PORT" -U postgres -d postgres -X -q \
    -v ON_ERROR_STOP=1 \
    -c "CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'" \
    -c "CREATE DATABASE $DBNAME OWNER $ROLE" \
    || die "could not create role $ROLE and database $DBNAME"

export DATABASE_URL="postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DBNAME"
say "PostgreSQL $("$PG_BINDIR/pg_ctl" -V | awk '{print $3}') on 127.0.0.1:$PORT (cluster $DIR)"
say "DATABASE_URL=postgresql://$ROLE:***@127.0.0.1:$PORT/$DBNAME; running: $*"

# Not exec: the traps must outlive COMMAND. It runs in the background so that a signal
# sent to this script alone (make forwards SIGTERM to its recipe) interrupts `wait` at
# once instead of after COMMAND ends. Bash starts background commands with SIGINT
# ignored and stdin from /dev/null; `trap - INT` and `<&0` undo both, so COMMAND
# behaves as in the foreground (pytest's Ctrl-C and --pdb work).
( trap - INT; exec "$@" ) <&0 &
child=$!
status=0
wait "$child" || status=$?
child=
exit "$status"
