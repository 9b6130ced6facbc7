#!/usr/bin/env bash
# PostgreSQL for the team tracking server (scripts/server.sh, `make server`): Debian's `postgresql` package,
# installed with apt-get only when initdb/pg_ctl are missing. Prints the folder of initdb, pg_ctl, postgres and
# psql (e.g. /usr/lib/postgresql/15/bin) on stdout; everything else goes to stderr.
set -euo pipefail

# The server binaries: Debian keeps them in /usr/lib/postgresql/<version>/bin (not on PATH); other systems
# put them on PATH. The newest version wins.
pg_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/psql" ]; then
      echo "$dir"
      return 0
    fi
  done
  local initdb
  initdb=$(command -v initdb 2>/dev/null) || return 1
  dir=$(dirname "$(readlink -f "$initdb")")
  [ -x "$dir/pg_ctl" ] && [ -x "$dir/psql" ] && echo "$dir"
}

if dir=$(pg_bin); then
  echo "$dir"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "setup-postgres: PostgreSQL (initdb, pg_ctl) is missing and this is not root: run 'apt-get install postgresql' as root" >&2
    exit 1
  }
  SUDO="sudo"
fi
command -v apt-get >/dev/null 2>&1 || {
  echo "setup-postgres: PostgreSQL (initdb, pg_ctl) is missing and there is no apt-get: install the PostgreSQL server (version 13 or later) with this system's package manager" >&2
  exit 1
}
echo "setup-postgres: installing Debian's postgresql (apt-get)" >&2
$SUDO apt-get update -qq >&2
# the package's own cluster (main, port 5432) is not used: the server's cluster lives in the project's .server/
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >&2
dir=$(pg_bin) || { echo "setup-postgres: apt-get installed postgresql, but no initdb/pg_ctl was found under /usr/lib/postgresql" >&2; exit 1; }
echo "$dir"
