#!/usr/bin/env bash
# The whole test suite N times in a row (default 3) while stress-ng keeps every core busy, as
# CI's shared machines are: proof that no test depends on how fast this machine is right now.
#   bash scripts/loaded-suite.sh [RUNS] [STRESSORS]   (STRESSORS defaults to the core count)
# Prints each run's vitest summary, failed tests and the load average; the log of a failed run
# is kept in $TMPDIR; exits non-zero if any run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
stressors=${2:-$(nproc)}
command -v stress-ng >/dev/null || { echo "stress-ng missing: apt-get install -y stress-ng" >&2; exit 2; }
stress-ng --cpu "$stressors" --timeout 4h >/dev/null 2>&1 &
stress=$!
trap 'kill "$stress" 2>/dev/null' EXIT
failed=0
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  log="${TMPDIR:-/tmp}/loaded-suite-run-$i.log"
  npx vitest run >"$log" 2>&1
  rc=$?
  sed -i 's/\x1b\[[0-9;]*m//g' "$log"
  echo "run $i: exit $rc, $(( $(date +%s) - start )) s, load $(cut -d' ' -f1-3 /proc/loadavg), stress-ng --cpu $stressors"
  grep -E '^\s*(Test Files|Tests)\s' "$log"
  grep -E '^\s*(FAIL|×) ' "$log" | sort -u | head -20
  if [ "$rc" -eq 0 ]; then rm -f "$log"; else failed=1; echo "  log: $log"; fi
done
exit "$failed"
