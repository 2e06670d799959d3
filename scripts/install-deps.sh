#!/usr/bin/env bash
# Installs everything pgha's tests, demo and benchmarks need on Debian 12 (bookworm).
#
# Idempotent: a run on a machine that already has everything takes a few seconds.
# Must run as root (or with passwordless sudo), because it installs Debian packages
# and builds pgvector into PostgreSQL's extension directory.
#
# What it installs:
#   * Debian packages: PostgreSQL 15 (+ server dev headers), Patroni 3.0.2, etcd 3.4,
#     pgBackRest, HAProxy (benchmark baseline), iproute2, iptables, python3-venv.
#   * pgvector, built from Debian's own source package (not packaged for bookworm).
#     A private apt configuration with a trixie deb-src line is used; the system's
#     apt sources are never touched (trixie binaries need a newer libc).
#   * A Python venv with Patroni 4.1.x (for compatibility runs), in $PGHA_CACHE_DIR.
#
# Environment:
#   PGHA_CACHE_DIR      where the venv and build files go (default /var/cache/pgha)
#   PGHA_SKIP_PATRONI4  set to 1 to skip the Patroni 4.x venv
set -euo pipefail

PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config
CACHE_DIR=${PGHA_CACHE_DIR:-/var/cache/pgha}
PATRONI4_VERSION=${PGHA_PATRONI4_VERSION:-4.1.5}
PSYCOPG_VERSION=${PGHA_PSYCOPG_VERSION:-3.2.10}

log() { printf '[install-deps] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    log "error: this script installs system packages and must run as root (or with passwordless sudo)."
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive

# --- 1. Debian packages ---------------------------------------------------------------
PACKAGES=(
  "postgresql-${PG_MAJOR}" "postgresql-server-dev-${PG_MAJOR}" "postgresql-contrib"
  patroni python3-etcd etcd-server etcd-client pgbackrest haproxy
  iproute2 iptables python3-venv build-essential dpkg-dev ca-certificates
)
missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  # policy-rc.d keeps the packages from starting their own system services
  # (the Debian etcd/patroni/postgresql units); pgha-testkit starts its own processes.
  tmp_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    tmp_policy=1
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  if [ "$tmp_policy" = 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
else
  log "Debian packages already installed"
fi

# The Debian etcd service, if it was started by an earlier install, would hold the
# default ports; pgha never uses it, so make sure it is not running.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  $SUDO systemctl stop etcd || true
fi

# --- 2. pgvector from Debian's source package -----------------------------------------
EXT_DIR=$($PG_CONFIG --sharedir)/extension
if [ -f "$EXT_DIR/vector.control" ]; then
  log "pgvector already installed ($(sed -n "s/^default_version = '\(.*\)'/\1/p" "$EXT_DIR/vector.control"))"
else
  log "building pgvector from Debian's trixie source package"
  $SUDO mkdir -p "$CACHE_DIR"
  work=$(mktemp -d "${TMPDIR:-/tmp}/pgha-pgvector.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/lists/partial" "$work/src"
  echo "deb-src http://deb.debian.org/debian trixie main" >"$work/sources.list"
  APT_OPTS=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
            -o "Dir::State::Lists=$work/lists" -o "APT::Sandbox::User=root")
  apt-get "${APT_OPTS[@]}" update -qq >&2
  (cd "$work/src" && apt-get "${APT_OPTS[@]}" source --download-only pgvector >&2)
  tarball=$(ls "$work"/src/pgvector_*.orig.tar.* | head -n1)
  mkdir -p "$work/build"
  tar -xf "$tarball" -C "$work/build" --strip-components=1
  make -C "$work/build" -s PG_CONFIG="$PG_CONFIG" OPTFLAGS="" >&2
  $SUDO make -C "$work/build" -s PG_CONFIG="$PG_CONFIG" install >&2
  log "pgvector installed"
fi

# --- 3. Patroni 4.x venv (compatibility runs) ------------------------------------------
if [ "${PGHA_SKIP_PATRONI4:-0}" != 1 ]; then
  VENV="$CACHE_DIR/patroni4"
  if [ -x "$VENV/bin/patroni" ] && "$VENV/bin/patroni" --version 2>/dev/null | grep -q "$PATRONI4_VERSION"; then
    log "Patroni $PATRONI4_VERSION venv already present at $VENV"
  else
    log "creating Patroni $PATRONI4_VERSION venv at $VENV"
    $SUDO mkdir -p "$CACHE_DIR"
    $SUDO rm -rf "$VENV"
    # Debian's python3: the one first on PATH may live under /root, unreadable by `postgres`.
    $SUDO /usr/bin/python3 -m venv "$VENV"
    $SUDO "$VENV/bin/pip" install -q --disable-pip-version-check \
      "patroni[etcd3]==$PATRONI4_VERSION" "psycopg[binary]==$PSYCOPG_VERSION" >&2
  fi
  $SUDO chmod -R a+rX "$CACHE_DIR"
fi

log "done"
