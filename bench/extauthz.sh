#!/usr/bin/env bash
# ext_authz benchmark: the same CheckRequest mix (bench/extauthz/mix.json, sent round-robin
# by ghz) at fixed concurrency against Tollgate's ext_authz server and against the real
# opa-envoy-plugin, one after the other in one run, both loaded with the same Rego
# (the seed policies in policies/ and policies/data.json, see EXTAUTHZ_AGENT_IN below;
# opa-envoy-plugin evaluates the Rego, Tollgate the WASM bundle `opa build -t wasm` makes from
# the same files), and against the runtime's limit for a Node gRPC server (bench/extauthz/bare-grpc.mjs:
# node:http2 answering every Check with one fixed OK, nothing decoded or decided). Results:
# bench/RESULTS-extauthz.md.
#
# Per server and round: start it (fresh), check that it decides every message of the mix as
# the other server does, warm up (EXTAUTHZ_WARMUP_N requests), read VmRSS, measure
# (EXTAUTHZ_DURATION, or EXTAUTHZ_N requests), read VmRSS/VmHWM and CPU time, stop it.
# Reported: requests/s, p50, p99, errors (every non-OK gRPC status), RSS after warm-up
# and at the end, server CPU per request, ghz's own CPU. Rounds alternate the order.
#
# Pinning (EXTAUTHZ_PIN=1, the default on >= 2 CPUs): ghz on CPU 0 with --cpus=1, the
# server under test alone on CPU 1 (a sidecar with a 1-CPU limit; Go's GOMAXPROCS follows
# the affinity, so opa-envoy-plugin runs with GOMAXPROCS=1, and Node's libuv and V8 GC
# threads share that CPU too). EXTAUTHZ_PIN=0: no affinity, ghz --cpus=2.
#
# EXTAUTHZ_PROFILE=1: instead, profile Tollgate only, with `node --cpu-prof` under the same
# load; it is stopped with SIGTERM (graceful exit writes the profile), the .cpuprofile is
# checked and summarised (bench/cpuprofile-top.mjs) and copied to
# EXTAUTHZ_PROFILE_OUT.
#
# Everything listens on 127.0.0.1 only; every process started here is stopped on exit.
#
# A fixed request count (-n) rather than a duration: with -z, ghz cancels the calls still in
# flight when the time is up and reports each as an Unavailable error ("transport is
# closing"), -c of them per run, which are not the server's errors.
#
# Knobs (environment): EXTAUTHZ_AGENT_IN (policy | with, see below), EXTAUTHZ_C (50), EXTAUTHZ_CONNECTIONS (1), EXTAUTHZ_N (100000),
# EXTAUTHZ_DURATION (e.g. 20s; used when EXTAUTHZ_N is set empty), EXTAUTHZ_WARMUP_N (20000), EXTAUTHZ_ROUNDS (1),
# EXTAUTHZ_SERVERS ("tollgate opa-envoy-plugin bare-grpc"), EXTAUTHZ_PIN (1), EXTAUTHZ_RESULTS (a file
# to append one JSON line per measurement to), EXTAUTHZ_KEEP=1 (keep the work dir),
# EXTAUTHZ_PROFILE_OUT (${TMPDIR:-/tmp}/tollgate-extauthz-profiles), EXTAUTHZ_NODE_FLAGS
# (extra node flags for Tollgate, e.g. --max-semi-space-size=32), EXTAUTHZ_BARE_NODE_FLAGS (node
# flags of the bare gRPC server; default Tollgate's shipped V8 defaults, bin/node-defaults.js;
# empty: Node's own defaults), EXTAUTHZ_RPS (unset: closed
# loop, as fast as the server answers; a number: ghz --rps, a fixed offered load for the
# measurement, to compare latency below both servers' capacity), EXTAUTHZ_QUIET_MAX /
# EXTAUTHZ_QUIET_PCT (see wait_quiet), EXTAUTHZ_REST_S (0; seconds of quiet after the load
# before RSS is read again, "at rest"), EXTAUTHZ_TOLLGATE_PROXY (false: Tollgate serves ext_authz
# only, proxy.enabled: false, the deployment opa-envoy-plugin has in a mesh; true: its outbound
# proxy listens too, as in an agent's sidecar that also answers Envoy).
set -euo pipefail
# The whole script is one compound command: bash parses it before running it, so editing
# this file while a run is in progress cannot change that run.
{

# Shared process helpers (alive, stop_pid, start_bg, loadgen, free_port, cpu_ticks) and
# ROOT/NODE/OPA; this script keeps its own log prefix, teardown, pinning flag and quiet wait.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE=$ROOT/bench/extauthz
OPA_ENVOY=${OPA_ENVOY_PLUGIN:-$ROOT/.tools/bin/opa-envoy-plugin}
GHZ=$ROOT/.tools/bin/ghz
GRPCURL=$ROOT/.tools/bin/grpcurl
MIX=${EXTAUTHZ_MIX:-$HERE/mix.json}
ENTRY=tollgate/bench/decision
C=${EXTAUTHZ_C:-50}
CONNECTIONS=${EXTAUTHZ_CONNECTIONS:-1}
DURATION=${EXTAUTHZ_DURATION:-}
N=${EXTAUTHZ_N-100000}
[ -n "$N" ] || [ -n "$DURATION" ] || N=100000
WARMUP_N=${EXTAUTHZ_WARMUP_N:-20000}
ROUNDS=${EXTAUTHZ_ROUNDS:-1}
RPS=${EXTAUTHZ_RPS:-}
SERVERS=${EXTAUTHZ_SERVERS:-tollgate opa-envoy-plugin bare-grpc}
PIN=${EXTAUTHZ_PIN:-1}
PROFILE=${EXTAUTHZ_PROFILE:-0}
PROFILE_OUT=${EXTAUTHZ_PROFILE_OUT:-${TMPDIR:-/tmp}/tollgate-extauthz-profiles}
LOADGEN_CPU=0
SERVER_CPU=1

log() { printf '[extauthz-bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in "$NODE" "$OPA" "$OPA_ENVOY" "$GHZ" "$GRPCURL"; do
  [ -x "$tool" ] || die "missing $tool (bash scripts/install-tools.sh; npm ci)"
done
for tool in taskset /usr/bin/time; do command -v "$tool" >/dev/null || die "missing $tool"; done
[ -f "$MIX" ] || die "no request mix at $MIX"
if [ "$(nproc)" -lt 2 ]; then log "fewer than 2 CPUs: no pinning"; PIN=0; fi
GHZ_CPUS=$([ "$PIN" = 1 ] && echo 1 || nproc)

# ---- processes and teardown --------------------------------------------------------------

RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-extauthz-bench.XXXXXX")
BG_PIDS=()
teardown() {
  local status=$?
  for pid in "${BG_PIDS[@]}"; do stop_pid "$pid" TERM; done
  if [ "${EXTAUTHZ_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT TERM

forget_pid() { local keep=() p; for p in "${BG_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; BG_PIDS=("${keep[@]}"); }
status_kb() { awk -v k="^$2:" '$0 ~ k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
machine_busy() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
TICK=$(getconf CLK_TCK)

# The machine may be shared (other sessions run tests and benchmarks on the same 2 CPUs):
# before each measurement wait, up to EXTAUTHZ_QUIET_MAX s (default 300), for 3 seconds in
# which both CPUs together are less than EXTAUTHZ_QUIET_PCT (15) % busy. Disturbance that
# remains shows in the "others CPU s" column (CPU time used during the measurement by
# processes other than the server and ghz).
wait_quiet() {
  local deadline=$((SECONDS + ${EXTAUTHZ_QUIET_MAX:-300})) b0 t0 b1 t1 busy
  while :; do
    read -r b0 t0 < <(awk '$1 == "cpu" {b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6}' /proc/stat)
    sleep 3
    read -r b1 t1 < <(awk '$1 == "cpu" {b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6}' /proc/stat)
    busy=$((t1 > t0 ? 100 * (b1 - b0) / (t1 - t0) : 0))
    [ "$busy" -lt "${EXTAUTHZ_QUIET_PCT:-15}" ] && return 0
    if [ $SECONDS -ge $deadline ]; then log "machine still ${busy}% busy: measuring anyway"; return 0; fi
    log "machine ${busy}% busy with other work: waiting"
    sleep 5
  done
}

# ---- the policy, both ways ---------------------------------------------------------------

# opa-envoy-plugin's input has no input.agent. EXTAUTHZ_AGENT_IN chooses how both servers get
# the same agent (support-bot, role support):
#   with   the seed policies unmodified, entered through bench/extauthz/entry.rego,
#          which evaluates data.tollgate.authz.decision `with input.agent as` that agent (as
#          the differential test does); `with` on input roughly doubles OPA's (Go) evaluation
#          cost for this policy (opa bench: ~340 vs ~170 µs per decision).
#   policy (default) a copy of the seed policies in the work dir whose request.rego falls back to
#          support-bot when input.agent.id is absent; entrypoint tollgate/authz/decision on
#          both sides, no `with` (Tollgate still sends its configured agent: same decisions).
#          The fairer comparison, hence the default.
AGENT_IN=${EXTAUTHZ_AGENT_IN:-policy}
POLICY_FILES=()
case $AGENT_IN in
  with)
    for f in "$ROOT"/policies/*.rego; do case $f in *_test.rego) ;; *) POLICY_FILES+=("$f") ;; esac; done
    POLICY_FILES+=("$ROOT/policies/data.json" "$HERE/entry.rego")
    ;;
  policy)
    ENTRY=tollgate/authz/decision
    mkdir -p "$WORK/policies"
    for f in "$ROOT"/policies/*.rego; do case $f in *_test.rego) ;; *) cp "$f" "$WORK/policies/"; POLICY_FILES+=("$WORK/policies/$(basename "$f")") ;; esac; done
    grep -q '^	id := input.agent.id$' "$WORK/policies/request.rego" || die "policies/request.rego no longer reads input.agent.id as expected (EXTAUTHZ_AGENT_IN=policy)"
    sed -i 's/^	id := input.agent.id$/	id := object.get(input, ["agent", "id"], "support-bot")/' "$WORK/policies/request.rego"
    POLICY_FILES+=("$ROOT/policies/data.json")
    ;;
  *) die "EXTAUTHZ_AGENT_IN must be with or policy" ;;
esac
"$OPA" build -t wasm -e "$ENTRY" -o "$WORK/bundle.tar.gz" "${POLICY_FILES[@]}" >&2
POLICY_SHA=$(cat "${POLICY_FILES[@]}" | sha256sum | cut -c1-12)

start_server() { # start_server <name> [node flags...]: sets SERVER_PID, SERVER_PORT
  local name=$1
  shift
  case $name in
    tollgate)
      cat >"$WORK/tollgate.yaml" <<EOF
agent: { id: support-bot, role: support }
pdp: { bundle: "$WORK/bundle.tar.gz", decisionPath: $ENTRY }
proxy: { enabled: ${EXTAUTHZ_TOLLGATE_PROXY:-false}, listen: 127.0.0.1:0 }
admin: { listen: 127.0.0.1:0 }
extAuthz: { listen: 127.0.0.1:0 }
logLevel: warn
EOF
      : >"$WORK/tollgate.out"
      # shellcheck disable=SC2086 # EXTAUTHZ_NODE_FLAGS is a list of flags
      # Started as deployed: bin/tollgate.js (the compiled dist/ when built, its V8 and allocator defaults).
      start_bg "$SERVER_CPU" "$WORK/tollgate.out" "$NODE" ${EXTAUTHZ_NODE_FLAGS:-} "$@" "$ROOT/bin/tollgate.js" run --config "$WORK/tollgate.yaml"
      SERVER_PID=$LAST_PID
      local deadline=$((SECONDS + 60))
      until grep -q 'ext_authz 127\.0\.0\.1:[0-9]' "$WORK/tollgate.out"; do
        alive "$SERVER_PID" || { cat "$WORK/tollgate.out" >&2; die "tollgate exited during start"; }
        [ $SECONDS -lt $deadline ] || { cat "$WORK/tollgate.out" >&2; die "tollgate did not start within 60 s"; }
        sleep 0.1
      done
      SERVER_PORT=$(sed -n 's/.*ext_authz 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/tollgate.out" | head -1)
      ADMIN_URL=http://127.0.0.1:$(sed -n 's|.*admin http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$WORK/tollgate.out" | head -1)
      METRICS_URL=$ADMIN_URL/metrics
      ;;
    opa-envoy-plugin)
      SERVER_PORT=$(free_port)
      local http_port
      http_port=$(free_port)
      METRICS_URL=http://127.0.0.1:$http_port/metrics
      ADMIN_URL=
      start_bg "$SERVER_CPU" "$WORK/opa-envoy.out" "$OPA_ENVOY" run --server "--addr=127.0.0.1:$http_port" --log-level=error \
        "--set=plugins.envoy_ext_authz_grpc.addr=127.0.0.1:$SERVER_PORT" "--set=plugins.envoy_ext_authz_grpc.path=$ENTRY" \
        --set=decision_logs.console=false "${POLICY_FILES[@]}"
      SERVER_PID=$LAST_PID
      ;;
    bare-grpc)
      SERVER_PORT=$(free_port)
      METRICS_URL=
      ADMIN_URL=
      # With the V8 defaults bin/tollgate.js ships (EXTAUTHZ_BARE_NODE_FLAGS) and V8's worker as
      # nice as Tollgate's (runtime.backgroundThreadNice), so that the two differ only in what
      # they do per Check.
      # shellcheck disable=SC2086 # a list of flags
      start_bg "$SERVER_CPU" "$WORK/bare-grpc.out" env BARE_GRPC_PORT="$SERVER_PORT" BARE_WORKER_NICE=10 "$NODE" \
        ${EXTAUTHZ_BARE_NODE_FLAGS-$("$NODE" "$ROOT/bin/node-defaults.js")} "$HERE/bare-grpc.mjs"
      SERVER_PID=$LAST_PID
      ;;
    *) die "unknown server $name" ;;
  esac
  local deadline=$((SECONDS + 60))
  until grpc_check "$SERVER_PORT" '{}' >/dev/null 2>&1; do
    alive "$SERVER_PID" || die "$name exited during start: $(cat "$WORK"/*.out)"
    [ $SECONDS -lt $deadline ] || die "$name did not answer Check within 60 s"
    sleep 0.2
  done
}

# Heap figures from the server's own Prometheus metrics (Tollgate's admin /metrics: V8 heap
# used/total and external memory; OPA's /metrics: Go heap in use and obtained from the OS),
# in KiB, as JSON fields; "{}" parts when unavailable.
heap_json() {
  [ -n "$METRICS_URL" ] || { echo '{}'; return; }
  curl -s --max-time 5 "$METRICS_URL" 2>/dev/null | awk '
    /^nodejs_heap_size_used_bytes / {f["heapUsedKb"] = $2}
    /^nodejs_heap_size_total_bytes / {f["heapTotalKb"] = $2}
    /^nodejs_external_memory_bytes / {f["externalKb"] = $2}
    /^go_memstats_heap_inuse_bytes / {f["heapUsedKb"] = $2}
    /^go_memstats_heap_sys_bytes / {f["heapTotalKb"] = $2}
    END {s = ""; for (k in f) s = s sprintf("%s\"%s\":%d", s == "" ? "" : ",", k, f[k] / 1024); print "{" s "}"}'
}

# Where Tollgate's memory is (its admin GET /debug/memory, MiB): anonymous and file-backed
# RSS, the V8 heap and its spaces of 0.5 MiB or more, code, ArrayBuffers (WASM memory, Buffers);
# "{}" for the other servers.
memory_json() {
  [ -n "${ADMIN_URL:-}" ] || { echo '{}'; return; }
  curl -s --max-time 5 "$ADMIN_URL/debug/memory" 2>/dev/null | "$NODE" -e '
    let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => {
      try {
        const m = JSON.parse(s), mb = (kb) => Math.round((kb ?? 0) / 102.4) / 10;
        const spaces = {};
        for (const [name, v] of Object.entries(m.spaces ?? {})) if (v.sizeKb >= 512) spaces[name.replace(/_space$/, "")] = mb(v.sizeKb);
        process.stdout.write(JSON.stringify({ anonMb: mb(m.rssAnonKb), fileMb: mb(m.rssFileKb), heapTotalMb: mb(m.heapTotalKb),
          heapUsedMb: mb(m.heapUsedKb), spaces, codeMb: mb(m.codeKb), arrayBuffersMb: mb(m.arrayBuffersKb), mallocedMb: mb(m.mallocedKb) }));
      } catch { process.stdout.write("{}"); }
    });' || echo '{}'
}

grpc_check() { # grpc_check <port> <json>: one Check with grpcurl (Envoy's own .proto files)
  "$GRPCURL" -plaintext -max-time 5 -import-path "$ROOT/proto" -proto envoy/service/auth/v3/external_auth.proto \
    -d "$2" "127.0.0.1:$1" envoy.service.auth.v3.Authorization/Check
}

# The decision for each message of the mix, one line each: gRPC status of the
# CheckResponse (0 OK, 7 PERMISSION_DENIED) and the denied HTTP status.
decisions() { # decisions <port> <out>
  local port=$1 out=$2 i count
  count=$("$NODE" -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).length))' "$MIX")
  : >"$out"
  for ((i = 0; i < count; i++)); do
    "$NODE" -e 'process.stdout.write(JSON.stringify(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"))[Number(process.argv[2])]))' "$MIX" "$i" >"$WORK/msg.json"
    grpc_check "$port" @ <"$WORK/msg.json" 2>&1 |
      "$NODE" -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>{try{const r=JSON.parse(s);console.log(`${r.status?.code??0} ${r.deniedResponse?.status?.code??"-"}`)}catch{console.log("error "+s.split("\n")[0])}})' >>"$out"
  done
}

ghz_run() { # ghz_run <port> <json out> <time out> <ghz load args...>
  local port=$1 out=$2 timeout=$3
  shift 3
  loadgen /usr/bin/time -f '%U %S %e' -o "$timeout" "$GHZ" --insecure --cpus="$GHZ_CPUS" \
    --proto envoy/service/auth/v3/external_auth.proto --import-paths "$ROOT/proto" \
    --call envoy.service.auth.v3.Authorization/Check --data-file "$MIX" \
    -c "$C" --connections "$CONNECTIONS" --timeout 10s "$@" -O json -o "$out" "127.0.0.1:$port"
}

measure() { # measure <server> <round>: one full measurement; appends a JSON line to $WORK/results.jsonl
  local name=$1 round=$2 load rss_idle rss_warm rss_end hwm heap memory t0 t1 b0 b1
  start_server "$name"
  rss_idle=$(status_kb "$SERVER_PID" VmRSS)
  # The bare gRPC server decides nothing: only the two deciding servers are compared.
  [ "$name" = bare-grpc ] || decisions "$SERVER_PORT" "$WORK/decisions-$name.txt"
  wait_quiet
  log "$name (pid $SERVER_PID, port $SERVER_PORT): warm-up, $WARMUP_N requests"
  ghz_run "$SERVER_PORT" "$WORK/warmup.json" "$WORK/warmup.time" -n "$WARMUP_N"
  sleep 1
  rss_warm=$(status_kb "$SERVER_PID" VmRSS)
  if [ -n "$N" ]; then load=(-n "$N"); else load=(-z "$DURATION"); fi
  if [ -n "$RPS" ]; then load+=(--rps "$RPS"); fi
  log "$name: measuring, ghz -c $C --connections $CONNECTIONS ${load[*]}"
  t0=$(cpu_ticks "$SERVER_PID"); b0=$(machine_busy)
  ghz_run "$SERVER_PORT" "$WORK/run.json" "$WORK/run.time" "${load[@]}"
  t1=$(cpu_ticks "$SERVER_PID"); b1=$(machine_busy)
  rss_end=$(status_kb "$SERVER_PID" VmRSS)
  hwm=$(status_kb "$SERVER_PID" VmHWM)
  heap=$(heap_json)
  memory=$(memory_json)
  # At rest after the load: RSS once the server has been quiet for EXTAUTHZ_REST_S seconds
  # (0: not measured), what a sidecar keeps between bursts.
  local rss_rest=0
  if [ "${EXTAUTHZ_REST_S:-0}" -gt 0 ]; then
    sleep "$EXTAUTHZ_REST_S"
    rss_rest=$(status_kb "$SERVER_PID" VmRSS)
  fi
  "$NODE" "$HERE/ghz-summary.mjs" "$WORK/run.json" "$WORK/run.time" \
    "{\"heap\":$heap,\"memoryAfterLoad\":$memory,\"run\":\"$RUN_ID\",\"agentIn\":\"$AGENT_IN\",\"pin\":$PIN,\"c\":$C,\"rpsTarget\":\"$RPS\",\"nodeFlags\":\"${EXTAUTHZ_NODE_FLAGS:-}\",\"server\":\"$name\",\"round\":$round,\"rssIdleKb\":$rss_idle,\"rssWarmKb\":$rss_warm,\"rssEndKb\":$rss_end,\"rssRestKb\":$rss_rest,\"hwmKb\":$hwm,\"serverCpuS\":$(((t1 - t0) * 1000 / TICK))e-3,\"machineBusyS\":$(((b1 - b0) * 1000 / TICK))e-3}" \
    | tee -a "$WORK/results.jsonl" >&2
  log "$name: RSS idle $((rss_idle / 1024)) MiB, after warm-up $((rss_warm / 1024)) MiB, at the end $((rss_end / 1024)) MiB"
  stop_pid "$SERVER_PID" TERM
  forget_pid "$SERVER_PID"
}

log "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM; load average $(cut -d' ' -f1-3 /proc/loadavg)"
log "policy: ${#POLICY_FILES[@]} files (sha256 ${POLICY_SHA}), entrypoint $ENTRY, agent via $AGENT_IN; mix: $MIX ($(sha256sum "$MIX" | cut -c1-12)); pinning: $([ "$PIN" = 1 ] && echo "ghz on CPU $LOADGEN_CPU (--cpus=1), server on CPU $SERVER_CPU" || echo off)"

if [ "$PROFILE" = 1 ]; then
  mkdir -p "$WORK/prof" "$PROFILE_OUT"
  start_server tollgate --cpu-prof --cpu-prof-dir "$WORK/prof"
  wait_quiet
  if [ -n "$N" ]; then load=(-n "$N"); else load=(-z "$DURATION"); fi
  log "profiling tollgate (pid $SERVER_PID): warm-up $WARMUP_N requests, then ghz -c $C --connections $CONNECTIONS ${load[*]}"
  ghz_run "$SERVER_PORT" "$WORK/warmup.json" "$WORK/warmup.time" -n "$WARMUP_N"
  ghz_run "$SERVER_PORT" "$WORK/run.json" "$WORK/run.time" "${load[@]}"
  "$NODE" "$HERE/ghz-summary.mjs" "$WORK/run.json" "$WORK/run.time" '{"server":"tollgate --cpu-prof"}' >&2
  stop_pid "$SERVER_PID" TERM
  forget_pid "$SERVER_PID"
  profile=$(ls "$WORK"/prof/*.cpuprofile 2>/dev/null | head -1 || true)
  [ -n "$profile" ] && [ -s "$profile" ] || die "tollgate exited without writing a .cpuprofile: $(cat "$WORK/tollgate.out")"
  dest=$PROFILE_OUT/tollgate-extauthz-$(date -u +%Y%m%dT%H%M%SZ).cpuprofile
  cp "$profile" "$dest"
  log "profile: $dest ($(stat -c %s "$dest") bytes)"
  "$NODE" "$HERE/../cpuprofile-top.mjs" "$dest" "${EXTAUTHZ_PROFILE_TOP:-25}"
  exit 0
fi

for ((round = 1; round <= ROUNDS; round++)); do
  order=($SERVERS)
  if [ $((round % 2)) = 0 ]; then order=($(printf '%s\n' "${order[@]}" | tac)); fi
  for name in "${order[@]}"; do measure "$name" "$round"; done
done

# Tollgate and opa-envoy-plugin must have decided every message of the mix the same way (the
# bare gRPC server decides nothing: it answers OK to all).
if [ -f "$WORK/decisions-tollgate.txt" ] && [ -f "$WORK/decisions-opa-envoy-plugin.txt" ]; then
  if cmp -s "$WORK/decisions-tollgate.txt" "$WORK/decisions-opa-envoy-plugin.txt"; then
    log "decisions agree on all $(wc -l <"$WORK/decisions-tollgate.txt") messages of the mix: $(sort "$WORK/decisions-tollgate.txt" | uniq -c | awk '{printf "%s%s x gRPC %s HTTP %s", (NR > 1 ? ", " : ""), $1, $2, $3}')"
  else
    paste "$WORK/decisions-tollgate.txt" "$WORK/decisions-opa-envoy-plugin.txt" >&2
    die "the two servers decide the mix differently (columns: tollgate, opa-envoy-plugin)"
  fi
fi
[ -n "${EXTAUTHZ_RESULTS:-}" ] && cat "$WORK/results.jsonl" >>"$EXTAUTHZ_RESULTS"
"$NODE" "$HERE/table.mjs" "$WORK/results.jsonl"
exit 0
}
