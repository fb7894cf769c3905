#!/usr/bin/env bash
# HTTP proxying benchmark: in one run, on loopback only, measures requests/s and
# p50/p99 latency with wrk for
#   direct    wrk → upstream nginx (the baseline),
#   tollgate  wrk → Tollgate (explicit proxy, absolute-form request line) → upstream,
#   nginx     wrk → nginx as a plain reverse proxy (keep-alive to upstream) → upstream,
# at each load in BENCH_LOADS (default "32 4 4@2"; "C" is C connections as fast as
# answers come back, "C@D" adds D ms think time per request on each connection):
#   32   saturation: the proxy under test runs at 100% of its core;
#   4    four requests in flight, closed loop: the issue's "moderate" load, but
#        Tollgate is still CPU-bound at it (see its proxy CPU column);
#   4@2  paced: about 4 / (2 ms + latency) ≈ 1,500–2,000 requests/s, well below
#        every target's capacity, so the latency added by the hop shows without queueing;
# BENCH_ROUNDS times, interleaved, and prints a Markdown report (medians, ranges,
# ratios against the issue's targets, memory).
#
# Load generator: wrk 4 (Debian), closed loop: each of -c connections sends its next
# request as soon as the previous answer arrives, so -c 4 is "4 requests in flight",
# not a fixed rate. -t BENCH_THREADS (1), -d BENCH_DURATION (10 s) after a
# BENCH_WARMUP (3 s) warm-up at the same load whose results are discarded.
# Pinning (BENCH_PIN=1, default): wrk and the upstream on CPU 0, the proxy under test
# alone on CPU 1. Per-CPU busy time is reported so a saturated CPU 0 shows.
#
# Env: BENCH_DURATION BENCH_WARMUP BENCH_ROUNDS BENCH_LOADS BENCH_THREADS BENCH_PIN
#      BENCH_BUNDLE (auto|default|seed|allow-all|<path>) BENCH_TARGETS BENCH_KEEP BENCH_REPORT (file)
#      BENCH_NODE_FLAGS (extra node flags for Tollgate) BENCH_QUIET_PCT BENCH_QUIET_MAX (see wait_quiet)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-3}
ROUNDS=${BENCH_ROUNDS:-3}
LOADS=${BENCH_LOADS:-"32 4 4@2"}
THREADS=${BENCH_THREADS:-1}
TARGETS=${BENCH_TARGETS:-"direct tollgate nginx"}
URL_PATH=/v1/refunds/r-1

require_tools
make_workdir
log "work dir $WORK; pinning $([ "$PIN" = 1 ] && echo "wrk+upstream on CPU $LOADGEN_CPU, proxy on CPU $PROXY_CPU" || echo off)"

# --- start: upstream, reference nginx, Tollgate -------------------------------------
UPSTREAM_PORT=$(free_port)
start_nginx upstream "$BENCH/nginx-upstream.conf.in" "$LOADGEN_CPU" "PORT=$UPSTREAM_PORT"
UPSTREAM_PID=$LAST_PID
wait_until 10 "upstream nginx on $UPSTREAM_PORT" http_ok "http://127.0.0.1:$UPSTREAM_PORT$URL_PATH"

NGINX_PORT=$(free_port)
start_nginx proxy "$BENCH/nginx-proxy.conf.in" "$PROXY_CPU" "PORT=$NGINX_PORT" "UPSTREAM_PORT=$UPSTREAM_PORT"
NGINX_PID=$LAST_PID
wait_until 10 "nginx reverse proxy on $NGINX_PORT" http_ok "http://127.0.0.1:$NGINX_PORT$URL_PATH"

select_bundle "${BENCH_BUNDLE:-auto}"
start_tollgate "$UPSTREAM_PORT" ${BENCH_NODE_FLAGS:-}
status=$(tollgate_status)
if [ "$status" != 200 ]; then
  log "Tollgate answered $status with bundle '$BUNDLE_DESC': $(cat "$WORK/curl-body")"
  if [ "${BENCH_BUNDLE:-auto}" != auto ]; then die "the chosen bundle does not allow the benchmark request"; fi
  log "falling back to the allow-all bundle"
  stop_pid "$TOLLGATE_PID" TERM
  select_bundle allow-all
  BUNDLE_DESC="$BUNDLE_DESC — fallback: the default/seed bundle answered $status"
  start_tollgate "$UPSTREAM_PORT" ${BENCH_NODE_FLAGS:-}
  status=$(tollgate_status)
  [ "$status" = 200 ] || die "Tollgate answers $status even with allow-all: $(cat "$WORK/curl-body")"
