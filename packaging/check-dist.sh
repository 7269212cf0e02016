#!/usr/bin/env bash
# Checks what packaging/dist.sh built, as root on a Debian-like host (CI):
# - the static binary runs `demo` in an empty chroot holding only itself,
#   /proc and /tmp, and there resolves an S3 endpoint's host name (from an
#   /etc/hosts added for that) and lists its bucket (a stand-in S3 on
#   loopback that answers an empty listing);
# - lintian finds no error in the .deb;
# - the .deb installs (binary, man page, completions, docs), runs from
#   /usr/bin, and removes cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
bin=dist/bwguard-$version-x86_64-linux
deb=dist/bwguard_${version}_amd64.deb
(cd dist && sha256sum -c SHA256SUMS)

root=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  umount "$root/proc" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT
install -m 0755 "$bin" "$root/bwguard"
mkdir -m 0555 "$root/proc" && mkdir -m 1777 "$root/tmp"
mount -t proc proc "$root/proc"
echo "== demo in an empty chroot"
chroot "$root" /bwguard demo > "$root/tmp/demo.log" 2>&1 || { cat "$root/tmp/demo.log"; exit 1; }
tail -n 3 "$root/tmp/demo.log"

echo "== an S3 endpoint by host name, from the chroot"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 - "$port" <<'PY' &
import http.server, sys
class S3(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                b'<Name>bucket</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>')
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), S3).serve_forever()
PY
server=$!
mkdir -p "$root/etc" "$root/tmp/install/bwdata"
echo "127.0.0.1 s3.bwguard.test" > "$root/etc/hosts"
recipient=$(age-keygen 2>/dev/null | sed -n 's/^# public key: //p')
add() {
  AWS_ACCESS_KEY_ID=GKtest AWS_SECRET_ACCESS_KEY=secret chroot "$root" \
    /bwguard --bwdata /tmp/install/bwdata --store "/tmp/store-$1" remote add offsite s3://bucket/host \
    --endpoint "http://s3.bwguard.test:$port" --recipient "$recipient"
}
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
add resolved 2>&1 | tee "$root/tmp/add.log"
grep -q "Reached s3://bucket/host" "$root/tmp/add.log"
rm "$root/etc/hosts"
if add unresolved > "$root/tmp/add.log" 2>&1; then
  echo "check-dist.sh: without /etc/hosts the name resolved anyway" >&2
  exit 1
fi
grep -qi "host not found\|resolve\|lookup" "$root/tmp/add.log" || { cat "$root/tmp/add.log"; exit 1; }

# The units `schedule install` writes pass `systemd-analyze verify` (which
# looks up their Documentation= man page) whether or not the page is
# installed: $1 the binary, $2 what Documentation= must be ("" for none).
units() {
  local at; at=$(mktemp -d -p "$root/tmp")
  mkdir -p "$at/bwdata" "$at/units" && cp fixtures/config.yml "$at/bwdata/"
  BWGUARD_SYSTEMD=no "$1" --bwdata "$at/bwdata" --store "$at/store" schedule install \
    --unit-dir "$at/units" --keep-daily 7 > /dev/null
  systemd-analyze verify "$at/units/bwguard-backup.service" "$at/units/bwguard-backup.timer"
  test "$(sed -n 's/^Documentation=//p' "$at/units/bwguard-backup.service")" = "$2"
}
echo "== schedule install's units without the man page"
units "$PWD/$bin" ""

echo "== lintian"
lintian --fail-on error --tag-display-limit 0 "$deb"

echo "== dpkg -i"
dpkg -i "$deb"
test "$(/usr/bin/bwguard --version)" = "bwguard $version"
man -w bwguard
man bwguard | grep -q "EXIT STATUS"
for f in /usr/share/bash-completion/completions/bwguard /usr/share/zsh/vendor-completions/_bwguard \
    /usr/share/fish/vendor_completions.d/bwguard.fish /usr/share/doc/bwguard/copyright \
    /usr/share/doc/bwguard/changelog.gz /usr/share/doc/bwguard/README.md /usr/share/doc/bwguard/docs/guide.md; do
  test -s "$f" || { echo "check-dist.sh: $f is missing" >&2; exit 1; }
done
bash -c 'source /usr/share/bash-completion/completions/bwguard && complete -p bwguard' | grep -q bwguard
echo "== schedule install's units with the man page installed"
units /usr/bin/bwguard "man:bwguard(1)"
dpkg -r bwguard
test ! -e /usr/bin/bwguard && ! man -w bwguard 2>/dev/null
echo "check-dist.sh: all good; sizes:"
ls -l "$bin" "$deb"
