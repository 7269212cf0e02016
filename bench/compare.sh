#!/usr/bin/env bash
# Benchmark: bwguard against the commands an admin would otherwise use, on
# the same generated install, alternately, in one run. Not a test.
#
# usage: bench/compare.sh [SIZE_GB] [RUNS]     (default 1 GB, 3 runs)
#   SIZE_GB  total size of the generated install (database files and nightly
#            backups), e.g. 1, 4, 0.5
#   RUNS     how many times each command runs; medians are reported
# env: BENCH_DIR (default /var/tmp/bwguard-bench), LEVEL (bwguard --level)
set -euo pipefail
cd "$(dirname "$0")/.."

size_gb=${1:-1}
runs=${2:-3}
dir=${BENCH_DIR:-/var/tmp/bwguard-bench}

need=()
command -v pigz >/dev/null || need+=(pigz)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release --quiet --bin bwguard --example make-install
bw=$PWD/target/release/bwguard
gen=$PWD/target/release/examples/make-install

# Total is about 2.5 x the vault size with two nightly backups.
vault_mb=$(python3 -c "print(max(1, round($size_gb * 1024 / 2.5)))")
rm -rf "$dir"
mkdir -p "$dir"
install=$dir/install
"$gen" "$install" --size-mb "$vault_mb" --backups 2 >/dev/null
scope=(bwdata/config.yml bwdata/mssql bwdata/env bwdata/docker bwdata/nginx bwdata/web bwdata/core/aspnet-dataprotection bwdata/identity bwdata/scripts/run.sh bitwarden.sh)
data_bytes=$(cd "$install" && du -sb --apparent-size "${scope[@]}" | awk '{s+=$1} END {print s}')
store=$dir/store
export BWGUARD_BWDATA=$install/bwdata BWGUARD_STORE=$store
level_args=()
[ -n "${LEVEL:-}" ] && level_args=(--level "$LEVEL")

# timed ARRAY CMD...: runs CMD, appends its wall time in seconds to ARRAY
# and its peak RSS (KiB) to rss_all; a failing command stops the benchmark.
timed() {
  local name=$1
  shift
  if ! /usr/bin/time -o "$dir/time.out" -f '%e %M' "$@" >/dev/null 2>"$dir/cmd.err"; then
    echo "failed: $*" >&2
    cat "$dir/cmd.err" >&2
    exit 1
  fi
  local t m
  read -r t m < "$dir/time.out"
  eval "$name+=(\"\$t\")"
  last_rss=$m
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

# cold: drops the install's files from the page cache, so that both sides of
# the backup comparison read them from the disk. That is how a stopped
# server leaves them: SQL Server reads and writes its files unbuffered.
cold() {
  sync
  (cd "$install" && find "${scope[@]}" -type f -print0 | python3 -c '
import os, sys
for p in sys.stdin.buffer.read().split(b"\0"):
    if p:
        fd = os.open(p, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)')
}

declare -a b_bw b_ref r_bw r_ref v_bw v_ref rss_all
last_rss=0
ref_archive=$dir/ref.tar.gz
cd "$install"
for i in $(seq "$runs"); do
  # Backup: archive + per-file and archive SHA-256 + read-back check, each
  # side starting with the install's files out of the page cache.
  cold
  timed b_bw "$bw" --no-progress backup "${level_args[@]}"; rss_all+=("$last_rss")
  cold
  timed b_ref bash -c "tar -cf - ${scope[*]} | pigz -p2 -6 > $ref_archive && sha256sum $ref_archive"
  id=$("$bw" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshots"][0]["id"])')
  # Deep verify vs decompress + hash. bwguard reads archives from the device
  # (O_DIRECT), so the page cache cannot help it; the reference is given the
  # archive already cached, the most favourable case for it.
  timed v_bw "$bw" --no-progress verify --deep "$id"; rss_all+=("$last_rss")
  cat "$store/$id/data.tar.gz" >/dev/null
  timed v_ref bash -c "gzip -dc $store/$id/data.tar.gz | sha256sum"
  # Rollback (check, safety snapshot, stage, check every file, swap) vs
  # extracting by hand and checking every file.
  timed r_bw "$bw" --no-progress rollback "$id" --yes; rss_all+=("$last_rss")
  rm -rf "$dir/manual" && mkdir "$dir/manual"
  cat "$store/$id/data.tar.gz" >/dev/null
  timed r_ref bash -c "tar -xzf $store/$id/data.tar.gz -C $dir/manual && cd $dir/manual && sha256sum -c --quiet $store/$id/SHA256SUMS"
  rm -rf "$dir/manual"
  echo "run $i: backup ${b_bw[-1]}s vs ${b_ref[-1]}s, verify --deep ${v_bw[-1]}s vs ${v_ref[-1]}s, rollback ${r_bw[-1]}s vs ${r_ref[-1]}s" >&2
  # Keep the store from growing: drop this run's snapshots.
  rm -rf "${store:?}"/2*
done

archive=$("$bw" --no-progress backup "${level_args[@]}" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["archive_size"])')
gzip6=$(tar -cf - "${scope[@]}" | gzip -6 | wc -c)
rm -rf "${store:?}"/2* "$ref_archive"

bm=$(median "${b_bw[@]}"); brm=$(median "${b_ref[@]}")
vm=$(median "${v_bw[@]}"); vrm=$(median "${v_ref[@]}")
rm_=$(median "${r_bw[@]}"); rrm=$(median "${r_ref[@]}")
peak=$(printf '%s\n' "${rss_all[@]}" | sort -g | tail -1)

echo
echo "bwguard benchmark: $(python3 -c "print(f'{$data_bytes/2**30:.2f}')") GiB of install data, $runs runs, medians"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB RAM"
printf '%-58s %9s %9s %7s %s\n' "measure" "bwguard" "reference" "ratio" "target"
printf '%-58s %8ss %8ss %7s %s\n' "backup vs tar | pigz -p2 -6 && sha256sum" "$bm" "$brm" "$(ratio "$bm" "$brm")" "<= 0.30"
printf '%-58s %9s %9s %7s %s\n' "archive size vs gzip -6 (bytes)" "$archive" "$gzip6" "$(ratio "$archive" "$gzip6")" "<= 1.03"
printf '%-58s %8ss %8ss %7s %s\n' "rollback vs tar -xzf + sha256sum -c" "$rm_" "$rrm" "$(ratio "$rm_" "$rrm")" "<= 0.80"
printf '%-58s %8ss %8ss %7s %s\n' "verify --deep vs gzip -dc | sha256sum" "$vm" "$vrm" "$(ratio "$vm" "$vrm")" "<= 1.0"
printf '%-58s %8s MiB\n' "peak RSS of any bwguard command" "$((peak / 1024))"
