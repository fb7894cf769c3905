#!/usr/bin/env bash
# The PDP chain's cost: p50/p99 at a paced (open-loop) rate through the proxy, for
#   local         pdp.type wasm: one in-process stage (the embedded seed bundle) alone
#   chain         pdp.type chain, deny-overrides: central = the seed bundle in process,
#                 local = the hybrid example's EU layer (policies/hybrid/local.tar.gz)
#   chain-remote  the same chain with the central stage on opa-envoy-plugin (ext_authz
#                 gRPC over loopback), as a central team's OPA would be deployed
# The chain's added latency is each chain variant's percentile minus local's.
# Every request is GET http://payments.internal/v1/refunds/r-1 as support-bot (region
# eu): allowed by every layer, so each variant answers 200 from the same upstream.
#
#   bench/chain.sh                   CHAIN_RATE=1000 CHAIN_SECONDS=15 CHAIN_ROUNDS=1
#
# Needs: nginx, curl, taskset (scripts/install-tools.sh debian), vegeta and
# opa-envoy-plugin (scripts/install-tools.sh vegeta opa-envoy-plugin).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RATE=${CHAIN_RATE:-1000}
SECONDS_EACH=${CHAIN_SECONDS:-15}
ROUNDS=${CHAIN_ROUNDS:-1}
WARMUP=${CHAIN_WARMUP:-3}
VEGETA=${VEGETA:-$ROOT/.tools/bin/vegeta}
OPA_ENVOY=${OPA_ENVOY:-$ROOT/.tools/bin/opa-envoy-plugin}

require_tools
[ -x "$VEGETA" ] || die "no $VEGETA (bash scripts/install-tools.sh vegeta)"
[ -x "$OPA_ENVOY" ] || die "no $OPA_ENVOY (bash scripts/install-tools.sh opa-envoy-plugin)"
[ -f "$ROOT/policies/hybrid/local.tar.gz" ] || die "policies/hybrid/local.tar.gz is missing (npm run build:policies)"
make_workdir
log "work dir $WORK; ${RATE} req/s for ${SECONDS_EACH}s per variant, ${ROUNDS} round(s)"

start_upstream /

# The central OPA: the seed policies served by opa-envoy-plugin (central-remote.rego reads
# the agent from the CheckRequest's metadata_context) on the load generator's CPU
# (in a real deployment it runs elsewhere; here it must not share the sidecar's core).
GRPC_PORT=$(free_port)
start_bg "$LOADGEN_CPU" "$WORK/opa-envoy.out" "$OPA_ENVOY" run --server --addr=127.0.0.1:0 --log-level=error \
  "--set=plugins.envoy_ext_authz_grpc.addr=127.0.0.1:$GRPC_PORT" \
  --set=plugins.envoy_ext_authz_grpc.path=tollgate/remote/decision --set=decision_logs.console=false \
  --ignore='*_test.rego' --ignore=dist --ignore=hybrid --ignore=cedar "$ROOT/policies" "$BENCH/central-remote.rego"
wait_until 30 "opa-envoy-plugin on $GRPC_PORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$GRPC_PORT"

common() {
  cat <<YAML
agent: { id: support-bot, role: support, labels: { region: eu } }
proxy:
  listen: 127.0.0.1:0
  resolve: { "payments.internal:80": "127.0.0.1:$UPSTREAM_PORT" }
admin: { listen: 127.0.0.1:0 }
extAuthz: { enabled: false }
logLevel: warn
YAML
}
local_stage="{ name: local, type: wasm, bundle: \"$ROOT/policies/hybrid/local.tar.gz\", decisionPath: tollgate/local/decision }"
{ common; echo 'pdp: { type: wasm }'; } >"$WORK/local.yaml"
{ common; echo "pdp: { type: chain, stages: [ { name: central, type: wasm }, $local_stage ] }"; } >"$WORK/chain.yaml"
{ common; echo "pdp: { type: chain, stages: [ { name: central, type: extauthz, target: \"127.0.0.1:$GRPC_PORT\" }, $local_stage ] }"; } >"$WORK/chain-remote.yaml"

RESULTS=$WORK/results.tsv
printf 'round\tvariant\trequests\tsuccess\tp50_us\tp99_us\tmax_us\tstatus\n' >"$RESULTS"
measure() { # measure <round> <variant>
  local round=$1 variant=$2
  start_tollgate_config "$WORK/$variant.yaml" "$variant" ${BENCH_NODE_FLAGS:-}
  # The first decisions may miss a stage's deadline while the peers warm up: poll for an allow.
  probe_ok() { [ "$(tollgate_status)" = 200 ]; }
  wait_until 30 "$variant to allow the probe request (last answer: see $WORK/curl-body)" probe_ok
  attack() { # attack <seconds> <out>
    (
      unset NO_PROXY no_proxy
      export HTTP_PROXY=http://127.0.0.1:$TOLLGATE_PORT
      echo "GET http://payments.internal/v1/refunds/r-1" |
        loadgen "$VEGETA" attack -rate="$RATE/1s" -duration="${1}s" -timeout=5s -max-workers=256 -output="$2"
    )
  }
  attack "$WARMUP" "$WORK/warmup.bin"
  wait_quiet
  attack "$SECONDS_EACH" "$WORK/$variant-$round.bin"
  "$VEGETA" report -type=json "$WORK/$variant-$round.bin" >"$WORK/$variant-$round.json"
  "$NODE" -e '
    const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
    const us = (ns) => Math.round(ns / 1000);
    const codes = Object.entries(r.status_codes ?? {}).map(([c, n]) => `${c}:${n}`).join(",");
    process.stdout.write([process.argv[2], process.argv[3], r.requests, r.success, us(r.latencies["50th"]), us(r.latencies["99th"]), us(r.latencies.max), codes].join("\t") + "\n");
  ' "$WORK/$variant-$round.json" "$round" "$variant" >>"$RESULTS"
  log "$(tail -1 "$RESULTS")"
  stop_pid "$TOLLGATE_PID" TERM
}

for round in $(seq 1 "$ROUNDS"); do
  for variant in local chain chain-remote; do measure "$round" "$variant"; done
done

echo
column -t -s $'\t' "$RESULTS"
"$NODE" -e '
  const rows = require("node:fs").readFileSync(process.argv[1], "utf8").trim().split("\n").slice(1).map((l) => l.split("\t"));
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
  const p = (variant, col) => median(rows.filter((r) => r[1] === variant).map((r) => Number(r[col])));
  for (const v of ["chain", "chain-remote"]) {
    console.log(`${v}: added p50 ${p(v, 4) - p("local", 4)} us, added p99 ${p(v, 5) - p("local", 5)} us over local (medians of rounds)`);
  }
' "$RESULTS"
