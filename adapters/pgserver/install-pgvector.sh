#!/usr/bin/env bash
# Installs the pgvector extension into the local PostgreSQL when it is missing.
#
# Debian bookworm does not package pgvector, so it is built from Debian's own source package (trixie),
# fetched through a private sources list that does not touch the machine's apt configuration, against
# postgresql-server-dev-$PGVER. The built tree is cached under $METACHAT_CACHE (default ~/.cache/metachat)
# so a second run only re-installs the cached build.
set -euo pipefail

PG_CONFIG=${PG_CONFIG:-$(ls -d /usr/lib/postgresql/*/bin/pg_config 2>/dev/null | sort -V | tail -n1 || true)}
if [ -z "${PG_CONFIG}" ] || [ ! -x "${PG_CONFIG}" ]; then
  echo "install-pgvector: no pg_config found; install PostgreSQL server packages first" >&2
  exit 1
fi
sharedir=$("$PG_CONFIG" --sharedir)
pgver=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
if [ -f "$sharedir/extension/vector.control" ]; then
  echo "install-pgvector: pgvector already installed for PostgreSQL $pgver"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-pgvector: not a Debian system; install pgvector for PostgreSQL $pgver yourself (https://github.com/pgvector/pgvector#installation)" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

cache=${METACHAT_CACHE:-$HOME/.cache/metachat}/pgvector-pg$pgver
if [ ! -f "$cache/.built" ]; then
  export DEBIAN_FRONTEND=noninteractive
  need=()
  dpkg -s "postgresql-server-dev-$pgver" >/dev/null 2>&1 || need+=("postgresql-server-dev-$pgver")
  dpkg -s dpkg-dev >/dev/null 2>&1 || need+=(dpkg-dev)
  dpkg -s build-essential >/dev/null 2>&1 || need+=(build-essential)
  if [ ${#need[@]} -gt 0 ]; then
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${need[@]}"
  fi
  # A private apt configuration that only knows Debian trixie's source packages.
  priv=$(mktemp -d)
  trap 'rm -rf "$priv"' EXIT
  mkdir -p "$priv/lists/partial" "$priv/archives/partial" "$priv/src"
  cat >"$priv/trixie-src.sources" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  aptopts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$priv" \
           -o "Dir::State::Lists=$priv/lists" -o "Dir::Cache::Archives=$priv/archives" \
           -o "APT::Sandbox::User=root")
  apt-get "${aptopts[@]}" update -qq
  (cd "$priv/src" && apt-get "${aptopts[@]}" source -qq --download-only pgvector && dpkg-source -x --no-check ./*.dsc tree >/dev/null)
  rm -rf "$cache"
  mkdir -p "$(dirname "$cache")"
  cp -a "$priv/src/tree" "$cache"
  make -s -C "$cache" PG_CONFIG="$PG_CONFIG" USE_PGXS=1 >/dev/null
  touch "$cache/.built"
fi
$SUDO make -s -C "$cache" PG_CONFIG="$PG_CONFIG" USE_PGXS=1 install >/dev/null
echo "install-pgvector: installed pgvector for PostgreSQL $pgver from $cache"
