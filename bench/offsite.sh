#!/usr/bin/env bash
# Benchmark of the off-site commands: push, verify --remote (plain and deep)
# and pull of one snapshot, against a three-node Garage cluster on loopback
# (replication factor 3), with wall time and peak RSS. Not a test.
#
# usage: bench/offsite.sh [SIZE_GB]     (default 1: the generated install's size)
# needs: garage (cargo install garage --locked), age-keygen (apt-get install age)
# env:   BENCH_DIR (default /var/tmp/bwguard-offsite-bench)
set -euo pipefail
cd "$(dirname "$0")/.."

size_gb=${1:-1}
dir=${BENCH_DIR:-/var/tmp/bwguard-offsite-bench}
for tool in garage age-keygen; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (see the usage above)" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

cargo build --release --quiet --bin bwguard --example make-install
bw=$PWD/target/release/bwguard
gen=$PWD/target/release/examples/make-install

rm -rf "$dir"
mkdir -p "$dir"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# Three nodes, one zone, replication factor 3.
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
for i in 1 2 3; do
  mkdir -p "$dir/node$i"
  cat > "$dir/node$i/garage.toml" <<EOF
metadata_dir = "$dir/node$i/meta"
data_dir = "$dir/node$i/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:$((39000 + i * 10 + 1))"
rpc_public_addr = "127.0.0.1:$((39000 + i * 10 + 1))"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$((39000 + i * 10))"
EOF
  RUST_LOG=warn garage -c "$dir/node$i/garage.toml" server >"$dir/node$i/log" 2>&1 &
  pids+=($!)
done
g() { garage -c "$dir/node1/garage.toml" "$@" >/dev/null; }
node_id() {
  for _ in $(seq 100); do
    garage -c "$dir/node$1/garage.toml" node id -q 2>/dev/null && return
    sleep 0.1
  done
  echo "garage node $1 did not start" >&2
  exit 1
}
ids=("$(node_id 1)" "$(node_id 2)" "$(node_id 3)")
g node connect "${ids[1]}"
g node connect "${ids[2]}"
for id in "${ids[@]}"; do g layout assign -z dc1 -c 100G "${id:0:16}"; done
g layout apply --version 1
key_id=GK0b0c0d0e0f101112131415
g key import --yes -n bench "$key_id" "$secret"
g bucket create bench
g bucket allow --read --write --owner bench --key bench
export AWS_ACCESS_KEY_ID=$key_id AWS_SECRET_ACCESS_KEY=$secret

vault_mb=$(python3 -c "print(max(1, round($size_gb * 1024 / 2.5)))")
"$gen" "$dir/install" --size-mb "$vault_mb" --backups 2 >/dev/null
age-keygen -o "$dir/identity.txt" 2>/dev/null
export BWGUARD_BWDATA=$dir/install/bwdata BWGUARD_STORE=$dir/store
for _ in $(seq 50); do
  "$bw" -q remote add bench s3://bench/host --endpoint http://127.0.0.1:39010 --region garage \
    --recipient "$(age-keygen -y "$dir/identity.txt")" >/dev/null 2>&1 && break
  sleep 0.2
done
id=$("$bw" -q --no-progress backup 2>/dev/null)
archive=$(stat -c %s "$dir/store/$id/data.tar.gz")

timed() {
  local what=$1
  shift
  /usr/bin/time -o "$dir/time.out" -f "%e %M %U %S" "$@" >/dev/null 2>"$dir/cmd.err" ||
    { echo "failed: $*" >&2; cat "$dir/cmd.err" >&2; exit 1; }
  read -r secs kib user sys <"$dir/time.out"
  printf '%-34s %8.2f s %6d MiB   cpu %.2f s\n' "$what" "$secs" "$((kib / 1024))" \
    "$(python3 -c "print($user + $sys)")"
}

echo "bwguard off-site benchmark: snapshot $id, data.tar.gz $(python3 -c "print(f'{$archive/2**30:.2f}')") GiB"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM; three Garage nodes on the same machine"
timed "push" "$bw" --no-progress push --remote bench
timed "verify --remote" "$bw" --no-progress verify --remote bench
timed "verify --remote --deep" "$bw" --no-progress verify --remote bench --deep --identity "$dir/identity.txt"
rm -rf "${dir:?}/store/$id"
timed "pull" "$bw" --no-progress pull "$id" --remote bench --identity "$dir/identity.txt"
"$bw" --no-progress verify "$id" --deep >/dev/null
echo "(time, peak RSS, and bwguard's own CPU; the pulled snapshot passed verify --deep)"
