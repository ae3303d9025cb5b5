#!/usr/bin/env bash
# Builds the EL9 packages tokenledger-server and tokenledger (.rpm, binary only) from a release
# build, with packaging/rpm/tokenledger.spec. By default it first runs
# `cargo build --locked --profile dist` for the two binaries; --bin-dir packages binaries built
# already (the test packages the ones its own build made). Needs rpmbuild (EL: rpm-build,
# Debian: rpm). Refuses binaries that need a newer glibc than EL9's.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: packaging/rpm/build.sh [--bin-dir DIR] [--out DIR] [--dist TAG] [--glibc-max VERSION]

  --bin-dir DIR        package DIR/tokenledger and DIR/tokenledger-server as they are
                       (default: build them with `cargo build --locked --profile dist`)
  --out DIR            where the .rpm files go (default: $CARGO_TARGET_DIR/rpm, else target/rpm)
  --dist TAG           the release's dist tag (default: .el9)
  --glibc-max VERSION  the newest glibc symbol version the binaries may need
                       (default: 2.34, EL9's glibc)
USAGE
}

die() {
    echo "build.sh: $*" >&2
    exit 1
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# cargo runs in the repository below: a relative CARGO_TARGET_DIR is relative to it.
target=${CARGO_TARGET_DIR:-target}
[[ $target == /* ]] || target=$repo/$target
bin_dir=
out=$target/rpm
dist=.el9
glibc_max=2.34
while [ $# -gt 0 ]; do
    case $1 in
        --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        --dist) dist=${2?--dist needs a tag}; shift 2 ;;
        --glibc-max) glibc_max=${2:?--glibc-max needs a version}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

command -v rpmbuild >/dev/null ||
    die "rpmbuild not found: install rpm-build (EL) or rpm (Debian)"

if [ -z "$bin_dir" ]; then
    (cd "$repo" && cargo build --locked --profile dist -p tokenledger -p tokenledger-server)
    bin_dir=$target/dist
fi
for binary in tokenledger tokenledger-server; do
    [ -x "$bin_dir/$binary" ] || die "$bin_dir/$binary is missing or not executable"
done

# The glibc symbol versions each binary needs (its dynamic symbol table), against EL9's.
for binary in tokenledger tokenledger-server; do
    newest=$(objdump -T "$bin_dir/$binary" | grep -o 'GLIBC_[0-9][0-9.]*' |
        sed 's/^GLIBC_//' | sort -uV | tail -n 1)
    [ -n "$newest" ] || die "$bin_dir/$binary: no glibc symbol versions found (objdump -T)"
    if [ "$(printf '%s\n%s\n' "$newest" "$glibc_max" | sort -V | tail -n 1)" != "$glibc_max" ]; then
        die "$bin_dir/$binary needs glibc $newest, newer than $glibc_max: build on an EL9 host \
or in an EL9 container, not on this host"
    fi
    echo "$binary: needs glibc $newest at most (limit $glibc_max)"
done

# RPM versions have no '-': a pre-release 1.0.0-rc.1 becomes 1.0.0~rc.1 (sorts before 1.0.0).
version=$("$bin_dir/tokenledger" --version | awk '{ print $2 }')
[ -n "$version" ] || die "cannot read the version of $bin_dir/tokenledger"
version=${version//-/\~}

top=$(mktemp -d)
trap 'rm -rf "$top"' EXIT
mkdir -p "$top/SOURCES"
cp -p "$bin_dir/tokenledger" "$bin_dir/tokenledger-server" \
    "$repo"/packaging/systemd/tokenledger-*.service "$repo"/packaging/systemd/tokenledger-*.timer \
    "$repo/packaging/systemd/pull.env.example" \
    "$repo/packaging/sysusers.d/tokenledger.conf" \
    "$repo/packaging/server.toml.example" "$repo/packaging/check.toml.example" \
    "$top/SOURCES/"

rpmbuild -bb --quiet \
    --define "_topdir $top" \
    --define "tl_version $version" \
    --define "dist $dist" \
    "$repo/packaging/rpm/tokenledger.spec"

mkdir -p "$out"
find "$top/RPMS" -name '*.rpm' -exec mv -f -t "$out" {} +
ls -1 "$out"/tokenledger-*"$version"-1"$dist".*.rpm