fi
log "curl -x http://127.0.0.1:$TOLLGATE_PORT http://payments.internal$URL_PATH → 200 ($BUNDLE_DESC)"

NGINX_WORKER=$(nginx_workers "$NGINX_PID" | awk '{print $1}')
UPSTREAM_WORKER=$(nginx_workers "$UPSTREAM_PID" | awk '{print $1}')
[ -n "$NGINX_WORKER" ] && [ -n "$UPSTREAM_WORKER" ] || die "could not find the nginx worker processes"

META=$WORK/meta.tsv
ROWS=$WORK/rows.tsv
meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }
meta tollgate_rss_start_kb "$(rss_kb "$TOLLGATE_PID")"
meta nginx_rss_start_kb "$(( $(rss_kb "$NGINX_PID") + $(rss_kb "$NGINX_WORKER") ))"
meta nginx_worker_rss_start_kb "$(rss_kb "$NGINX_WORKER")"

# --- measure ---------------------------------------------------------------------------
cpu_busy() { # "busy total" jiffies of one CPU from /proc/stat
  awk -v cpu="cpu$1" '$1 == cpu {busy = $2 + $3 + $4 + $7 + $8 + $9; total = busy + $5 + $6; print busy, total}' /proc/stat
}

run_wrk() { # run_wrk <target> <load> <seconds> <out>
  local target=$1 conns=${2%@*} seconds=$3 out=$4 url absolute='' delay=0
  case $2 in *@*) delay=${2#*@} ;; esac
  case $target in
    direct) url=http://127.0.0.1:$UPSTREAM_PORT ;;
    nginx) url=http://127.0.0.1:$NGINX_PORT ;;
    tollgate) url=http://127.0.0.1:$TOLLGATE_PORT; absolute=http://payments.internal$URL_PATH ;;
  esac
  BENCH_ABSOLUTE_URL=$absolute BENCH_PATH=$URL_PATH BENCH_HOST=payments.internal BENCH_DELAY_MS=$delay \
    bash -c 'exec "$@"' wrk $([ "$PIN" = 1 ] && echo "taskset -c $LOADGEN_CPU") \
      wrk -t "$THREADS" -c "$conns" -d "${seconds}s" --timeout 5s -s "$BENCH/wrk-report.lua" "$url" >"$out" 2>&1 &
  local pid=$!
  # wrk's own CPU time (for the "others" column), sampled until it exits.
  while [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] && [ -e "/proc/$pid" ]; do
    WRK_TICKS=$(cpu_ticks "$pid"); sleep 0.2
  done
  wait "$pid"
}

proxy_pids() { # the processes doing the proxying for a target
  case $1 in
    direct) echo "" ;;
    nginx) echo "$NGINX_PID $NGINX_WORKER" ;;
    tollgate) echo "$TOLLGATE_PID" ;;
  esac
}
# Jiffies spent running processes (user, nice, system) or stolen by the hypervisor, all
# CPUs; irq/softirq time is left out because the kernel charges it to no process (on
# loopback it grows with the request rate and is not someone else's work).
task_busy() { awk '$1 == "cpu" {print $2 + $3 + $4 + $9}' /proc/stat; }
sum_ticks() { local t=0; for p in "$@"; do t=$((t + $(cpu_ticks "$p"))); done; echo "$t"; }
sum_rss() { local t=0; for p in "$@"; do t=$((t + $(rss_kb "$p"))); done; echo "$t"; }

