# The targets of the footprint benchmarks (sourced after lib.sh by footprint.sh and
# footprint-interleaved.sh): the bare forwarders, Tollgate and its recording variants, each
# started the same way by both; the hypervisor's steal on the target's CPU.

# begin_footprint: the tools checked, the work dir, the upstream on URL_PATH, the bundle
# (BENCH_BUNDLE, default allow-list), the machine and the build logged, the targets prepared.
begin_footprint() {
  require_tools
  make_workdir
  log "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo); load average $(cut -d' ' -f1-3 /proc/loadavg)"
  start_upstream "$URL_PATH"
  select_bundle "${BENCH_BUNDLE:-allow-list}"
  log "bundle: $BUNDLE_DESC"
  if [ -f "$ROOT/dist/BUILT" ]; then log "tollgate runs the compiled dist/ (built $(cat "$ROOT/dist/BUILT")) unless newer sources"; else log "tollgate runs the TypeScript sources (no dist/: npm run build)"; fi
  prepare_targets
}

# prepare_targets: Tollgate's benchmark config ($WORK/tollgate.yaml, BUNDLE and UPSTREAM_PORT set)
# and the bare-policy peer's policy (the same bundle's).
prepare_targets() {
  render "$BENCH/tollgate.yaml.in" "$WORK/tollgate.yaml" "BUNDLE=$BUNDLE" "UPSTREAM_PORT=$UPSTREAM_PORT"
  # An agent's sidecar serves no ext_authz: FOOTPRINT_EXTAUTHZ_LISTENER=1 keeps the listener on.
  if [ "${FOOTPRINT_EXTAUTHZ_LISTENER:-0}" != 1 ]; then
    awk '/^extAuthz:$/ { print; print "  enabled: false"; skip = 1; next } skip && /^  / { next } { skip = 0; print }' \
      "$WORK/tollgate.yaml" >"$WORK/tollgate.yaml.tmp" && mv "$WORK/tollgate.yaml.tmp" "$WORK/tollgate.yaml"
  fi
  [ -z "${TOLLGATE_EXTRA_YAML:-}" ] || printf '%s\n' "$TOLLGATE_EXTRA_YAML" >>"$WORK/tollgate.yaml"
  # The bare-policy peer's policy: the same bundle's.
  extract_policy "$WORK/bare-policy"
}

# start_bare <label> [node flags...]: bench/bare-forwarder.mjs on the target CPU (its BARE_* settings
# from the caller's environment); sets PID and PORT.
start_bare() {
  local label=$1 out=$WORK/$name.out
  shift
  BARE_UPSTREAM=127.0.0.1:$UPSTREAM_PORT start_bg "$PROXY_CPU" "$out" "$NODE" --trace-gc-nvp "$@" "$BENCH/bare-forwarder.mjs"
  PID=$LAST_PID
  wait_until 30 "$label" grep -q '^listening ' "$out"
  PORT=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$out" | head -1)
}

# fresh_collector: a Jaeger for the next traced target (sets OTLP, OTLP_HTTP). One that already holds
# an earlier target's spans works harder beside the load generators (CPU 0), and the later target
# measured ~20 % fewer requests/s for it. KEEP_COLLECTORS=1 (targets alive at once): the earlier
# collector stays for its target.
fresh_collector() {
  [ -z "${JAEGER_PID:-}" ] || [ "${KEEP_COLLECTORS:-0}" = 1 ] || stop_pid "$JAEGER_PID" TERM
  start_jaeger
}

start_target() { # start_target <name>: sets PID, PORT (origin-form entry), ADMIN (or "")
  local name=$1 out=$WORK/$1.out
  : >"$out"
  ADMIN=''
  case $name in
    bare) start_bare "bare forwarder" ;;
    bare-tuned)
      # shellcheck disable=SC2046 # a list of flags
      BARE_WORKER_NICE=10 start_bare "bare forwarder (tuned)" $("$NODE" "$ROOT/bin/node-defaults.js")
      ;;
    bare-policy)
      BARE_POLICY_WASM=$WORK/bare-policy/policy.wasm BARE_POLICY_DATA=$WORK/bare-policy/data.json \
        start_bare "bare forwarder with the policy"
      ;;
    bare-recording)
      # The policy forwarder recording every decision with stock libraries (OpenTelemetry SDK, pino).
      fresh_collector
      BARE_POLICY_WASM=$WORK/bare-policy/policy.wasm BARE_POLICY_DATA=$WORK/bare-policy/data.json \
        BARE_RECORD_LOG=$WORK/bare-recording-decisions.jsonl BARE_OTLP_URL=http://127.0.0.1:$OTLP_HTTP/v1/traces \
        start_bare "bare forwarder recording"
      ;;
    tollgate | tollgate-nodefaults | tollgate-ts | tollgate-recording | tollgate-tracing | tollgate-log)
      local defaults=1 dist=1 config=$WORK/tollgate.yaml
      [ "$name" != tollgate-nodefaults ] || defaults=0
      [ "$name" != tollgate-ts ] || dist=0
      if [ "$name" = tollgate-recording ] || [ "$name" = tollgate-tracing ] || [ "$name" = tollgate-log ]; then
        config=$WORK/$name.yaml
        cp "$WORK/tollgate.yaml" "$config"
        if [ "$name" != tollgate-log ]; then
          fresh_collector
          printf 'tracing:\n  enabled: true\n  endpoint: http://127.0.0.1:%s\n  serviceName: tollgate-bench\n' "$OTLP" >>"$config"
        fi
        [ "$name" = tollgate-tracing ] || printf 'decisionLog:\n  file: %s\n' "$WORK/$name-decisions.jsonl" >>"$config"
      fi
      # FOOTPRINT_TOLLGATE_ROOT: another source tree of Tollgate (e.g. an earlier revision) to measure instead.
      TOLLGATE_DIST=$dist TOLLGATE_NODE_DEFAULTS=$defaults start_bg "$PROXY_CPU" "$out" "$NODE" --trace-gc-nvp ${FOOTPRINT_NODE_FLAGS:-} "${FOOTPRINT_TOLLGATE_ROOT:-$ROOT}/bin/tollgate.js" run --config "$config"
      PID=$LAST_PID
      wait_until 60 "tollgate" grep -q 'listening: proxy http://' "$out"
      PORT=$(sed -n 's|.*listening: proxy http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$out" | head -1)
      ADMIN=http://127.0.0.1:$(sed -n 's|.*  admin http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$out" | head -1)
      ;;
    *) die "unknown target $name (bare, bare-tuned, bare-policy, bare-recording, tollgate, tollgate-nodefaults, tollgate-ts, tollgate-recording, tollgate-tracing, tollgate-log)" ;;
  esac
  wait_until 10 "$name answering 200" http_ok "http://127.0.0.1:$PORT$URL_PATH"
}

# "steal total" jiffies of the target's CPU (all CPUs when nothing is pinned).
cpu_steal() {
  local row=cpu
  [ "$PIN" != 1 ] || row=cpu$PROXY_CPU
  awk -v row="$row" '$1 == row {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
}
# steal_pct <"steal total" before> <after>: the share of the interval the hypervisor took, in %.
steal_pct() {
  local s0 t0 s1 t1
  read -r s0 t0 <<<"$1"
  read -r s1 t1 <<<"$2"
  awk -v s="$((s1 - s0))" -v t="$((t1 - t0))" 'BEGIN {printf "%.1f", (t > 0 ? 100 * s / t : 0)}'
}
