#!/usr/bin/env bash
# p99 of an MCP tools/call through Tollgate at a paced (open-loop) rate, with request
# decisions only and with request + response decisions (mcp.response.decisionPath:
# tollgate/authz/response, seed policy: the result is scanned and its API key redacted).
#
#   bench/mcp-response.sh            MCP_RATE (500 req/s), MCP_SECONDS (20 per run)
#
# Each mode runs against a fresh Tollgate on its own core (PROXY_CPU); vegeta and the tool
# server share the other. Prints one line per mode: p50/p90/p99/max latency, success ratio,
# the response-decision counter read from /metrics (proof the second decision ran), and
# Tollgate's CPU time per request (user + system; less disturbed by a busy machine than latency).
# Needs: vegeta (scripts/install-tools.sh vegeta), curl, taskset.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RATE=${MCP_RATE:-500}
SECONDS_PER_RUN=${MCP_SECONDS:-20}
VEGETA=${VEGETA:-$ROOT/.tools/bin/vegeta}
[ -x "$VEGETA" ] || die "no $VEGETA (bash scripts/install-tools.sh vegeta)"
command -v taskset >/dev/null 2>&1 || PIN=0
[ "$(nproc)" -ge 2 ] || PIN=0
make_workdir

start_bg "$LOADGEN_CPU" "$WORK/upstream.out" "$NODE" "$BENCH/mcp-upstream.mjs" 0
wait_until 10 "the MCP tool server" grep -q '^[0-9]' "$WORK/upstream.out"
UPSTREAM_PORT=$(head -1 "$WORK/upstream.out")

body=$(printf '%s' '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup_order","arguments":{"id":"o-1001"}}}' | base64 -w0)
printf '{"method":"POST","url":"http://mcp.internal/mcp","header":{"Content-Type":["application/json"],"Accept":["application/json, text/event-stream"]},"body":"%s"}\n' "$body" >"$WORK/targets.jsonl"

run_mode() { # run_mode <name> <response decision path or "">
  local name=$1 path=$2
  cat >"$WORK/$name.yaml" <<YAML
agent: { id: support-bot, role: support }
proxy:
  listen: 127.0.0.1:0
  resolve: { "mcp.internal:80": "127.0.0.1:$UPSTREAM_PORT" }
admin: { listen: 127.0.0.1:0 }
extAuthz: { listen: 127.0.0.1:0 }
mcp: { response: { decisionPath: "$path" } }
logLevel: warn
YAML
  start_tollgate_config "$WORK/$name.yaml" "$name"
  local pid=$TOLLGATE_PID
  # Warm-up: JIT, pools, first evaluations (not measured).
  HTTP_PROXY=http://127.0.0.1:$TOLLGATE_PORT loadgen "$VEGETA" attack -format=json -targets="$WORK/targets.jsonl" \
    -rate="$RATE/1s" -duration=3s -timeout=10s >/dev/null
  wait_quiet
  local ticks0
  ticks0=$(cpu_ticks "$pid")
  HTTP_PROXY=http://127.0.0.1:$TOLLGATE_PORT loadgen "$VEGETA" attack -format=json -targets="$WORK/targets.jsonl" \
    -rate="$RATE/1s" -duration="${SECONDS_PER_RUN}s" -timeout=10s -output="$WORK/$name.bin"
  "$VEGETA" report -type=json "$WORK/$name.bin" >"$WORK/$name.json"
  # Tollgate's CPU per request (user + system, all threads): robust on a shared machine.
  local cpu_ticks_used=$(( $(cpu_ticks "$pid") - ticks0 ))
  local decisions
  decisions=$(curl -s "http://127.0.0.1:$TOLLGATE_ADMIN_PORT/metrics" | awk '/^tollgate_mcp_response_decisions_total/ {s += $2} END {print s + 0}')
  "$NODE" -e '
    const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
    const ms = (ns) => (ns / 1e6).toFixed(2);
    const codes = Object.entries(r.status_codes ?? {}).map(([c, n]) => `${c}:${n}`).join(" ");
    console.log(`${process.argv[2].padEnd(18)} rate ${r.rate.toFixed(0)}/s  p50 ${ms(r.latencies["50th"])} ms  p90 ${ms(r.latencies["90th"])} ms  p99 ${ms(r.latencies["99th"])} ms  max ${ms(r.latencies.max)} ms  success ${(r.success * 100).toFixed(2)}%  codes ${codes}  response decisions ${process.argv[3]}  tollgate CPU ${(1e6 * Number(process.argv[4]) / Number(process.argv[5]) / r.requests).toFixed(0)} µs/request`);
  ' "$WORK/$name.json" "$name" "$decisions" "$cpu_ticks_used" "$(getconf CLK_TCK)"
  stop_pid "$pid" TERM
}

log "MCP tools/call at ${RATE} req/s for ${SECONDS_PER_RUN}s per mode (pinning: $([ "$PIN" = 1 ] && echo "proxy on CPU $PROXY_CPU" || echo off))"
run_mode request-only ''
run_mode request+response tollgate/authz/response
