#!/usr/bin/env bash
# Strict-gate cost (`npm run bench -- gate`): saturated throughput of Tollgate with the
# default strict reading of requests vs `proxy.pathNormalization: base`, in one run.
#
# Two Tollgate processes with the same policy and upstream, differing only in that
# setting, both on the proxy CPU (only the one under load is busy). Each of GATE_ROUNDS
# (5) rounds measures both with wrk -t 1 -c 32 for GATE_DURATION (10) s after a
# GATE_WARMUP (3) s warm-up, alternating which goes first (ABBA), on a realistic allowed
# mix (bench/targets.mjs "gate": GET with a query, POST JSON of 1 KB, MCP tools/call of
# 2 KB, in turn). Reported per round and as medians: requests/s, Tollgate CPU µs per
# request, and strict / base (the strict gate's cost is 1 − that ratio; target < 5 %).
#
# GATE_BASE_REV=<git revision> runs the second instance from that revision's source
# instead (same config without pathNormalization): the whole cost of the strict gate —
# path and host rules, strict body reading, the one decision step — against the code
# before it, e.g. GATE_BASE_REV=61c61e4. Both then evaluate this revision's default
# bundle (GATE_SAME_BUNDLE=0: each revision its own embedded seed policies, which adds
# the policies' own growth to the figure).
#
# When this build refuses `proxy.pathNormalization` (the setting is not there yet), the
# report says so and measures strict against a second strict instance instead: an A/A
# run whose ratio is the noise floor of this machine.
#
# Env: GATE_ROUNDS GATE_DURATION GATE_WARMUP GATE_BASE_MODE (value for the second
#      instance, default "base") BENCH_PIN BENCH_NODE_FLAGS BENCH_KEEP BENCH_REPORT
#      BENCH_QUIET_PCT BENCH_QUIET_MAX
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROUNDS=${GATE_ROUNDS:-5}
DURATION=${GATE_DURATION:-10}
WARMUP=${GATE_WARMUP:-3}
BASE_MODE=${GATE_BASE_MODE:-base}

require_tools
make_workdir
log "work dir $WORK; $ROUNDS rounds of ${DURATION}s, strict vs pathNormalization: $BASE_MODE"
"$NODE" "$BENCH/targets.mjs" gate "$WORK" >&2

start_upstream /

write_config() { # write_config <file> [pathNormalization value]
  {
    echo "agent: { id: support-bot, role: support }"
    [ -z "$SAME_BUNDLE" ] || echo "pdp: { bundle: \"$SAME_BUNDLE\" }"
    echo "proxy:"
    echo "  listen: 127.0.0.1:0"
    [ -z "${2:-}" ] || echo "  pathNormalization: $2"
    echo "  resolve:"
    for h in payments.internal mcp.internal; do echo "    \"$h:80\": \"127.0.0.1:$UPSTREAM_PORT\""; done
    echo "admin: { listen: 127.0.0.1:0 }"
    echo "extAuthz: { listen: 127.0.0.1:0 }"
    echo "logLevel: warn"
  } >"$1"
}

# Against an earlier revision both run this revision's default bundle, so the policy
# evaluated is the same and what differs is the request path (GATE_SAME_BUNDLE=0: each its own).
SAME_BUNDLE=''
if [ -n "${GATE_BASE_REV:-}" ] && [ "${GATE_SAME_BUNDLE:-1}" = 1 ]; then
  SAME_BUNDLE=$ROOT/policies/dist/bundle.tar.gz
  [ -f "$SAME_BUNDLE" ] || die "$SAME_BUNDLE is missing (npm run build:policies)"
  log "both instances evaluate $SAME_BUNDLE (sha256 $(sha256sum "$SAME_BUNDLE" | cut -c1-12))"
fi
BUNDLE_NOTE=''
[ -z "${GATE_BASE_REV:-}" ] || BUNDLE_NOTE="Policy: $([ -n "$SAME_BUNDLE" ] && echo "the same bundle for both (policies/dist/bundle.tar.gz of this revision)" || echo "each revision its own embedded default bundle"). "
write_config "$WORK/strict.yaml"
# shellcheck disable=SC2086
start_tollgate_config "$WORK/strict.yaml" strict ${BENCH_NODE_FLAGS:-}
STRICT_PID=$TOLLGATE_PID STRICT_PORT=$TOLLGATE_PORT

