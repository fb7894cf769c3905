#!/usr/bin/env bash
# HTTPS benchmark: in one run, on loopback only, HTTPS GETs to an nginx TLS
# upstream (payments.internal, a fixed JSON answer) through
#   direct     client → upstream (the baseline),
#   intercept  client → CONNECT Tollgate → TLS terminated with a leaf from the local CA,
#              request decided by the default policy → new TLS to the upstream,
#   tunnel     client → CONNECT Tollgate (decided once) → bytes relayed → upstream TLS,
#   squid      client → CONNECT Squid (Debian) → bytes relayed → upstream TLS,
# measuring
#   keep-alive requests/s and p50/p99 latency at BENCH_HTTPS_CONNS (default 8) connections,
#   new-connection cost: TCP (+ CONNECT + policy) + TLS handshake, and time to the first
#   response, over BENCH_HTTPS_HANDSHAKES (default 400) sequential connections with a
#   warm leaf cache (the first tenth is discarded as warm-up).
# BENCH_HTTPS_ROUNDS (default 3) interleaved rounds; medians are reported.
# Pinning as bench/http-proxy.sh: load generator and upstream on CPU 0, the proxy under
# test on CPU 1. Load generator: bench/https-load.mjs (Node, raw sockets + node:tls).
#
# Output: a Markdown report on stdout (and in $BENCH_REPORT when set).
# Env: BENCH_HTTPS_SECONDS (10) BENCH_HTTPS_CONNS (8) BENCH_HTTPS_HANDSHAKES (400)
#      BENCH_HTTPS_ROUNDS (3) BENCH_PIN BENCH_KEEP BENCH_REPORT
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SECONDS_PER=${BENCH_HTTPS_SECONDS:-10}
CONNS=${BENCH_HTTPS_CONNS:-8}
HANDSHAKES=${BENCH_HTTPS_HANDSHAKES:-400}
ROUNDS=${BENCH_HTTPS_ROUNDS:-3}
TARGETS="direct intercept tunnel squid"

require_tools
command -v squid >/dev/null 2>&1 || die "missing: squid (apt-get install -y squid)"
make_workdir
log "work dir $WORK"

# --- certificates: the upstream's own CA, and Tollgate's interception CA ----------------
"$NODE" "$BENCH/https-certs.ts" "$WORK"
"$NODE" "$ROOT/src/cli/main.ts" ca init --out "$WORK/tollgate-ca" >/dev/null
# The client trusts both: the upstream CA (direct, tunnel, squid) and Tollgate's (intercept).
cat "$WORK/upstream-ca.crt" "$WORK/tollgate-ca/ca.crt" >"$WORK/client-trust.pem"

# --- upstream ----------------------------------------------------------------------------
UPSTREAM_PORT=$(free_port)
start_nginx https-upstream "$BENCH/nginx-https-upstream.conf.in" "$LOADGEN_CPU" "PORT=$UPSTREAM_PORT"
wait_until 10 "nginx TLS upstream on $UPSTREAM_PORT" curl -sf --cacert "$WORK/upstream-ca.crt" --resolve "payments.internal:$UPSTREAM_PORT:127.0.0.1" "https://payments.internal:$UPSTREAM_PORT/v1/refunds/r-1"

# --- Tollgate: one instance intercepting, one tunnelling (only one is loaded at a time) --
start_tollgate_https() { # <name> <defaultMode>
  local name=$1 mode=$2
  cat >"$WORK/$name.yaml" <<EOF
agent: { id: support-bot, role: support }
proxy:
  listen: 127.0.0.1:0
  resolve: { "payments.internal:443": "127.0.0.1:$UPSTREAM_PORT" }
admin: { listen: 127.0.0.1:0 }
extAuthz: { enabled: false }
connect: { defaultMode: $mode }
tls:
  caCertFile: $WORK/tollgate-ca/ca.crt
  caKeyFile: $WORK/tollgate-ca/ca.key
  upstreamCaFiles: [$WORK/upstream-ca.crt]
logLevel: warn
EOF
  start_bg "$PROXY_CPU" "$WORK/$name.out" "$NODE" "$ROOT/src/cli/main.ts" run --config "$WORK/$name.yaml"
  local pid=$LAST_PID deadline=$((SECONDS + 30))
  until grep -q 'listening: proxy http://' "$WORK/$name.out" 2>/dev/null; do
    alive "$pid" || { cat "$WORK/$name.out" >&2; die "tollgate ($name) exited during start"; }
    [ $SECONDS -lt $deadline ] || die "tollgate ($name) did not start within 30s"
    sleep 0.1
  done
  eval "${name^^}_PID=$pid"
  eval "${name^^}_PORT=$(sed -n 's|.*listening: proxy http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$WORK/$name.out" | head -1)"
}
start_tollgate_https intercept intercept
start_tollgate_https tunnel tunnel

# --- Squid as the CONNECT-tunnel peer ------------------------------------------------------
SQUID_PORT=$(free_port)
mkdir -p "$WORK/squid"
echo "127.0.0.1 payments.internal" >"$WORK/squid/hosts"
# Squid drops to its own user: it must traverse the work dir (0711, no listing) and write its log.
chmod 711 "$WORK"
chmod 777 "$WORK/squid"
chmod 644 "$WORK/squid/hosts"
render "$BENCH/squid-tunnel.conf.in" "$WORK/squid.conf" "DIR=$WORK" "PORT=$SQUID_PORT" "UPSTREAM_PORT=$UPSTREAM_PORT"
start_bg "$PROXY_CPU" "$WORK/squid.out" squid -N -f "$WORK/squid.conf"
SQUID_PID=$LAST_PID
wait_until 20 "squid on $SQUID_PORT" curl -sf --cacert "$WORK/upstream-ca.crt" -x "http://127.0.0.1:$SQUID_PORT" "https://payments.internal:$UPSTREAM_PORT/v1/refunds/r-1"

