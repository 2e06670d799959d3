#!/usr/bin/env bash
# Builds target/debian/pgha_<version>_<arch>.deb: `pgha` and `pgha-devcluster`, the manual page
# and shell completions, for Debian 12 (bookworm) and later. Needs only what `make deps` installs
# (cargo, dpkg-deb). `make package` (`make deb`) runs it, then scripts/test-deb.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
out=target/debian
root=$out/pgha_${version}_${arch}
log() { printf '[build-deb] %s\n' "$*" >&2; }

log "building pgha and pgha-devcluster (release)"
"$CARGO" build --release -p pgha-cli --bin pgha
"$CARGO" build --release -p pgha-testkit --features cli --bin pgha-devcluster

rm -rf "$root"
install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/man/man1" "$root/usr/share/doc/pgha" \
  "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
  "$root/usr/share/fish/vendor_completions.d"
install -m 0755 -s target/release/pgha target/release/pgha-devcluster "$root/usr/bin/"
pgha=target/release/pgha
"$pgha" man | gzip -9n > "$root/usr/share/man/man1/pgha.1.gz"
"$pgha" completions bash > "$root/usr/share/bash-completion/completions/pgha"
"$pgha" completions zsh > "$root/usr/share/zsh/vendor-completions/_pgha"
"$pgha" completions fish > "$root/usr/share/fish/vendor_completions.d/pgha.fish"
{
  echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
  echo "Upstream-Name: pgha"
  echo
  echo "Files: *"
  echo "License: MIT or Apache-2.0"
  echo
  echo "License: MIT"
  sed 's/^$/./; s/^/ /' LICENSE-MIT
  echo
  echo "License: Apache-2.0"
  echo " On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0."
} > "$root/usr/share/doc/pgha/copyright"
gzip -9nc CHANGELOG.md > "$root/usr/share/doc/pgha/changelog.gz"
chmod 0644 "$root"/usr/share/man/man1/* "$root"/usr/share/doc/pgha/* "$root"/usr/share/*/*/pgha* "$root"/usr/share/zsh/vendor-completions/_pgha

# The binaries link only against the C library and libgcc_s (TLS is rustls): the packages
# that hold the libraries they need, the C library at the newest symbol version they use.
glibc=$(objdump -T "$root"/usr/bin/* | sed -n 's/.*GLIBC_\([0-9.]*\).*/\1/p' | sort -uV | tail -n 1)
depends=$(objdump -p "$root"/usr/bin/* | awk '/NEEDED/ {print $2}' | sort -u | while read -r lib; do
  path=$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')
  [ -n "$path" ] || { log "error: $lib is not installed here"; exit 1; }
  owner=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$(readlink -f "$path")" 2>/dev/null) \
    || { log "error: no package holds $path"; exit 1; }
  echo "$owner" | head -n 1 | cut -d: -f1
done | sort -u | sed "s/^libc6\$/libc6 (>= ${glibc})/" | paste -sd, | sed 's/,/, /g')
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: pgha
Version: ${version}
Architecture: ${arch}
Maintainer: pgha maintainers <maintainers@users.noreply.github.com>
Installed-Size: ${size}
Depends: ${depends}
Suggests: postgresql, patroni, etcd-server, pgbackrest
Section: database
Priority: optional
Homepage: https://crates.io/crates/pgha-cli
Description: operations runbook for Patroni PostgreSQL clusters
 pgha is the command line of pgha-admin: cluster status, health checks for
 Nagios and Prometheus, switchover and failover with pre-flight checks,
 restarts, replication, WAL, pgBackRest backups and point-in-time recovery,
 maintenance and tuning. pgha-devcluster starts a local Patroni cluster for
 development and tests (it needs PostgreSQL, Patroni and etcd).
CONTROL
dpkg-deb --root-owner-group --build "$root" "$out/pgha_${version}_${arch}.deb" >&2
echo "$out/pgha_${version}_${arch}.deb"
