#!/usr/bin/env bash
# Interleaved footprint (`npm run bench -- footprint-interleaved`): the CPU per request of
# Tollgate with and without each recording feature, and of the policy forwarder, measured
# so that a shared machine's drifting speed weighs on every target alike.
#
# footprint.sh measures its targets one after the other, a minute or more apart; on a VM
# whose hypervisor takes 0–35 % of the CPU in phases of minutes, two targets measured apart
# differ by more than any recording feature costs. Here every target (started as
# footprint.sh starts it: bench/footprint-targets.sh, each traced target with a collector of
# its own) runs at once, idle until its turn, all on the target CPU; the load moves from one
# to the next in windows of INTERLEAVED_WINDOW_S (5) s, in a rotating order, for
# INTERLEAVED_CYCLES (12) cycles, after INTERLEAVED_WARMUP_S (15) s of the same load on each.
# A window is either saturation (INTERLEAVED_LOAD=saturate, the default: wrk -t1 -c32) or a
# paced rate (INTERLEAVED_LOAD=paced: vegeta at INTERLEAVED_RATE, 2000, req/s); its figures
# are the target process's own CPU (utime + stime, all threads) per request, its requests/s,
# and the hypervisor's steal on the target CPU during it. What a target does while idle (its
# timers, its idle collection) falls outside its windows and is not counted.
# Each ratio between two targets is taken within a cycle (windows seconds apart), then the
# median over cycles is printed with the cycles' spread, and again over only the cycles in
# which both windows had steal under 1 %.
# With bare-recording among the targets (the policy forwarder recording every decision with
# stock libraries, footprint.sh) Tollgate's recording is also compared with it.
# Env: INTERLEAVED_TARGETS ("bare-policy bare-recording tollgate tollgate-log tollgate-tracing tollgate-recording")
#      INTERLEAVED_LOAD INTERLEAVED_RATE INTERLEAVED_WINDOW_S INTERLEAVED_CYCLES INTERLEAVED_WARMUP_S
#      BENCH_BUNDLE (allow-list) and footprint.sh's FOOTPRINT_NODE_FLAGS FOOTPRINT_TOLLGATE_ROOT TOLLGATE_EXTRA_YAML.
# Results: bench/RESULTS.md ("Footprint").
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/footprint-targets.sh"
VEGETA=$ROOT/.tools/bin/vegeta
TARGETS=${INTERLEAVED_TARGETS:-bare-policy bare-recording tollgate tollgate-log tollgate-tracing tollgate-recording}
LOAD=${INTERLEAVED_LOAD:-saturate}
RATE=${INTERLEAVED_RATE:-2000}
WINDOW_S=${INTERLEAVED_WINDOW_S:-5}
CYCLES=${INTERLEAVED_CYCLES:-12}
WARMUP_S=${INTERLEAVED_WARMUP_S:-15}
URL_PATH=/v1/refunds/r-1
TICK=$(getconf CLK_TCK)
case $LOAD in saturate | paced) ;; *) die "INTERLEAVED_LOAD must be saturate or paced, not \"$LOAD\"" ;; esac

[ "$LOAD" != paced ] || [ -x "$VEGETA" ] || die "missing $VEGETA (bash scripts/install-tools.sh vegeta)"
begin_footprint

declare -A PIDS PORTS
KEEP_COLLECTORS=1
for name in $TARGETS; do
  start_target "$name"
  PIDS[$name]=$PID
  PORTS[$name]=$PORT
  log "$name: pid $PID, port $PORT"
done

# load <port> <seconds> <out>: one window of the chosen load; prints "requests duration_us".
load() {
  if [ "$LOAD" = saturate ]; then
    BENCH_HOST=payments.internal loadgen wrk -t1 -c32 -d "${2}s" --timeout 5s -s "$BENCH/wrk-report.lua" \
      "http://127.0.0.1:$1$URL_PATH" >"$3" 2>&1
    local requests duration
    requests=$(sed -n 's/.*BENCH .*\brequests=\([0-9]*\).*/\1/p' "$3" | head -1)
    duration=$(sed -n 's/.*BENCH .*\bduration_us=\([0-9]*\).*/\1/p' "$3" | head -1)
    [ -n "$requests" ] && [ "$requests" -gt 0 ] || die "wrk failed: $(cat "$3")"
    echo "$requests $duration"
  else
    printf 'GET http://127.0.0.1:%s%s\nHost: payments.internal\n' "$1" "$URL_PATH" >"$WORK/targets.txt"
    loadgen "$VEGETA" attack -rate="$RATE" -duration="${2}s" -targets="$WORK/targets.txt" -keepalive=true -workers=8 |
      "$VEGETA" report -type=json >"$3"
    "$NODE" -e '
      const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      const ok = r.status_codes?.["200"] ?? 0;
      if (ok !== r.requests) { console.error(`non-200 answers: ${JSON.stringify(r.status_codes)}`); process.exit(1); }
      process.stdout.write(`${r.requests} ${Math.round(r.duration / 1000)}`);' "$3" || die "paced window failed"
  fi
}