printf 'round\ttarget\tload\trps\tp50_us\tp90_us\tp99_us\tmax_us\trequests\terrors\tproxy_cpu_pct\tupstream_cpu_pct\tcpu0_busy_pct\tcpu1_busy_pct\tothers_cpu_pct\tproxy_rss_kb\n' >"$ROWS"
HZ=$(getconf CLK_TCK)
for round in $(seq 1 "$ROUNDS"); do
  for load in $LOADS; do
    for target in $TARGETS; do
      log "round $round/$ROUNDS: $target, load $load: warm-up ${WARMUP}s, measure ${DURATION}s"
      wait_quiet
      run_wrk "$target" "$load" "$WARMUP" "$WORK/warmup.out"
      # shellcheck disable=SC2046
      pids=$(proxy_pids "$target")
      p0=$(sum_ticks $pids); u0=$(cpu_ticks "$UPSTREAM_WORKER")
      read -r c0b c0t < <(cpu_busy 0); read -r c1b c1t < <(cpu_busy 1)
      a0=$(task_busy); WRK_TICKS=0
      run_wrk "$target" "$load" "$DURATION" "$WORK/wrk.out"
      rss=$(sum_rss $pids)
      p1=$(sum_ticks $pids); u1=$(cpu_ticks "$UPSTREAM_WORKER")
      a1=$(task_busy)
      read -r c0b2 c0t2 < <(cpu_busy 0); read -r c1b2 c1t2 < <(cpu_busy 1)
      line=$(grep '^BENCH ' "$WORK/wrk.out") || { cat "$WORK/wrk.out" >&2; die "wrk printed no result"; }
      eval "$(echo "${line#BENCH }" | tr ' ' '\n' | sed 's/^/w_/')"
      errors=$((w_connect_err + w_read_err + w_write_err + w_status_err + w_timeout_err))
      [ "$errors" -eq 0 ] || log "warning: $errors errors/non-2xx ($line)"
      rps=$(awk -v r="$w_requests" -v d="$w_duration_us" 'BEGIN {printf "%.0f", r / (d / 1e6)}')
      secs=$(awk -v d="$w_duration_us" 'BEGIN {print d / 1e6}')
      pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.0f", (b > 0 ? 100 * a / b : 0)}'; }
      proxy_cpu=$(awk -v t=$((p1 - p0)) -v hz="$HZ" -v s="$secs" 'BEGIN {printf "%.0f", 100 * t / hz / s}')
      upstream_cpu=$(awk -v t=$((u1 - u0)) -v hz="$HZ" -v s="$secs" 'BEGIN {printf "%.0f", 100 * t / hz / s}')
      others=$(awk -v all=$((a1 - a0)) -v ours=$(( (p1 - p0) + (u1 - u0) + WRK_TICKS )) -v hz="$HZ" -v s="$secs" \
        'BEGIN {o = 100 * (all - ours) / (hz * s); printf "%.0f", (o < 0 ? 0 : o)}')
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$target" "$load" "$rps" \
        "$w_p50_us" "$w_p90_us" "$w_p99_us" "$w_max_us" "$w_requests" "$errors" "$proxy_cpu" "$upstream_cpu" \
        "$(pct $((c0b2 - c0b)) $((c0t2 - c0t)))" "$(pct $((c1b2 - c1b)) $((c1t2 - c1t)))" "$others" "$rss" >>"$ROWS"
      log "  $rps req/s, p50 ${w_p50_us}us, p99 ${w_p99_us}us, proxy CPU ${proxy_cpu}%, others ${others}%, errors $errors"
    done
  done
done

meta tollgate_rss_end_kb "$(rss_kb "$TOLLGATE_PID")"
meta tollgate_hwm_kb "$(hwm_kb "$TOLLGATE_PID")"
meta nginx_rss_end_kb "$(( $(rss_kb "$NGINX_PID") + $(rss_kb "$NGINX_WORKER") ))"
meta nginx_worker_hwm_kb "$(hwm_kb "$NGINX_WORKER")"
meta bundle "$BUNDLE_DESC"
meta pin "$PIN"
meta loads "$LOADS"
meta wrk "wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), -t $THREADS, -d ${DURATION}s after ${WARMUP}s warm-up, loads ${LOADS// /, }, $ROUNDS rounds interleaved"
meta nginx_version "$(nginx -v 2>&1 | sed 's|nginx version: ||')"
meta node_version "$("$NODE" --version)"
meta machine "$(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/^MemTotal/ {printf "%.1f GiB RAM", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"

if [ -n "${BENCH_REPORT:-}" ]; then cp "$ROWS" "${BENCH_REPORT%.md}.rows.tsv"; cp "$META" "${BENCH_REPORT%.md}.meta.tsv"; fi
"$NODE" "$BENCH/report.mjs" "$ROWS" "$META" | tee "${BENCH_REPORT:-/dev/null}"
