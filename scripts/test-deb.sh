#!/usr/bin/env bash
# Installs the .deb of scripts/build-deb.sh on a fresh Debian 12 root (debootstrap, minbase:
# no cargo, no Rust, nothing of the build machine's) and runs what it installed there:
# `pgha --version`, `--help`, the manual page, a command that needs no cluster, and
# /etc/pgha/pgha.toml read as the machine's configuration file.
# The root is made once and kept in $PGHA_CACHE_DIR (default /var/cache/pgha) as a tarball;
# each run unpacks a fresh copy. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=${1:?usage: test-deb.sh PACKAGE.deb}
cache=${PGHA_CACHE_DIR:-/var/cache/pgha}
base=$cache/bookworm-minbase.tar
log() { printf '[test-deb] %s\n' "$*" >&2; }

if [ ! -s "$base" ]; then
  command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
  log "making a minimal Debian 12 root (once; kept in $base)"
  tmp=$(mktemp -d)
  debootstrap --variant=minbase bookworm "$tmp" http://deb.debian.org/debian >/dev/null
  tar -C "$tmp" -cf "$base.part" . && mv "$base.part" "$base"
  rm -rf "$tmp"
fi
root=$(mktemp -d /tmp/pgha-deb-root.XXXXXX)
trap 'rm -rf "$root"' EXIT
tar -C "$root" -xf "$base"
cp "$deb" "$root/tmp/pgha.deb"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }
in_root dpkg -i /tmp/pgha.deb >&2
if in_root sh -c 'command -v cargo rustc' >/dev/null; then
  log "error: the root has cargo or rustc"; exit 1
fi
version=$(in_root pgha --version)
log "installed: $version ($(in_root sh -c 'command -v pgha'))"
case "$version" in pgha\ [0-9]*) ;; *) log "error: unexpected version line: $version"; exit 1 ;; esac
in_root pgha --help | grep -q 'Operate a Patroni PostgreSQL cluster'
in_root pgha-devcluster --help >/dev/null
in_root sh -c 'zcat /usr/share/man/man1/pgha.1.gz | grep -q "^.TH pgha"'
in_root test -s /usr/share/bash-completion/completions/pgha
# A command with nothing to reach fails with the documented exit code, not a crash.
set +e
in_root pgha --patroni http://127.0.0.1:1 --timeout 2s status >/dev/null 2>&1
code=$?
set -e
[ "$code" -ne 101 ] && [ "$code" -ne 0 ] || { log "error: pgha status without a cluster exited $code"; exit 1; }
# The machine's configuration file, /etc/pgha/pgha.toml, is read when the user has none: its
# (closed) port is the one tried, and the failure is the documented "unreachable" (13).
mkdir -p "$root/etc/pgha"
printf 'patroni = ["http://127.0.0.1:9"]\n' > "$root/etc/pgha/pgha.toml"
set +e
said=$(in_root pgha --timeout 2s status 2>&1)
code=$?
set -e
[ "$code" -eq 13 ] && [[ "$said" == *"127.0.0.1:9"* ]] || { log "error: /etc/pgha/pgha.toml not used ($code): $said"; exit 1; }
in_root dpkg -r pgha >&2
log "ok: $deb installs, runs and removes cleanly on a fresh Debian 12 root"