NOTE=''
if [ -n "${GATE_BASE_REV:-}" ]; then
  # The earlier revision's source beside this one's dependencies.
  mkdir -p "$WORK/base-tree"
  git -C "$ROOT" archive "$GATE_BASE_REV" src policies proto package.json | tar -x -C "$WORK/base-tree"
  ln -s "$ROOT/node_modules" "$WORK/base-tree/node_modules"
  write_config "$WORK/base.yaml"
  B_LABEL="before the strict gate ($(git -C "$ROOT" rev-parse --short "$GATE_BASE_REV"))"
  # shellcheck disable=SC2086
  TOLLGATE_ROOT=$WORK/base-tree start_tollgate_config "$WORK/base.yaml" base ${BENCH_NODE_FLAGS:-}
  B_PID=$TOLLGATE_PID B_PORT=$TOLLGATE_PORT
else
write_config "$WORK/base.yaml" "$BASE_MODE"
B_LABEL="pathNormalization: $BASE_MODE"
# shellcheck disable=SC2086
if start_tollgate_config "$WORK/base.yaml" base ${BENCH_NODE_FLAGS:-}; then
  B_PID=$TOLLGATE_PID B_PORT=$TOLLGATE_PORT
else
  NOTE="This build refuses \`proxy.pathNormalization: $BASE_MODE\` ($(grep -m1 'pathNormalization' "$WORK/base.out" | sed 's/^tollgate: //' | head -c 200 || echo 'it exited at start')): the second instance is strict too, so this is an A/A run and its ratio is the noise floor, not the gate's cost."
  log "$NOTE"
  B_LABEL="strict (A/A: pathNormalization refused)"
  write_config "$WORK/base.yaml"
  # shellcheck disable=SC2086
  start_tollgate_config "$WORK/base.yaml" base ${BENCH_NODE_FLAGS:-}
  B_PID=$TOLLGATE_PID B_PORT=$TOLLGATE_PORT
fi
fi

# Every request of the mix must be allowed and forwarded by both, or the comparison is moot.
"$NODE" -e '
  const lines = require("node:fs").readFileSync(process.argv[1], "utf8").trim().split("\n");
  lines.forEach((l, i) => { const t = JSON.parse(l); require("node:fs").writeFileSync(`${process.argv[2]}/gate-${i}.json`, l); });
