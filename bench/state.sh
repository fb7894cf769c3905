#!/usr/bin/env bash
# State cost: added latency per decision when the policy names a budget, with the
# in-memory store vs the Redis store, against a direct Redis round trip measured in the
# same run. Three Tollgates with one bench policy (bench/state-budget.rego): "none" (the
# policy names no state: the baseline), "memory" and "redis" (every call charges one
# budget: input.usage read, second evaluation, atomic consume). vegeta sends a paced
# BENCH_RATE (1000) req/s for BENCH_DURATION (10) s, origin-form GET to payments.internal;
# the direct round trip is a paced client loop (bench/state-rtt.ts: PING and the consume
# script) and redis-benchmark (closed loop, -c 1). Same pinning as http-proxy.sh: load
# generator, upstream and redis-server on CPU 0, the Tollgate under test on CPU 1.
# Env: BENCH_RATE (1000) BENCH_DURATION (10) BENCH_WARMUP (3) BENCH_PIN
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RATE=${BENCH_RATE:-1000}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-3}
VEGETA=${VEGETA:-$ROOT/.tools/bin/vegeta}
URL_PATH=/v1/refunds/r-1

require_tools
[ -x "$VEGETA" ] || die "no $VEGETA (bash scripts/install-tools.sh vegeta)"
command -v redis-server >/dev/null || die "no redis-server (bash scripts/install-tools.sh debian)"
make_workdir

start_upstream "$URL_PATH"

REDIS_PORT=$(free_port)
start_bg "$LOADGEN_CPU" "$WORK/redis.out" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no
wait_until 10 "redis-server on $REDIS_PORT" redis-cli -p "$REDIS_PORT" ping

mkdir -p "$WORK/policy"
cp "$BENCH/state-budget.rego" "$WORK/policy/"
"$OPA" build -t wasm -e tollgate/authz/decision -o "$WORK/state-bundle.tar.gz" "$WORK/policy" >&2
BUNDLE=$WORK/state-bundle.tar.gz

start_variant() { # start_variant <name> <bench.state true|false> [extra yaml]
  cat >"$WORK/$1.yaml" <<YAML
agent: { id: support-bot, role: support }
pdp: { bundle: "$BUNDLE", data: { bench: { state: $2 } } }
proxy: { listen: 127.0.0.1:0, resolve: { "payments.internal:80": "127.0.0.1:$UPSTREAM_PORT" } }
admin: { listen: 127.0.0.1:0 }
extAuthz: { listen: 127.0.0.1:0 }
logLevel: warn
${3:-}
YAML
  start_tollgate_config "$WORK/$1.yaml" "$1"
  eval "PID_$1=$TOLLGATE_PID PORT_$1=$TOLLGATE_PORT"
}
start_variant none false
start_variant memory true
start_variant redis true "state: { redis: redis://127.0.0.1:$REDIS_PORT, timeoutMs: 200 }"
VARIANTS="none memory redis"

printf '| variant | req/s sent | ok | p50 ms | p99 ms | p50 added vs none | p99 added vs none |\n|---|---:|---:|---:|---:|---:|---:|\n' >"$WORK/table.md"
declare -A P50 P99
for v in $VARIANTS; do
  port_var=PORT_$v
  printf 'GET http://127.0.0.1:%s%s\nHost: payments.internal\n' "${!port_var}" "$URL_PATH" >"$WORK/$v.targets"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: payments.internal' "http://127.0.0.1:${!port_var}$URL_PATH")" = 200 ] ||
    die "tollgate ($v) does not allow the benchmark request: $(curl -s -H 'Host: payments.internal' "http://127.0.0.1:${!port_var}$URL_PATH")"
  wait_quiet
  for phase in warm measure; do
    secs=$([ "$phase" = warm ] && echo "$WARMUP" || echo "$DURATION")
    loadgen "$VEGETA" attack -targets="$WORK/$v.targets" -rate="$RATE/1s" -duration="${secs}s" -timeout=5s >"$WORK/$v.bin"
  done
  "$VEGETA" report -type=json "$WORK/$v.bin" >"$WORK/$v.json"
  read -r p50 p99 ok < <("$NODE" -e '
    const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
    console.log((r.latencies["50th"] / 1e6).toFixed(3), (r.latencies["99th"] / 1e6).toFixed(3), r.status_codes["200"] ?? 0);
  ' "$WORK/$v.json")
  P50[$v]=$p50; P99[$v]=$p99
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$v" "$RATE" "$ok" "$p50" "$p99" \
    "$(awk -v a="$p50" -v b="${P50[none]}" 'BEGIN {printf "%+.3f", a - b}')" \
    "$(awk -v a="$p99" -v b="${P99[none]}" 'BEGIN {printf "%+.3f", a - b}')" >>"$WORK/table.md"
done

log "direct redis round trips (paced client loop, then redis-benchmark)"
wait_quiet
RTT=$(loadgen "$NODE" "$BENCH/state-rtt.ts" "redis://127.0.0.1:$REDIS_PORT")
BENCHMARK=$(loadgen redis-benchmark -p "$REDIS_PORT" -c 1 -n 20000 -t ping_mbulk --csv | tail -1)

echo "## State: added latency per decision (paced $RATE req/s, ${DURATION} s per variant)"
echo
cat "$WORK/table.md"
echo
echo "Direct Redis round trip, same redis-server, same run:"
echo
echo '| call | n | p50 ms | p99 ms |'
echo '|---|---:|---:|---:|'
"$NODE" -e 'for (const r of JSON.parse(process.argv[1])) console.log(`| ${r.call} (paced client loop, ioredis) | ${r.n} | ${r.p50_ms.toFixed(3)} | ${r.p99_ms.toFixed(3)} |`)' "$RTT"
echo "| PING (redis-benchmark -c 1, closed loop; csv: $BENCHMARK) | 20000 | see csv | see csv |"
echo
echo "tools: vegeta $(cat "$VEGETA.version" 2>/dev/null || echo '(unknown version)'), $(redis-server --version | awk '{print $3}'), node $("$NODE" --version); pinning $([ "$PIN" = 1 ] && echo on || echo off)"
