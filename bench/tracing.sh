#!/usr/bin/env bash
# Tracing cost: requests/s and p99 through Tollgate with tracing off, on with
# the default sampling (roots at ratio 0.1; denials and sampled agent traces always) and
# on with every call sampled (samplerRatio 1), each exporting with the batch OTLP gRPC
# exporter to a live Jaeger v2 collector on loopback, in one run, BENCH_ROUNDS rounds
# interleaved, at saturation (-c 32) and paced (-c 4, 2 ms think
# time). Same pinning as http-proxy.sh: wrk, the upstream and Jaeger on CPU 0, the
# Tollgate under test alone on CPU 1. Default policy bundle, support-bot → payments.internal.
# Env: BENCH_DURATION (10) BENCH_WARMUP (3) BENCH_ROUNDS (3) BENCH_LOADS ("32 4@2") BENCH_PIN
#      BENCH_TRACING_PROTOCOL (grpc | http/protobuf | http/json; default grpc)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-3}
ROUNDS=${BENCH_ROUNDS:-3}
LOADS=${BENCH_LOADS:-"32 4@2"}
URL_PATH=/v1/refunds/r-1

require_tools
make_workdir

start_upstream "$URL_PATH"

start_jaeger

select_bundle "${BENCH_BUNDLE:-default}"
start_variant() { # start_variant <name> <tracing yaml>
  render "$BENCH/tollgate.yaml.in" "$WORK/$1.yaml" "BUNDLE=$BUNDLE" "UPSTREAM_PORT=$UPSTREAM_PORT"
  printf '%s\n' "$2" >>"$WORK/$1.yaml"
  start_bg "$PROXY_CPU" "$WORK/$1.out" "$NODE" "$ROOT/src/cli/main.ts" run --config "$WORK/$1.yaml"
  local pid=$LAST_PID deadline=$((SECONDS + 30))
  until grep -q 'listening: proxy http://' "$WORK/$1.out" 2>/dev/null; do
    alive "$pid" || die "tollgate ($1) exited: $(cat "$WORK/$1.out")"
    [ $SECONDS -lt $deadline ] || die "tollgate ($1) did not start"
    sleep 0.1
  done
  eval "PID_$1=$pid PORT_$1=$(sed -n 's|.*listening: proxy http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$WORK/$1.out" | head -1)"
}
start_variant off $'tracing:\n  enabled: false'
PROTOCOL=${BENCH_TRACING_PROTOCOL:-grpc}
ENDPOINT=http://127.0.0.1:$([ "$PROTOCOL" = grpc ] && echo "$OTLP" || echo "$OTLP_HTTP")
TRACED="tracing:
  enabled: true
  endpoint: $ENDPOINT
  protocol: $PROTOCOL
  serviceName: tollgate-bench"
start_variant on "$TRACED"
start_variant all "$TRACED
  samplerRatio: 1"
