#!/usr/bin/env bash
# Benchmark: the database's downtime under `backup --pause-db` against what
# the community scripts do (stop the whole stack, tar | gzip, start), on the
# Docker test bed of the tests (a real dockerd, the stand-in stack), in one
# run, as a ratio. Not a test. Needs root, docker.io, docker-compose and
# busybox-static (as .ci/run installs them).
#
# usage: bench/downtime.sh [SIZE_GIB...]     (default: 1 4)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="${*:-1 4}"
BWGUARD_DOCKER_TESTS=1 BWGUARD_BENCH_GIB="$sizes" \
  cargo test --release --locked --test cli bench_downtime -- --ignored --nocapture --test-threads 1 2>&1 |
  grep -E '^\|'
