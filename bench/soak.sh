#!/usr/bin/env bash
# Soak benchmark (`npm run bench -- soak`): does Tollgate stay up under a long mixed load?
#
#   1. probe     each kind of request in the mix once (curl), with the status it got;
#   2. maximum   saturated throughput of the mix with wrk (-c 32, SOAK_MAX_SECONDS, 10 s,
#                after a 3 s warm-up);
#   3. soak      SOAK_SECONDS (600) at SOAK_LOAD_PCT (70) % of that maximum, paced
#                (open loop: vegeta sends at the rate whatever the latency), while RSS,
#                open file descriptors and threads of the Tollgate process are sampled
#                every SOAK_SAMPLE_SECONDS (5) from /proc/<pid>;
#   4. drain     after the load, wait until idle upstream pools are evicted and sample the
#                descriptors again; scrape /metrics for the label caps.
#
# The mix (bench/targets.mjs, "soak"): allowed (GET with query, POST JSON 1 KB, MCP
# tools/call 2 KB, MCP calls with many distinct tool names, and SOAK_POOL_HOSTS distinct
# allowed origins so upstream pools are created and evicted), denied (refund over the
# limit, unregistered host, denied MCP tool, SOAK_DENY_HOSTS distinct unknown
# destinations) and hostile (dot segments behind %2F, encoded slashes, bad JSON,
# duplicate keys, unknown MCP hosts with distinct tools): ~55 / 30 / 15 %.
#
# Report (Markdown on stdout, and into BENCH_REPORT when set): unexpected errors (5xx and
# connection errors/timeouts; must be 0), status codes, p50/p90/p99/max, RSS after the
# warm-up (SOAK_WARMUP seconds, default min(60, SOAK_SECONDS / 4)) vs the end (growth
# must stay under 10 %), file descriptors before, during and after the load.
#
# Env: SOAK_SECONDS SOAK_WARMUP SOAK_LOAD_PCT SOAK_RATE (fixed req/s; skips step 2)
#      SOAK_MAX_SECONDS SOAK_SAMPLE_SECONDS SOAK_POOL_HOSTS SOAK_DENY_HOSTS
#      SOAK_POOL_IDLE_MS (proxy.upstreamPoolIdleMs, 2000) SOAK_POOL_MAX (proxy.upstreamPoolMax, 32)
#      SOAK_MAX_LABEL_VALUES (metrics.maxLabelValues, 100) SOAK_MAX_WORKERS (vegeta, 512)
#      SOAK_DRAIN_MAX (longest wait for descriptors to settle after the load, 60 s)
#      BENCH_PIN BENCH_NODE_FLAGS BENCH_KEEP BENCH_REPORT BENCH_QUIET_PCT BENCH_QUIET_MAX
# Needs: nginx, wrk, curl (scripts/install-tools.sh debian), vegeta (scripts/install-tools.sh vegeta).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SOAK_SECONDS=${SOAK_SECONDS:-600}
WARMUP=${SOAK_WARMUP:-$(( SOAK_SECONDS / 4 < 60 ? SOAK_SECONDS / 4 : 60 ))}
LOAD_PCT=${SOAK_LOAD_PCT:-70}
MAX_SECONDS=${SOAK_MAX_SECONDS:-10}
SAMPLE=${SOAK_SAMPLE_SECONDS:-5}
POOL_IDLE_MS=${SOAK_POOL_IDLE_MS:-2000}
POOL_MAX=${SOAK_POOL_MAX:-32}
MAX_LABEL_VALUES=${SOAK_MAX_LABEL_VALUES:-100}
VEGETA=${VEGETA:-$ROOT/.tools/bin/vegeta}
export SOAK_POOL_HOSTS=${SOAK_POOL_HOSTS:-200} SOAK_DENY_HOSTS=${SOAK_DENY_HOSTS:-2000}

require_tools
[ -x "$VEGETA" ] || die "no $VEGETA (bash scripts/install-tools.sh vegeta)"
make_workdir
log "work dir $WORK; soak ${SOAK_SECONDS}s (warm-up ${WARMUP}s) at ${LOAD_PCT}% of the mix's maximum"

"$NODE" "$BENCH/targets.mjs" soak "$WORK" >&2

# --- upstream and Tollgate ------------------------------------------------------------
UPSTREAM_PORT=$(free_port)
start_nginx upstream "$BENCH/nginx-upstream.conf.in" "$LOADGEN_CPU" "PORT=$UPSTREAM_PORT"
UPSTREAM_PID=$LAST_PID
wait_until 10 "upstream nginx on $UPSTREAM_PORT" http_ok "http://127.0.0.1:$UPSTREAM_PORT/"

