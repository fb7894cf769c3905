#!/usr/bin/env bash
# Benchmark entry point (`npm run bench [-- <scenario>]`). Scenarios:
#   http     (default) direct vs Tollgate vs nginx reverse proxy, wrk, see http-proxy.sh
#   profile  Tollgate under load with --cpu-prof, top functions by self time, see profile.sh
#   https    HTTPS intercept vs tunnel vs direct vs Squid, handshake cost, see https.sh
#   extauthz Tollgate's ext_authz server vs opa-envoy-plugin with ghz, see extauthz.sh
#   tracing  Tollgate with tracing off vs on (live Jaeger collector), see tracing.sh
#   lifecycle bundle swap time and p99 during a swap, replay throughput, see policy-lifecycle.ts
#   soak     10 min at 70% of max throughput, mixed allowed/denied/hostile: errors, RSS, fds, see soak.sh
#   gate     strict request reading vs proxy.pathNormalization: base, saturated, see gate-cost.sh
#   mcp      MCP tools/call p99 at a paced 500 req/s, request-only vs request+response decisions, see mcp-response.sh
#   footprint bare Node forwarder vs Tollgate: req/s, CPU/req, paced p99/p99.9, GC, RSS; ext_authz vs opa-envoy-plugin, see footprint.sh
#   footprint-interleaved the same targets alive at once, the load moved between them in short windows: CPU/req ratios on a shared VM, see footprint-interleaved.sh
#   import-cost RSS and V8 heap each dependency adds to a bare Node process at start, see import-cost.mjs
#   state    added latency of a budget with the in-memory vs the Redis store vs a direct Redis round trip, see state.sh
#   chain    PDP chain vs its local stage alone, paced with vegeta: added p50/p99, see chain.sh
#   decision-log CPU per decision-log record vs plain JSON lines; the seal in both hash schemes, see decision-log.ts
#   tracing-cost CPU per call of tracing off, on at the default sampling, on with every call exported, see tracing-cost.ts
# Settings come from BENCH_* environment variables documented in each script.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
scenario=${1:-http}
case $scenario in
  http) exec bash "$here/http-proxy.sh" ;;
  profile) exec bash "$here/profile.sh" ;;
  https) exec bash "$here/https.sh" ;;
  extauthz) exec bash "$here/extauthz.sh" ;;
  tracing) exec bash "$here/tracing.sh" ;;
  lifecycle) exec "$here/../node_modules/.bin/node" "$here/policy-lifecycle.ts" ;;
  soak) exec bash "$here/soak.sh" ;;
  gate) exec bash "$here/gate-cost.sh" ;;
  mcp) exec bash "$here/mcp-response.sh" ;;
  state) exec bash "$here/state.sh" ;;
  chain) exec bash "$here/chain.sh" ;;
  footprint) exec bash "$here/footprint.sh" ;;
  footprint-interleaved) exec bash "$here/footprint-interleaved.sh" ;;
  import-cost) exec "$here/../node_modules/.bin/node" "$here/import-cost.mjs" ;;
  decision-log) exec "$here/../node_modules/.bin/node" "$here/decision-log.ts" ;;
  tracing-cost) exec "$here/../node_modules/.bin/node" "$here/tracing-cost.ts" ;;
  -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "bench: unknown scenario \"$scenario\" (http, profile, https, extauthz, tracing, lifecycle, soak, gate, mcp, state, chain, footprint, footprint-interleaved, import-cost, decision-log, tracing-cost)" >&2; exit 2 ;;
esac
