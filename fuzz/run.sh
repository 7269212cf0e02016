#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 30) and prints how
# many inputs each one executed. Exits non-zero if a target crashed, hung
# (an input running over FUZZ_TIMEOUT seconds, default 20) or did not build;
# the input that did it is saved under fuzz/artifacts/TARGET/ and the command
# to replay it is printed.
#
#   fuzz/run.sh 30          # CI
#   fuzz/run.sh 3600        # locally; the corpus grows in fuzz/corpus/ (ignored by git)
#
# Each run's libFuzzer output is in fuzz/logs/TARGET.log.
#
# Works on the stable toolchain. Targets are built without a sanitizer: bwguard
# forbids unsafe code, and libFuzzer's coverage, debug assertions and overflow
# checks need no nightly flag. FUZZ_SANITIZER=address builds with
# AddressSanitizer instead (a nightly flag, allowed on stable through
# RUSTC_BOOTSTRAP=1; about 3 times fewer executions per second).
# Installs cargo-fuzz (from crates.io, --locked) if it is missing.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-30}"
case "$seconds" in '' | *[!0-9]*)
  echo "usage: fuzz/run.sh SECONDS" >&2
  exit 2
  ;;
esac
sanitizer="${FUZZ_SANITIZER:-none}"
timeout="${FUZZ_TIMEOUT:-20}"
targets=(config_edit snapshot_reader state_files)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# 16 codegen units: the build takes about a third less time than with
# cargo-fuzz's default of 1, for about the same executions per second.
fuzz_flags=(--sanitizer "$sanitizer" --codegen-units 16)
build_env=()
if [ "$sanitizer" != none ]; then
  build_env=(env RUSTC_BOOTSTRAP=1)
fi

echo "== building ${targets[*]} (sanitizer: $sanitizer)"
start=$SECONDS
"${build_env[@]}" cargo fuzz build "${fuzz_flags[@]}"
echo "built in $((SECONDS - start)) s"

# FUZZ_SEED=N makes libFuzzer's choices repeatable (CI uses it, so a CI
# run explores what a longer local run with the same seed already did).
seed_args=()
if [ -n "${FUZZ_SEED:-}" ]; then seed_args=(-seed="$FUZZ_SEED"); fi

failed=()
summary=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" logs
  log="logs/$t.log"
  echo "== fuzzing $t for $seconds s"
  rc=0
  # New inputs go to corpus/$t (first directory); seeds/$t is only read.
  "${build_env[@]}" cargo fuzz run "${fuzz_flags[@]}" "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -timeout="$timeout" -dict="$t.dict" -print_final_stats=1 "${seed_args[@]}" \
    >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  runs="${runs:-?}"
  if [ "$rc" -eq 0 ]; then
    summary+=("$t: $runs executions in $seconds s, no crash")
  else
    failed+=("$t")
    summary+=("$t: FAILED (exit $rc) after $runs executions")
    echo "---- $t failed; the end of its log ($log):"
    tail -n 60 "$log"
    sed -n 's|.*Test unit written to .*/fuzz/\(artifacts/.*\)$|\1|p' "$log" | sort -u | while read -r a; do
      echo "replay (in fuzz/): cargo fuzz run ${fuzz_flags[*]} $t $a"
    done
  fi
done

echo "== fuzzing summary"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
