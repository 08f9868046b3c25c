#!/usr/bin/env bash
# The throwaway PostgreSQL server of ../postgres/pg.sh, on its own port and
# in its own directory, so that the examples can run at once:
#
#   ./pg.sh start | stop | destroy | psql DB [ARGS]
#
# Environment: PGPORT (default 5497), LATTICE_PG_DIR (default
# /tmp/lattice-example-crm-erp), PG_BINDIR (see ../postgres/pg.sh).
set -euo pipefail
export PGPORT="${PGPORT:-5497}" LATTICE_PG_DIR="${LATTICE_PG_DIR:-/tmp/lattice-example-crm-erp}"
exec "$(dirname "$0")/../postgres/pg.sh" "$@"
