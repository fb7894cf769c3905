#!/usr/bin/env bash
# CPU profile of Tollgate under load: starts the upstream nginx and Tollgate with
# `node --cpu-prof`, drives it with wrk (BENCH_PROFILE_CONNS, default 32, for
# BENCH_PROFILE_DURATION, default 15 s, after a BENCH_WARMUP warm-up that is profiled
# too but is short), stops it with SIGINT so V8 writes the .cpuprofile, checks that
# it did, and prints the top functions by self time (cpuprofile-top.mjs).
# BENCH_PROFILE_TRACING=1 turns tracing on, exporting to a live Jaeger (as tracing.sh).
# Pinning as in http-proxy.sh. The profile is copied to BENCH_PROFILE_OUT (default
# bench/profiles/, git-ignored) so it can be opened in Chrome DevTools.
# BENCH_PROFILE_TARGET=bare profiles the bare forwarder (bench/bare-forwarder.mjs) under the same
# load instead, to compare where the two spend their CPU; bare-policy, the bare forwarder that
# also evaluates the policy (as bench/footprint.sh's peer).
# BENCH_PROFILE_TOOL=perf samples the process with Linux perf instead of V8's profiler (every
# thread, kernel and V8 internals included; V8's profiler charges native and microtask time to
# the last JavaScript frame it saw) and prints CPU µs per request by area and by symbol
# (perf-report.mjs); `node bench/perf-report.mjs A.perf B.perf` compares two such profiles.
# BENCH_PROFILE_TOOL=tick records V8's tick profiler (node --prof) and prints node --prof-process's
# bottom-up profile: each V8 runtime and builtin function with the JavaScript functions that
# called it, which perf cannot see through JIT frames.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DURATION=${BENCH_PROFILE_DURATION:-15}
WARMUP=${BENCH_WARMUP:-3}
CONNS=${BENCH_PROFILE_CONNS:-32}
OUT=${BENCH_PROFILE_OUT:-$BENCH/profiles}
URL_PATH=/v1/refunds/r-1

require_tools
make_workdir

start_upstream "$URL_PATH"

if [ "${BENCH_PROFILE_TRACING:-0}" = 1 ]; then
  start_jaeger
  # Added to TOLLGATE_EXTRA_YAML (e.g. a decision log), not in its place.
  TOLLGATE_EXTRA_YAML=$(printf '%s\ntracing:\n  enabled: true\n  endpoint: http://127.0.0.1:%s\n  protocol: grpc' "${TOLLGATE_EXTRA_YAML:-}" "$OTLP")
fi
mkdir -p "$WORK/prof"
TARGET=${BENCH_PROFILE_TARGET:-tollgate}
TOOL=${BENCH_PROFILE_TOOL:-v8}
case $TOOL in
  v8) PROF_FLAGS=(--cpu-prof --cpu-prof-dir "$WORK/prof") ;;
  perf)
    command -v perf >/dev/null 2>&1 || die "BENCH_PROFILE_TOOL=perf needs Linux perf (Debian: linux-perf)"
    # Names for JIT-compiled JavaScript and WebAssembly, written to /tmp/perf-<pid>.map.
    PROF_FLAGS=(--perf-basic-prof-only-functions)
    ;;
  tick) PROF_FLAGS=(--prof "--logfile=$WORK/prof/v8.log" --no-logfile-per-isolate) ;;
  *) die "BENCH_PROFILE_TOOL must be v8, perf or tick" ;;
esac
# The footprint benchmark's allow-list by default, so that a profile of Tollgate and one of the
# bare-policy forwarder evaluate the same policy on the same request (and both answer 200).
select_bundle "${BENCH_BUNDLE:-allow-list}"
case $TARGET in
  tollgate)
    start_tollgate "$UPSTREAM_PORT" "${PROF_FLAGS[@]}"
    status=$(tollgate_status)
    [ "$status" = 200 ] || die "Tollgate answers $status with '$BUNDLE_DESC' (try BENCH_BUNDLE=allow-all): $(cat "$WORK/curl-body")"
    log "profiling Tollgate ($BUNDLE_DESC) under wrk -c $CONNS for ${WARMUP}s + ${DURATION}s"
    STOP_SIGNAL=INT
    ;;
  bare | bare-policy)
    if [ "$TARGET" = bare-policy ]; then
      extract_policy "$WORK/bare-policy"
      export BARE_POLICY_WASM=$WORK/bare-policy/policy.wasm BARE_POLICY_DATA=$WORK/bare-policy/data.json
    fi
    BARE_UPSTREAM=127.0.0.1:$UPSTREAM_PORT start_bg "$PROXY_CPU" "$WORK/bare.out" "$NODE" "${PROF_FLAGS[@]}" "$BENCH/bare-forwarder.mjs"
    TOLLGATE_PID=$LAST_PID
    wait_until 30 "bare forwarder" grep -q '^listening ' "$WORK/bare.out"
    TOLLGATE_PORT=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$WORK/bare.out" | head -1)
    status=$(curl -s -o "$WORK/curl-body" -w '%{http_code}' -H 'Host: payments.internal' "http://127.0.0.1:$TOLLGATE_PORT$URL_PATH")
    [ "$status" = 200 ] || die "the $TARGET forwarder answers $status with '$BUNDLE_DESC': $(cat "$WORK/curl-body")"
    log "profiling the $TARGET forwarder ($BUNDLE_DESC) under wrk -c $CONNS for ${WARMUP}s + ${DURATION}s"
    STOP_SIGNAL=TERM
    ;;
  *) die "BENCH_PROFILE_TARGET must be tollgate, bare or bare-policy" ;;