log "warm-up: ${WARMUP_S}s of the load on each target ($LOAD)"
for name in $TARGETS; do load "${PORTS[$name]}" "$WARMUP_S" "$WORK/$name-warmup.txt" >/dev/null; done

: >"$WORK/windows.jsonl"
read -r -a names <<<"$TARGETS"
n=${#names[@]}
for cycle in $(seq 1 "$CYCLES"); do
  # Rotate the starting target every cycle, and reverse every other cycle: no target always
  # follows the same one.
  order=()
  for i in $(seq 0 $((n - 1))); do order+=("${names[$(((i + cycle - 1) % n))]}"); done
  if [ $((cycle % 2)) = 0 ]; then mapfile -t order < <(printf '%s\n' "${order[@]}" | tac); fi
  log "cycle $cycle of $CYCLES: ${order[*]}"
  for name in "${order[@]}"; do
    pid=${PIDS[$name]}
    alive "$pid" || die "$name (pid $pid) is gone: $(tail -5 "$WORK/$name.out")"
    t0=$(cpu_ticks "$pid")
    st0=$(cpu_steal)
    window=$(load "${PORTS[$name]}" "$WINDOW_S" "$WORK/$name-window.txt")
    read -r requests duration <<<"$window"
    t1=$(cpu_ticks "$pid")
    steal=$(steal_pct "$st0" "$(cpu_steal)")
    printf '{"target":"%s","cycle":%d,"requests":%d,"durationUs":%d,"cpuUs":%d,"stealPct":%s}\n' \
      "$name" "$cycle" "$requests" "$duration" "$(((t1 - t0) * 1000000 / TICK))" "$steal" >>"$WORK/windows.jsonl"
  done
done

"$NODE" - "$WORK/windows.jsonl" "$LOAD" "$RATE" "$WINDOW_S" "$CYCLES" <<'JS'
const [file, load, rate, windowS, cycles] = process.argv.slice(2);
const windows = require('fs').readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const targets = [...new Set(windows.map((w) => w.target))];
const cpu = (w) => w.cpuUs / w.requests;
const rps = (w) => (w.requests * 1e6) / w.durationUs;
const of = (t) => windows.filter((w) => w.target === t);
const what = load === 'saturate' ? 'saturation (wrk -t1 -c32)' : `a paced ${rate} req/s (vegeta)`;
console.log(`\n## Footprint, interleaved: ${what}, windows of ${windowS} s, ${cycles} cycles\n`);
console.log('| target | CPU µs/req (median) | min–max | req/s (median) | windows with steal < 1 % | steal % (median, max) |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const t of targets) {
  const ws = of(t);
  const c = ws.map(cpu);
  console.log(`| ${t} | ${median(c).toFixed(1)} | ${Math.min(...c).toFixed(1)}–${Math.max(...c).toFixed(1)} | ${Math.round(median(ws.map(rps)))} | ${ws.filter((w) => w.stealPct < 1).length} of ${ws.length} | ${median(ws.map((w) => w.stealPct)).toFixed(1)}, ${Math.max(...ws.map((w) => w.stealPct)).toFixed(1)} |`);
}
// Ratios within a cycle, then their median over cycles (and over the quiet cycles alone).
const ratio = (t, ref, quiet) => {
  const per = [];
  for (let c = 1; c <= Number(cycles); c++) {
    const [a, b] = [windows.find((w) => w.target === t && w.cycle === c), windows.find((w) => w.target === ref && w.cycle === c)];
    if (a === undefined || b === undefined || (quiet && Math.max(a.stealPct, b.stealPct) >= 1)) continue;
    per.push({ cpu: cpu(a) / cpu(b), rps: rps(a) / rps(b) });
  }
  return per;
};
const describe = (per) =>
  `CPU/req ${median(per.map((p) => p.cpu)).toFixed(2)}× (cycles ${Math.min(...per.map((p) => p.cpu)).toFixed(2)}–${Math.max(...per.map((p) => p.cpu)).toFixed(2)}), req/s ${median(per.map((p) => p.rps)).toFixed(2)}×`;
// Against bare-policy: every target; against Tollgate: its recording variants; against
// bare-recording (the policy forwarder recording with stock libraries): Tollgate recording.
const compared = { 'bare-policy': () => true, tollgate: (t) => t.startsWith('tollgate-'), 'bare-recording': (t) => t === 'tollgate-recording' };
for (const [ref, wanted] of Object.entries(compared)) {
  if (!targets.includes(ref)) continue;
  console.log('');
  for (const t of targets) {
    if (t === ref || !wanted(t)) continue;
    const all = ratio(t, ref, false);
    const quiet = ratio(t, ref, true);
    console.log(`${t} vs ${ref}: ${describe(all)}${quiet.length > 0 ? `; in the ${quiet.length} cycles with steal < 1 % on both: ${describe(quiet)}` : '; no cycle with steal < 1 % on both'}`);
  }
}
JS
