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
# load instead, to compare where the two spend their CPU.
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
  TOLLGATE_EXTRA_YAML=$(printf 'tracing:\n  enabled: true\n  endpoint: http://127.0.0.1:%s\n  protocol: grpc' "$OTLP")
fi
mkdir -p "$WORK/prof"
TARGET=${BENCH_PROFILE_TARGET:-tollgate}
case $TARGET in
  tollgate)
    select_bundle "${BENCH_BUNDLE:-auto}"
    start_tollgate "$UPSTREAM_PORT" --cpu-prof --cpu-prof-dir "$WORK/prof"
    status=$(tollgate_status)
    [ "$status" = 200 ] || die "Tollgate answers $status with '$BUNDLE_DESC' (try BENCH_BUNDLE=allow-all): $(cat "$WORK/curl-body")"
    log "profiling Tollgate ($BUNDLE_DESC) under wrk -c $CONNS for ${WARMUP}s + ${DURATION}s"
    STOP_SIGNAL=INT
    ;;
  bare)
    BARE_UPSTREAM=127.0.0.1:$UPSTREAM_PORT start_bg "$PROXY_CPU" "$WORK/bare.out" "$NODE" --cpu-prof --cpu-prof-dir "$WORK/prof" "$BENCH/bare-forwarder.mjs"
    TOLLGATE_PID=$LAST_PID
    wait_until 30 "bare forwarder" grep -q '^listening ' "$WORK/bare.out"
    TOLLGATE_PORT=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$WORK/bare.out" | head -1)
    log "profiling the bare forwarder under wrk -c $CONNS for ${WARMUP}s + ${DURATION}s"
    STOP_SIGNAL=TERM
    ;;
  *) die "BENCH_PROFILE_TARGET must be tollgate or bare" ;;
esac

wait_quiet
export BENCH_ABSOLUTE_URL=http://payments.internal$URL_PATH BENCH_HOST=payments.internal
loadgen wrk -t 1 -c "$CONNS" -d "${WARMUP}s" -s "$BENCH/wrk-report.lua" "http://127.0.0.1:$TOLLGATE_PORT" >/dev/null
loadgen wrk -t 1 -c "$CONNS" -d "${DURATION}s" -s "$BENCH/wrk-report.lua" "http://127.0.0.1:$TOLLGATE_PORT" | grep '^BENCH' >&2
stop_pid "$TOLLGATE_PID" "$STOP_SIGNAL"

profile=$(ls "$WORK"/prof/*.cpuprofile 2>/dev/null | head -1)
[ -n "$profile" ] && [ -s "$profile" ] || die "Tollgate exited without writing a .cpuprofile (output: $(cat "$WORK/tollgate.out"))"
mkdir -p "$OUT"
cp "$profile" "$OUT/$TARGET-$(date -u +%Y%m%dT%H%M%SZ).cpuprofile"
log "profile written: $OUT/$(ls -t "$OUT" | head -1)"
"$NODE" "$BENCH/cpuprofile-top.mjs" "$profile" "${BENCH_PROFILE_TOP:-25}"