VARIANTS="off on all"
for v in $VARIANTS; do
  port_var=PORT_$v
  [ "$(curl -s -o /dev/null -w '%{http_code}' -x "http://127.0.0.1:${!port_var}" "http://payments.internal$URL_PATH")" = 200 ] || die "tollgate ($v) does not allow the benchmark request"
done

printf '| tracing | load | req/s | p50 ms | p99 ms | Tollgate CPU | round |\n|---|---|---:|---:|---:|---:|---:|\n' >"$WORK/table.md"
: >"$WORK/rows.tsv"
HZ=$(getconf CLK_TCK)
for round in $(seq 1 "$ROUNDS"); do
  for load in $LOADS; do
    for v in $VARIANTS; do
      port_var=PORT_$v; pid_var=PID_$v
      conns=${load%@*}; delay=0; case $load in *@*) delay=${load#*@} ;; esac
      wait_quiet
      for phase in warm measure; do
        secs=$([ "$phase" = warm ] && echo "$WARMUP" || echo "$DURATION")
        t0=$(cpu_ticks "${!pid_var}")
        BENCH_ABSOLUTE_URL=http://payments.internal$URL_PATH BENCH_PATH=$URL_PATH BENCH_HOST=payments.internal BENCH_DELAY_MS=$delay \
          $([ "$PIN" = 1 ] && echo "taskset -c $LOADGEN_CPU") wrk -t 1 -c "$conns" -d "${secs}s" --timeout 5s -s "$BENCH/wrk-report.lua" "http://127.0.0.1:${!port_var}" >"$WORK/wrk.out" 2>&1
        t1=$(cpu_ticks "${!pid_var}")
      done
      line=$(grep '^BENCH ' "$WORK/wrk.out") || die "wrk printed no result: $(cat "$WORK/wrk.out")"
      eval "$(echo "${line#BENCH }" | tr ' ' '\n' | sed 's/^/w_/')"
      rps=$(awk -v r="$w_requests" -v d="$w_duration_us" 'BEGIN {printf "%.0f", r / (d / 1e6)}')
      cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v s="$DURATION" 'BEGIN {printf "%.0f", 100 * t / hz / s}')
      label=$([ "$delay" = 0 ] && echo "-c $conns" || echo "-c $conns, ${delay} ms think time")
      printf '| %s | %s | %s | %.2f | %.2f | %s%% | %s |\n' "$v" "$label" "$rps" "$(echo "$w_p50_us/1000" | bc -l)" "$(echo "$w_p99_us/1000" | bc -l)" "$cpu" "$round" >>"$WORK/table.md"
      printf '%s\t%s\t%s\t%s\n' "$v" "$load" "$rps" "$w_p99_us" >>"$WORK/rows.tsv"
      log "round $round $v $load: $rps req/s, p99 ${w_p99_us}us, CPU $cpu%"
    done
  done
done
spans=$(curl -s "http://127.0.0.1:$QUERY/api/services" | tr -d '\n')

echo "## Tracing on vs off ($(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$ROOT" rev-parse --short HEAD))"
echo
echo "Machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo); wrk -t 1, ${DURATION}s after ${WARMUP}s warm-up, $ROUNDS rounds interleaved; pinning $PIN; collector: Jaeger v2 (OTLP $PROTOCOL, batch exporter); Jaeger services: $spans"
echo
cat "$WORK/table.md"
echo
label_of() { case $1 in on) echo "on (default sampling)" ;; all) echo "on (every call sampled)" ;; *) echo "$1" ;; esac; }
for load in $LOADS; do
  for v in on all; do
  awk -F'\t' -v load="$load" -v v="$v" -v label="$(label_of "$v")" '
    $2 == load { n[$1]++; r[$1, n[$1]] = $3; p[$1, n[$1]] = $4 }
    function med(k, a,   i, j, t, m, x) { m = n[k]; for (i = 1; i <= m; i++) x[i] = a[k, i]; for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t } return x[int((m + 1) / 2)] }
    END {
      off = med("off", r); on = med(v, r)
      # Each round runs the variants back to back: the per-round ratio cancels slow drift of the machine.
      for (i = 1; i <= n["off"]; i++) { c["pair", i] = 100 * (r["off", i] - r[v, i]) / r["off", i]; lo = (i == 1 || c["pair", i] < lo) ? c["pair", i] : lo; hi = (i == 1 || c["pair", i] > hi) ? c["pair", i] : hi }
      n["pair"] = n["off"]
      printf "- load %s, %s: median req/s off %d, on %d → tracing costs %.1f%% of throughput (target ≤ 15%%); per round %.1f%% median (%.1f–%.1f%%); median p99 off %.2f ms, on %.2f ms\n", load, label, off, on, 100 * (off - on) / off, med("pair", c), lo, hi, med("off", p) / 1000, med(v, p) / 1000
    }' "$WORK/rows.tsv"
  done
done
# Spans the exporter could not deliver or had to drop would make "on" look cheaper than it is.
echo "- export warnings from the traced Tollgates (failed or dropped spans): default sampling $(grep -c 'span export failed' "$WORK/on.out" || true), every call $(grep -c 'span export failed' "$WORK/all.out" || true)"