# The default policy, with the pool hosts registered for the support role (pdp.data).
{
  echo "agent: { id: support-bot, role: support }"
  echo "pdp: { data: $(cat "$WORK/soak.data.json") }"
  echo "proxy:"
  echo "  listen: 127.0.0.1:0"
  echo "  upstreamPoolIdleMs: $POOL_IDLE_MS"
  echo "  upstreamPoolMax: $POOL_MAX"
  echo "  resolve:"
  for h in payments.internal mcp.internal crm.internal; do echo "    \"$h:80\": \"127.0.0.1:$UPSTREAM_PORT\""; done
  for i in $(seq 0 $((SOAK_POOL_HOSTS - 1))); do echo "    \"svc$i.pool.soak:80\": \"127.0.0.1:$UPSTREAM_PORT\""; done
  echo "metrics: { maxLabelValues: $MAX_LABEL_VALUES }"
  echo "admin: { listen: 127.0.0.1:0 }"
  echo "extAuthz: { listen: 127.0.0.1:0 }"
  echo "logLevel: warn"
} >"$WORK/soak.yaml"
# shellcheck disable=SC2086
start_tollgate_config "$WORK/soak.yaml" tollgate ${BENCH_NODE_FLAGS:-}
log "Tollgate pid $TOLLGATE_PID, proxy :$TOLLGATE_PORT, admin :$TOLLGATE_ADMIN_PORT"

META=$WORK/meta.tsv
meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }

# --- 1. probe: one request of each kind -----------------------------------------------
# The first request of each kind in the vegeta list, sent with curl through the proxy.
"$NODE" -e '
  const fs = require("node:fs");
  const seen = new Set();
  const kinds = fs.readFileSync(process.argv[2], "utf8").trim().split("\n").map((l) => l.split("\t"));
  const lines = fs.readFileSync(process.argv[1], "utf8").split("\n");
  let k = 0;
  // The list interleaves kinds in the order of kinds.tsv, so the first len(kinds) lines are one of each.
  for (const [kind] of kinds) { const t = JSON.parse(lines[k++]); fs.writeFileSync(`${process.argv[3]}/probe-${kind}.json`, JSON.stringify(t)); }
