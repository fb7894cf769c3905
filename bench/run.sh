#!/usr/bin/env bash
# Benchmark entry point (`npm run bench [-- <scenario>]`). Scenarios:
#   http     (default) direct vs Tollgate vs nginx reverse proxy, wrk, see http-proxy.sh
#   profile  Tollgate under load with --cpu-prof, top functions by self time, see profile.sh
# Settings come from BENCH_* environment variables documented in each script.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
scenario=${1:-http}
case $scenario in
  http) exec bash "$here/http-proxy.sh" ;;
  profile) exec bash "$here/profile.sh" ;;
  -h | --help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "bench: unknown scenario \"$scenario\" (http, profile)" >&2; exit 2 ;;
esac