# --- targets ------------------------------------------------------------------------------
target() { # <name> <proxy port or ""> <authority>
  local proxy=null
  [ -n "$2" ] && proxy="{\"host\":\"127.0.0.1\",\"port\":$2}"
  printf '{"host":"127.0.0.1","port":%s,"servername":"payments.internal","authority":"%s","proxy":%s,"ca":"%s"}\n' \
    "$UPSTREAM_PORT" "$3" "$proxy" "$WORK/client-trust.pem" >"$WORK/target-$1.json"
}
target direct "" "payments.internal:$UPSTREAM_PORT"
target intercept "$INTERCEPT_PORT" "payments.internal:443"
target tunnel "$TUNNEL_PORT" "payments.internal:443"
target squid "$SQUID_PORT" "payments.internal:$UPSTREAM_PORT"

# Correctness first: each path answers 200, and intercept really presents Tollgate's leaf.
for name in $TARGETS; do loadgen "$NODE" "$BENCH/https-load.mjs" handshake "$WORK/target-$name.json" 2 >/dev/null || die "$name: no 200 through this path"; done
curl -s -o /dev/null -w '%{http_code}' --cacert "$WORK/tollgate-ca/ca.crt" -x "http://127.0.0.1:$INTERCEPT_PORT" https://payments.internal/v1/refunds/r-1 | grep -q 200 || die "intercept path does not present Tollgate's certificate"

proxy_pid() { case $1 in intercept) echo "$INTERCEPT_PID" ;; tunnel) echo "$TUNNEL_PID" ;; squid) echo "$SQUID_PID" ;; *) echo "" ;; esac; }

: >"$WORK/results.jsonl"
for round in $(seq 1 "$ROUNDS"); do
  for name in $TARGETS; do
    wait_quiet
    pid=$(proxy_pid "$name")
    c0=$([ -n "$pid" ] && cpu_ticks "$pid" || echo 0)
    r=$(loadgen "$NODE" "$BENCH/https-load.mjs" rps "$WORK/target-$name.json" "$CONNS" "$SECONDS_PER")
    c1=$([ -n "$pid" ] && cpu_ticks "$pid" || echo 0)
    h=$(loadgen "$NODE" "$BENCH/https-load.mjs" handshake "$WORK/target-$name.json" "$HANDSHAKES")
    rss=$([ -n "$pid" ] && rss_kb "$pid" || echo 0)
    cpu=$(( (c1 - c0) * 100 / $(getconf CLK_TCK) / SECONDS_PER ))
    log "round $round $name: $r $h cpu=${cpu}% rss=${rss}kB"
    printf '{"round":%s,"target":"%s","rps":%s,"handshake":%s,"proxy_cpu_pct":%s,"rss_kb":%s}\n' "$round" "$name" "$r" "$h" "$cpu" "$rss" >>"$WORK/results.jsonl"
  done
done

report=$("$NODE" - "$WORK/results.jsonl" "$CONNS" "$SECONDS_PER" "$HANDSHAKES" "$ROUNDS" <<'EOF'
const [file, conns, secs, hs, rounds] = process.argv.slice(2);
const rows = require('node:fs').readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const by = (t, f) => median(rows.filter((r) => r.target === t).map(f));
const targets = ['direct', 'intercept', 'tunnel', 'squid'];
const out = [];
out.push(`HTTPS through a CONNECT proxy, ${conns} keep-alive connections, ${secs} s per measurement, ${hs} new connections for the handshake column, median of ${rounds} rounds. Proxy pinned to CPU 1; load generator and nginx upstream on CPU 0.`);
out.push('');
out.push('| path | req/s | p50 ms | p99 ms | proxy CPU | handshake p50 ms | handshake p99 ms | first response p50 ms | first response p99 ms | new conns/s | proxy RSS MB |');
out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const t of targets) {
  out.push(`| ${t} | ${by(t, (r) => r.rps.rps)} | ${by(t, (r) => r.rps.p50_ms)} | ${by(t, (r) => r.rps.p99_ms)} | ${t === 'direct' ? '—' : by(t, (r) => r.proxy_cpu_pct) + '%'} | ${by(t, (r) => r.handshake.handshake_p50_ms)} | ${by(t, (r) => r.handshake.handshake_p99_ms)} | ${by(t, (r) => r.handshake.first_response_p50_ms)} | ${by(t, (r) => r.handshake.first_response_p99_ms)} | ${by(t, (r) => r.handshake.per_second)} | ${t === 'direct' ? '—' : (by(t, (r) => r.rss_kb) / 1024).toFixed(0)} |`);
}
out.push('');
out.push('- intercept: CONNECT decided, TLS terminated with a cached leaf (warm cache), each request decided by the default policy, forwarded over a pooled, verified TLS connection to the upstream.');
out.push('- tunnel / squid: CONNECT decided (Tollgate) or allowed (Squid), then the client\'s TLS runs end to end to nginx.');
out.push('- handshake = TCP connect + CONNECT round trip (proxies) + TLS handshake; first response adds one GET.');
console.log(out.join('\n'));
EOF
)
printf '%s\n' "$report"
if [ -n "${BENCH_REPORT:-}" ]; then printf '%s\n' "$report" >"$BENCH_REPORT"; fi