esac

wait_quiet
export BENCH_ABSOLUTE_URL=http://payments.internal$URL_PATH BENCH_HOST=payments.internal
loadgen wrk -t 1 -c "$CONNS" -d "${WARMUP}s" -s "$BENCH/wrk-report.lua" "http://127.0.0.1:$TOLLGATE_PORT" >/dev/null
if [ "$TOOL" = perf ]; then
  # perf samples exactly the measured run: started before wrk, stopped once wrk is done.
  # shellcheck disable=SC2086 # BENCH_PERF_ARGS: a list of perf record options (e.g. --call-graph dwarf)
  perf record -F "${BENCH_PERF_FREQ:-2999}" ${BENCH_PERF_ARGS:-} -p "$TOLLGATE_PID" -o "$WORK/prof/$TARGET.perf" 2>"$WORK/perf.log" &
  perf_pid=$!
  wait_until 10 "perf record to start" test -s "$WORK/prof/$TARGET.perf"
fi
loadgen wrk -t 1 -c "$CONNS" -d "${DURATION}s" -s "$BENCH/wrk-report.lua" "http://127.0.0.1:$TOLLGATE_PORT" | grep '^BENCH' | tee "$WORK/wrk.txt" >&2
# A profile of answers that are not 2xx (a policy that denies, a dead upstream) is of another path.
grep -q ' status_err=0 ' "$WORK/wrk.txt" || die "wrk counted answers that are not 2xx: $(cat "$WORK/wrk.txt")"
if [ "$TOOL" = perf ]; then
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  requests=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' "$WORK/wrk.txt")
  mkdir -p "$OUT"
  out=$OUT/$TARGET-$(date -u +%Y%m%dT%H%M%SZ).perf
  # The JIT names stay in /tmp/perf-<pid>.map, where perf report looks for them.
  cp "$WORK/prof/$TARGET.perf" "$out"
  printf '{"target":"%s","requests":%d,"frequency":%d}\n' "$TARGET" "$requests" "${BENCH_PERF_FREQ:-2999}" >"$out.json"
  "$NODE" "$BENCH/perf-report.mjs" "$out" "${BENCH_PROFILE_TOP:-25}"
  stop_pid "$TOLLGATE_PID" "$STOP_SIGNAL"
  log "profile written: $out (JIT names from /tmp/perf-$TOLLGATE_PID.map)"
  exit 0
fi
stop_pid "$TOLLGATE_PID" "$STOP_SIGNAL"

if [ "$TOOL" = tick ]; then
  [ -s "$WORK/prof/v8.log" ] || die "no V8 log written (output: $(cat "$WORK"/*.out))"
  mkdir -p "$OUT"
  out=$OUT/$TARGET-$(date -u +%Y%m%dT%H%M%SZ).v8.log
  cp "$WORK/prof/v8.log" "$out"
  "$NODE" --prof-process "$out" 2>/dev/null >"$out.txt"
  # The summary, then the bottom-up profile's first BENCH_PROFILE_TOP (60) lines.
  sed -n '/ \[Summary\]:/,/^$/p' "$out.txt"
  sed -n '/ \[Bottom up (heavy) profile\]:/,$p' "$out.txt" | head -n "${BENCH_PROFILE_TOP:-60}"
  log "profile written: $out (processed: $out.txt)"
  exit 0
fi

profile=$(ls "$WORK"/prof/*.cpuprofile 2>/dev/null | head -1)
[ -n "$profile" ] && [ -s "$profile" ] || die "Tollgate exited without writing a .cpuprofile (output: $(cat "$WORK/tollgate.out"))"
mkdir -p "$OUT"
cp "$profile" "$OUT/$TARGET-$(date -u +%Y%m%dT%H%M%SZ).cpuprofile"
log "profile written: $OUT/$(ls -t "$OUT" | head -1)"
"$NODE" "$BENCH/cpuprofile-top.mjs" "$profile" "${BENCH_PROFILE_TOP:-25}"
