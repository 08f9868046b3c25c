#!/usr/bin/env bash
# A throwaway PostgreSQL server for this example, with wal_level=logical and
# three databases: crm, erp and web. Everything lives in one directory
# (default /tmp/lattice-example-pg); nothing else on the machine changes.
#
#   ./pg.sh start           create the server on first use, start it, create the databases
#   ./pg.sh stop            stop it (the data stays: start again at any time)
#   ./pg.sh psql DB [ARGS]  run psql on database DB (crm, erp or web)
#   ./pg.sh destroy         stop it and remove its directory
#
# Environment: PGPORT (default 5499), LATTICE_PG_DIR (default
# /tmp/lattice-example-pg), PG_BINDIR (default: pg_config --bindir, else the
# newest /usr/lib/postgresql/*/bin). PostgreSQL refuses to run as root: run
# as root, the script runs the server as the postgres OS user.
set -euo pipefail

PORT="${PGPORT:-5499}"
DIR="${LATTICE_PG_DIR:-/tmp/lattice-example-pg}"
DATA="$DIR/data"
LOG="$DIR/server.log"
DATABASES=(crm erp web)

die() { echo "pg.sh: $*" >&2; exit 1; }

bindir() {
	if [[ -n "${PG_BINDIR:-}" ]]; then
		echo "$PG_BINDIR"
		return
	fi
	local d
	if d="$(pg_config --bindir 2>/dev/null)" && [[ -x "$d/initdb" ]]; then
		echo "$d"
		return
	fi
	d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n | tail -1)"
	[[ -n "$d" && -x "$d/initdb" ]] || die "no PostgreSQL server binaries found: install them (Debian: apt-get install postgresql) or set PG_BINDIR"
	echo "$d"
}

BIN="$(bindir)"

# as_owner runs a command as the server's owner: the postgres OS user when
# we are root, else ourselves.
as_owner() {
	if [[ "$(id -u)" == 0 ]]; then
		id postgres >/dev/null 2>&1 || die "running as root needs a postgres OS user (useradd --system postgres)"
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

running() { [[ -f "$DATA/postmaster.pid" ]] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

psql_() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }

start() {
	if [[ ! -d "$DATA" ]]; then
		mkdir -p "$DIR"
		chmod 755 "$DIR"
		[[ "$(id -u)" == 0 ]] && chown postgres: "$DIR"
		as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C --no-instructions >/dev/null
	fi
	if running; then
		echo "already running on 127.0.0.1:$PORT"
	else
		as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start -o "-p $PORT \
			-c listen_addresses=127.0.0.1 -c unix_socket_directories=$DIR \
			-c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10" >/dev/null ||
			die "the server did not start; see $LOG"
	fi
	for db in "${DATABASES[@]}"; do
		if [[ -z "$(psql_ -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]]; then
			psql_ -d postgres -c "CREATE DATABASE $db"
		fi
	done
	echo "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT (wal_level=logical), databases: ${DATABASES[*]}"
	echo "data and log in $DIR; connect with: ./pg.sh psql crm"
}

stop() {
	if running; then
		as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
		echo "stopped"
	else
		echo "not running"
	fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
psql)
	[[ $# -ge 2 ]] || die "usage: ./pg.sh psql DB [psql arguments]"
	exec "$BIN/psql" -X -h 127.0.0.1 -p "$PORT" -U postgres -d "$2" "${@:3}"
	;;
destroy)
	stop
	rm -rf "$DIR"
	echo "removed $DIR"
	;;
*)
	sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
