#!/usr/bin/env bash
# A throwaway PocketBase server for this example: the CRM. Everything lives
# in one directory (default /tmp/lattice-example-crm-erp-pb); nothing else on
# the machine changes.
#
#   ./pb.sh build                  build PocketBase (once; skipped with LATTICE_POCKETBASE)
#   ./pb.sh start                  start it, with the superuser and the migrations in pb_migrations/
#   ./pb.sh api METHOD PATH [ARG]  a request as the superuser; ARG is a JSON body, or for GET
#                                  and DELETE any number of NAME=VALUE query parameters
#   ./pb.sh stop                   stop it (the data stays: start again at any time)
#   ./pb.sh destroy                stop it and remove its directory
#
# Environment: PB_PORT (default 8097), LATTICE_PB_DIR, PB_EMAIL (the
# superuser, default admin@example.com), PB_PASSWORD_FILE (its password,
# default ./pb.password), LATTICE_POCKETBASE (a pocketbase binary of your
# own, v0.23 or later, with its JS migrations: the official builds have them).
# Needs curl and jq; the build needs Go, which fetches the toolchain
# PocketBase needs.
set -euo pipefail

PORT="${PB_PORT:-8097}"
DIR="${LATTICE_PB_DIR:-/tmp/lattice-example-crm-erp-pb}"
EMAIL="${PB_EMAIL:-admin@example.com}"
PWFILE="${PB_PASSWORD_FILE:-./pb.password}"
URL="http://127.0.0.1:$PORT"
HERE="$(cd "$(dirname "$0")" && pwd)"
# The PocketBase module that Lattice's own tests build (PocketBase with its
# JS plugin), with the Go toolchain its go.mod asks for: Lattice itself stays
# on an older Go, so that toolchain is used for this build only.
SRC="$HERE/../../adapters/http/apitest/pocketbase"
TOOLCHAIN=go1.27.3

die() { echo "pb.sh: $*" >&2; exit 1; }

# cached is where the build goes: the cache directory the tests use, under a
# hash of the module's source, so that a build made by either serves both.
cached() {
	local goos goarch key
	read -r goos goarch < <(go env GOOS GOARCH | tr '\n' ' ')
	key="$(cd "$SRC" && {
		for f in go.mod go.sum main.go; do
			printf '%s %d\n' "$f" "$(wc -c <"$f")"
			cat "$f"
		done
		printf '%s %s/%s\n' "$TOOLCHAIN" "$goos" "$goarch"
	} | sha256sum | cut -c1-16)"
	echo "${XDG_CACHE_HOME:-$HOME/.cache}/lattice/pocketbase-$key/pocketbase"
}

binary() {
	if [[ -n "${LATTICE_POCKETBASE:-}" ]]; then
		[[ -x "$LATTICE_POCKETBASE" ]] || die "LATTICE_POCKETBASE=$LATTICE_POCKETBASE is not an executable"
		echo "$LATTICE_POCKETBASE"
		return
	fi
	[[ -f "$SRC/go.mod" ]] || die "no PocketBase source in $SRC: set LATTICE_POCKETBASE to a pocketbase binary"
	command -v go >/dev/null || die "building PocketBase needs Go: install it, or set LATTICE_POCKETBASE to a pocketbase binary"
	cached
}

build() {
	local bin
	bin="$(binary)"
	if [[ -x "$bin" ]]; then
		echo "PocketBase: $bin"
		return
	fi
	mkdir -p "$(dirname "$bin")"
	echo "building PocketBase with $TOOLCHAIN (the first time takes a minute or two)..."
	(cd "$SRC" && GOTOOLCHAIN="$TOOLCHAIN" GOWORK=off GOFLAGS=-mod=readonly go build -buildvcs=false -o "$bin.tmp" .) ||
		die "the build failed; or set LATTICE_POCKETBASE to a pocketbase binary"
	mv "$bin.tmp" "$bin"
	echo "PocketBase: $bin"
}

pid() { [[ -f "$DIR/pocketbase.pid" ]] && cat "$DIR/pocketbase.pid"; }
running() { local p; p="$(pid)" && kill -0 "$p" 2>/dev/null; }

password() {
	[[ -r "$PWFILE" ]] || die "no superuser password in $PWFILE: create one (head -c 24 /dev/urandom | base64 > pb.password)"
	cat "$PWFILE"
}

start() {
	local bin pw
	pw="$(password)"
	if running; then
		echo "already running on $URL"
		return
	fi
	build >/dev/null
	bin="$(binary)"
	mkdir -p "$DIR"
	# PocketBase reads its migrations from pb_migrations beside its data
	# directory, and applies those it has not applied yet when it starts.
	rm -rf "$DIR/pb_migrations"
	cp -r "$HERE/pb_migrations" "$DIR/pb_migrations"
	"$bin" superuser upsert "$EMAIL" "$pw" --dir "$DIR/pb_data" >/dev/null
	"$bin" serve --http "127.0.0.1:$PORT" --dir "$DIR/pb_data" </dev/null >"$DIR/server.log" 2>&1 &
	echo $! >"$DIR/pocketbase.pid"
	for _ in $(seq 300); do
		curl -fsS "$URL/api/health" >/dev/null 2>&1 && break
		running || die "PocketBase stopped; see $DIR/server.log"
		sleep 0.1
	done
	curl -fsS "$URL/api/health" >/dev/null || die "PocketBase does not answer on $URL; see $DIR/server.log"
	echo "PocketBase on $URL (dashboard: $URL/_/), superuser $EMAIL"
	echo "data and log in $DIR"
}

stop() {
	local p
	if running; then
		p="$(pid)"
		kill "$p"
		tail --pid="$p" -f /dev/null
		echo "stopped"
	else
		echo "not running"
	fi
	rm -f "$DIR/pocketbase.pid"
}

api() {
	[[ $# -ge 2 ]] || die "usage: ./pb.sh api METHOD PATH [JSON | NAME=VALUE ...]"
	local method="$1" path="$2" pw token
	shift 2
	pw="$(password)"
	token="$(jq -n --arg identity "$EMAIL" --arg password "$pw" '{$identity, $password}' |
		curl -sS --fail-with-body -H 'Content-Type: application/json' --data-binary @- \
			"$URL/api/collections/_superusers/auth-with-password" | jq -r .token)"
	local args=(-X "$method" -H "Authorization: $token")
	case "$method" in
	GET | DELETE)
		if [[ $# -gt 0 ]]; then
			args+=(-G)
			for q in "$@"; do args+=(--data-urlencode "$q"); done
		fi
		;;
	*)
		[[ $# -le 1 ]] || die "usage: ./pb.sh api $method PATH [JSON]"
		[[ $# -eq 0 ]] || args+=(-H 'Content-Type: application/json' --data-binary "$1")
		;;
	esac
	curl -sS --fail-with-body "${args[@]}" "$URL$path"
}

case "${1:-}" in
build) build ;;
start) start ;;
stop) stop ;;
api) api "${@:2}" ;;
destroy)
	stop
	rm -rf "$DIR"
	echo "removed $DIR"
	;;
*)
	sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
