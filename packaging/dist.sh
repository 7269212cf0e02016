#!/usr/bin/env bash
# Builds the release artifacts into dist/:
#   bwguard-VERSION-x86_64-linux   the static binary (no dynamic dependency)
#   bwguard_VERSION_amd64.deb      the Debian package (binary, man page,
#                                  completions, docs, changelog, copyright)
#   SHA256SUMS                     both, for `sha256sum -c`
# Needs the Rust toolchain and a C compiler (glibc's static libraries come
# with libc6-dev); installs cargo-deb from crates.io when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
target=x86_64-unknown-linux-gnu
bin=target/$target/dist/bwguard
gen=target/dist-gen

# glibc linked in statically (crt-static): the binary starts on any x86_64
# Linux, whatever its glibc, and in an empty chroot. Name resolution still
# works there: glibc 2.34 and later has its files and dns lookups built in,
# and the TLS roots are compiled in (webpki-roots).
RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked --profile dist --target "$target"
if readelf -d "$bin" | grep -q '(NEEDED)' || readelf -l "$bin" | grep -q 'INTERP'; then
  echo "dist.sh: $bin has dynamic dependencies" >&2
  exit 1
fi

# What the package installs beside the binary, made by the binary itself.
rm -rf "$gen" && mkdir -p "$gen"
"$bin" man > "$gen/bwguard.1"
"$bin" completions bash > "$gen/bwguard.bash"
"$bin" completions zsh > "$gen/_bwguard"
"$bin" completions fish > "$gen/bwguard.fish"
when=$(git log -1 --format=%cD 2>/dev/null || date -R)
cat > "$gen/changelog.Debian" <<CHANGES
bwguard ($version-1) unstable; urgency=medium

  * Release $version; the changes are in /usr/share/doc/bwguard/changelog.gz.

 -- the bwguard developers <bwguard@example.org>  $when
CHANGES

command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --version 3.7.0
rm -rf dist && mkdir -p dist
deb=bwguard_${version}_amd64.deb
cargo deb --no-build --no-strip --profile dist --target "$target" --output "dist/$deb"
cp "$bin" "dist/bwguard-$version-x86_64-linux"
(cd dist && sha256sum "bwguard-$version-x86_64-linux" "$deb" > SHA256SUMS)
ls -l dist