' "$WORK/gate.targets.jsonl" "$WORK"
for port in "$STRICT_PORT" "$B_PORT"; do
  for f in "$WORK"/gate-[0-9]*.json; do
    read -r method url body < <("$NODE" -e '
      const t = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
      process.stdout.write(`${t.method} ${t.url} ${t.body ?? "-"}\n`);' "$f")
    args=(-s -o "$WORK/probe.body" -w '%{http_code}' -x "http://127.0.0.1:$port" -X "$method" -H 'content-type: application/json')
    [ "$body" = - ] || { echo "$body" | base64 -d >"$WORK/probe.req"; args+=(--data-binary "@$WORK/probe.req"); }
    status=$(curl "${args[@]}" "$url" || echo 000)
    [ "$status" = 200 ] || die "$method $url through :$port answered $status: $(head -c 300 "$WORK/probe.body")"
  done
done
log "every request of the mix is allowed by both instances"

ROWS=$WORK/rows.tsv
printf 'round\tvariant\trps\tp50_us\tp99_us\tcpu_us_per_req\terrors\n' >"$ROWS"
HZ=$(getconf CLK_TCK)
measure() { # measure <round> <variant> <port> <pid>
  local round=$1 variant=$2 port=$3 pid=$4
  wait_quiet
  BENCH_REQUESTS=$WORK/gate.requests.lua loadgen wrk -t 1 -c 32 -d "${WARMUP}s" --timeout 5s -s "$BENCH/wrk-mix.lua" "http://127.0.0.1:$port" >"$WORK/warmup.out" 2>&1
  local t0 t1
  t0=$(cpu_ticks "$pid")
  BENCH_REQUESTS=$WORK/gate.requests.lua loadgen wrk -t 1 -c 32 -d "${DURATION}s" --timeout 5s -s "$BENCH/wrk-mix.lua" "http://127.0.0.1:$port" >"$WORK/wrk.out" 2>&1
  t1=$(cpu_ticks "$pid")
  local line
  line=$(grep '^BENCH ' "$WORK/wrk.out") || { cat "$WORK/wrk.out" >&2; die "wrk printed no result"; }
  eval "$(echo "${line#BENCH }" | tr ' ' '\n' | sed 's/^/w_/')"
  local errors=$((w_connect_err + w_read_err + w_write_err + w_status_err + w_timeout_err))
  local rps cpu
  rps=$(awk -v r="$w_requests" -v d="$w_duration_us" 'BEGIN {printf "%.0f", r / (d / 1e6)}')
  cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v r="$w_requests" 'BEGIN {printf "%.1f", 1e6 * t / hz / r}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$variant" "$rps" "$w_p50_us" "$w_p99_us" "$cpu" "$errors" >>"$ROWS"
  log "round $round $variant: $rps req/s, ${cpu} µs CPU/req, p99 ${w_p99_us}us, errors $errors"
}
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then
    measure "$round" strict "$STRICT_PORT" "$STRICT_PID"; measure "$round" base "$B_PORT" "$B_PID"
  else
    measure "$round" base "$B_PORT" "$B_PID"; measure "$round" strict "$STRICT_PORT" "$STRICT_PID"
  fi
done

"$NODE" -e '
  const fs = require("node:fs");
  const [rowsFile, bLabel, note, meta] = process.argv.slice(1);
  const [head, ...lines] = fs.readFileSync(rowsFile, "utf8").trim().split("\n").map((l) => l.split("\t"));
  const rows = lines.map((r) => Object.fromEntries(r.map((v, i) => [head[i], i === 1 ? v : Number(v)])));
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
  const rounds = [...new Set(rows.map((r) => r.round))];
  const get = (round, v) => rows.find((r) => r.round === round && r.variant === v);
  const ratios = rounds.map((n) => get(n, "strict").rps / get(n, "base").rps);
  const cpuRatios = rounds.map((n) => get(n, "strict").cpu_us_per_req / get(n, "base").cpu_us_per_req);
  const out = [];
  out.push("# Strict-gate cost: default strict reading vs " + bLabel, "");
  out.push(meta, "");
  if (note) out.push("> " + note, "");
  out.push("| round | strict req/s | " + bLabel + " req/s | strict / other | strict CPU µs/req | other CPU µs/req | p99 strict / other (ms) | errors |", "|---|---|---|---|---|---|---|---|");
  for (const n of rounds) {
    const s = get(n, "strict"), b = get(n, "base");
    out.push(`| ${n} | ${s.rps} | ${b.rps} | ${(s.rps / b.rps).toFixed(3)} | ${s.cpu_us_per_req} | ${b.cpu_us_per_req} | ${(s.p99_us / 1000).toFixed(2)} / ${(b.p99_us / 1000).toFixed(2)} | ${s.errors + b.errors} |`);
  }
  const r = median(ratios), c = median(cpuRatios);
  out.push("", `Median throughput ratio strict / other: **${r.toFixed(3)}** (strict gate cost ${(100 * (1 - r)).toFixed(1)} % of throughput; range ${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)}). Median CPU per request ratio: ${c.toFixed(3)}. Target: cost under 5 %.`);
  process.stdout.write(out.join("\n") + "\n");
' "$ROWS" "$B_LABEL" "$NOTE" "wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}') -t 1 -c 32, ${DURATION}s after ${WARMUP}s warm-up, $ROUNDS rounds ABBA; mix: GET with query, POST JSON 1 KB, MCP tools/call 2 KB (bench/targets.mjs gate); $(nproc) CPUs, pinning $([ "$PIN" = 1 ] && echo on || echo off); $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown). ${BUNDLE_NOTE}Command: ${GATE_BASE_REV:+GATE_BASE_REV=$GATE_BASE_REV }${GATE_SAME_BUNDLE:+GATE_SAME_BUNDLE=$GATE_SAME_BUNDLE }GATE_ROUNDS=$ROUNDS GATE_DURATION=$DURATION npm run bench -- gate" | tee "${BENCH_REPORT:-/dev/null}"