' "$WORK/soak.targets.jsonl" "$WORK/soak.kinds.tsv" "$WORK"
PROBE=$WORK/probe.tsv
: >"$PROBE"
while IFS=$'\t' read -r kind class expect _weight; do
  read -r method url ctype body < <("$NODE" -e '
    const t = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
    const ct = (t.header["content-type"] ?? ["-"])[0];
    process.stdout.write(`${t.method} ${t.url} ${ct} ${t.body ?? "-"}\n`);' "$WORK/probe-$kind.json")
  args=(-s -o "$WORK/probe-$kind.body" -w '%{http_code}' -x "http://127.0.0.1:$TOLLGATE_PORT" -X "$method")
  [ "$ctype" = - ] || args+=(-H "content-type: $ctype")
  [ "$body" = - ] || { echo "$body" | base64 -d >"$WORK/probe-$kind.req"; args+=(--data-binary "@$WORK/probe-$kind.req"); }
  # --path-as-is: curl would otherwise remove dot segments before sending.
  status=$(curl --path-as-is "${args[@]}" "$url" || echo 000)
  printf '%s\t%s\t%s\t%s\n' "$kind" "$class" "$expect" "$status" >>"$PROBE"
  log "probe $kind ($class): $status (expected $expect)"
done <"$WORK/soak.kinds.tsv"

# --- sampling of the Tollgate process --------------------------------------------------
SAMPLES=$WORK/samples.tsv
printf 'seconds\tphase\trss_kb\tfds\tthreads\tcpu_ticks\theap_used_kb\theap_total_kb\n' >"$SAMPLES"
# V8's heap from Tollgate's own /metrics (prom-client's nodejs_heap_size_*): tells live
# objects (used) from a heap that grew its spaces (total) when RSS grows.
heap_kb() { # heap_kb <metric>
  curl -s --max-time 2 "http://127.0.0.1:$TOLLGATE_ADMIN_PORT/metrics" | awk -v m="$1" '$1 == m {printf "%d", $2 / 1024}'
}
sample() { # sample <phase>
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(( $(date +%s) - T0 ))" "$1" "$(rss_kb "$TOLLGATE_PID")" \
    "$(ls "/proc/$TOLLGATE_PID/fd" 2>/dev/null | wc -l)" "$(awk '/^Threads:/ {print $2}' "/proc/$TOLLGATE_PID/status")" \
    "$(cpu_ticks "$TOLLGATE_PID")" "$(heap_kb nodejs_heap_size_used_bytes)" "$(heap_kb nodejs_heap_size_total_bytes)" >>"$SAMPLES"
}
T0=$(date +%s)
sample idle

# --- 2. maximum throughput of the mix --------------------------------------------------
run_wrk_mix() { # run_wrk_mix <seconds> <out>
  BENCH_REQUESTS=$WORK/soak.requests.lua loadgen wrk -t 1 -c 32 -d "${1}s" --timeout 5s -s "$BENCH/wrk-mix.lua" "http://127.0.0.1:$TOLLGATE_PORT" >"$2" 2>&1
}
if [ -n "${SOAK_RATE:-}" ]; then
  RATE=$SOAK_RATE
  MAX_RPS=''
  log "rate fixed by SOAK_RATE: $RATE req/s"
else
  wait_quiet
  log "maximum: wrk -c 32 on the mix, 3 s warm-up + ${MAX_SECONDS}s"
  run_wrk_mix 3 "$WORK/wrk-warmup.out"
  run_wrk_mix "$MAX_SECONDS" "$WORK/wrk.out"
  line=$(grep '^BENCH ' "$WORK/wrk.out") || { cat "$WORK/wrk.out" >&2; die "wrk printed no result"; }
  eval "$(echo "${line#BENCH }" | tr ' ' '\n' | sed 's/^/w_/')"
  MAX_RPS=$(awk -v r="$w_requests" -v d="$w_duration_us" 'BEGIN {printf "%.0f", r / (d / 1e6)}')
  RATE=$(( MAX_RPS * LOAD_PCT / 100 ))
  log "maximum $MAX_RPS req/s (p50 ${w_p50_us}us p99 ${w_p99_us}us, socket errors $((w_connect_err + w_read_err + w_write_err + w_timeout_err))): soak at $RATE req/s"
  meta max_rps "$MAX_RPS"
  meta max_p99_us "$w_p99_us"
  meta max_socket_errors "$((w_connect_err + w_read_err + w_write_err + w_timeout_err))"
fi
[ "$RATE" -gt 0 ] || die "rate is 0"
sample after-max

# --- 3. soak -----------------------------------------------------------------------------
wait_quiet
sample before-soak
log "soak: vegeta ${RATE} req/s for ${SOAK_SECONDS}s, sampling every ${SAMPLE}s"
SOAK_START=$(( $(date +%s) - T0 ))
task_busy() { awk '$1 == "cpu" {print $2 + $3 + $4 + $9}' /proc/stat; }
UPSTREAM_PIDS="$UPSTREAM_PID $(nginx_workers "$UPSTREAM_PID")"
ours() { local t=0 p; for p in $TOLLGATE_PID $UPSTREAM_PIDS; do t=$((t + $(cpu_ticks "$p"))); done; echo "$t"; }
BUSY0=$(task_busy) OURS0=$(ours) VEGETA_TICKS=0
(
  unset NO_PROXY no_proxy
  export HTTP_PROXY=http://127.0.0.1:$TOLLGATE_PORT
  exec $([ "$PIN" = 1 ] && echo "taskset -c $LOADGEN_CPU") "$VEGETA" attack -format=json -targets="$WORK/soak.targets.jsonl" \
    -rate="$RATE/1s" -duration="${SOAK_SECONDS}s" -timeout=10s -max-workers="${SOAK_MAX_WORKERS:-512}" -output="$WORK/results.bin"
) 2>"$WORK/vegeta.err" &
VEGETA_PID=$!
BG_PIDS+=("$VEGETA_PID")
while alive "$VEGETA_PID"; do
  alive "$TOLLGATE_PID" || { log "Tollgate died during the soak"; break; }
  now=$(( $(date +%s) - T0 - SOAK_START ))
  sample "$([ "$now" -lt "$WARMUP" ] && echo warmup || echo soak)"
  VEGETA_TICKS=$(cpu_ticks "$VEGETA_PID")
  for _ in $(seq 1 $((SAMPLE * 10))); do alive "$VEGETA_PID" || break; sleep 0.1; done
done
wait "$VEGETA_PID" || log "vegeta exited with $?: $(cat "$WORK/vegeta.err")"
alive "$TOLLGATE_PID" || die "Tollgate is not running after the soak: $(tail -20 "$WORK/tollgate.out")"
sample end
# CPU that processes other than Tollgate, the upstream and vegeta used during the soak, in
# % of one core: a shared machine shows here (the verdicts are not conclusive then).
meta others_cpu_pct "$(awk -v all=$(( $(task_busy) - BUSY0 )) -v ours=$(( $(ours) - OURS0 + VEGETA_TICKS )) -v hz="$(getconf CLK_TCK)" -v s="$SOAK_SECONDS" \
  'BEGIN {o = 100 * (all - ours) / (hz * s); printf "%.0f", (o < 0 ? 0 : o)}')"

# --- 4. drain: idle pools evicted, keep-alive sockets closed -----------------------------
# Pools idle for upstreamPoolIdleMs are swept within 1.5 × that; undici closes idle
# upstream sockets after 4 s; vegeta's client connections are gone with vegeta, but an
# overloaded Tollgate may still be answering queued requests. Wait at least that long,
# then until the descriptor count is back to its pre-load value or has not changed for
# 5 s (at most SOAK_DRAIN_MAX, 60 s).
DRAIN_MIN=$(( POOL_IDLE_MS * 3 / 2000 + 6 ))
DRAIN_MAX=${SOAK_DRAIN_MAX:-60}
FDS_BEFORE=$(awk -F'\t' '$2 == "before-soak" {print $4}' "$SAMPLES")
log "drain: at least ${DRAIN_MIN}s without load"
drain_start=$SECONDS last_fds=-1 stable=0
while :; do
  sleep 1
  fds=$(ls "/proc/$TOLLGATE_PID/fd" 2>/dev/null | wc -l)
  if [ "$fds" = "$last_fds" ]; then stable=$((stable + 1)); else stable=0; last_fds=$fds; fi
  waited=$((SECONDS - drain_start))
  [ "$waited" -lt "$DRAIN_MIN" ] && continue
  { [ "$fds" -le $((FDS_BEFORE + 2)) ] || [ "$stable" -ge 5 ] || [ "$waited" -ge "$DRAIN_MAX" ]; } && break
done
meta drain_seconds "$((SECONDS - drain_start))"
sample drained
# What the remaining descriptors are: TCP sockets of the process by state and peer.
ss -tanp 2>/dev/null | awk -v pid="pid=$TOLLGATE_PID," -v up=":$UPSTREAM_PORT" -v px=":$TOLLGATE_PORT" '
  index($0, pid) && $1 != "LISTEN" {
    peer = ($5 ~ up "$") ? "to upstream" : (($4 ~ px "$") ? "from clients" : "other")
    n[$1 " " peer]++
  }
  END { for (k in n) printf "%s %d\n", k, n[k] }' | sort >"$WORK/sockets-drained.txt" || true
curl -s "http://127.0.0.1:$TOLLGATE_ADMIN_PORT/metrics" >"$WORK/metrics.txt" || true

"$VEGETA" report -type=json "$WORK/results.bin" >"$WORK/vegeta.json"
"$VEGETA" report -type=text "$WORK/results.bin" >"$WORK/vegeta.txt"

meta rate "$RATE"
meta load_pct "$LOAD_PCT"
meta soak_seconds "$SOAK_SECONDS"
meta warmup_seconds "$WARMUP"
meta soak_start "$SOAK_START"
meta pool_idle_ms "$POOL_IDLE_MS"
meta pool_max "$POOL_MAX"
meta pool_hosts "$SOAK_POOL_HOSTS"
meta deny_hosts "$SOAK_DENY_HOSTS"
meta max_label_values "$MAX_LABEL_VALUES"
meta node_flags "${BENCH_NODE_FLAGS:-}"
meta pin "$PIN"
meta tools "wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), vegeta $(cat "$VEGETA.version" 2>/dev/null || echo '(unknown version)'), $(nginx -v 2>&1 | sed 's|nginx version: ||'), node $("$NODE" --version)"
meta machine "$(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/^MemTotal/ {printf "%.1f GiB RAM", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"
meta command "SOAK_SECONDS=$SOAK_SECONDS npm run bench -- soak"

"$NODE" "$BENCH/soak-report.mjs" "$WORK" | tee "${BENCH_REPORT:-/dev/null}"
