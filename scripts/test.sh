#!/usr/bin/env bash
# The whole test suite (README command 2, `npm ci && npm test`, called by .ci/run): installs
# everything the tests use that it can — Debian packages when run as root with apt-get, the
# pinned Go tools, the Python packages in .tools/venv, the Go tool servers of the
# one-reading suites — or stops at once naming what is missing and how to install it; then
# type-checks, runs the policy checks (opa fmt/check/test and the committed-bundle freshness
# check), then every tap test.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
need() { # need COMMAND WHAT-PROVIDES-IT
  command -v "$1" >/dev/null 2>&1 || missing+=("$1 ($2)")
}
stop_if_missing() {
  ((${#missing[@]} == 0)) && return 0
  {
    echo "npm test cannot run; missing:"
    printf '  - %s\n' "${missing[@]}"
    echo "$1"
  } >&2
  exit 1
}

# Before anything slow: what no script here can install.
[[ -x node_modules/.bin/tap ]] || missing+=("node_modules (npm ci)")
need go "Go 1.24 or later, https://go.dev/dl/: builds opa, grpcurl, jaeger, promtool and the Go tool servers"
need python3 "Debian: apt-get install -y python3 python3-venv"
stop_if_missing "Install them, then run npm ci && npm test again."

# Debian packages: installed when root with apt-get, otherwise demanded.
bash scripts/install-tools.sh debian
export PATH="$PATH:/usr/sbin:/sbin"
need iptables "Debian package iptables"
need ip "Debian package iproute2"
# Budgets, rates and approvals shared by replicas: tests start their own redis-server.
need redis-server "Debian package redis-server"
stop_if_missing "Install them as root: sudo bash scripts/install-tools.sh debian (or apt-get install -y iptables iproute2 redis-server)."

bash scripts/install-tools.sh opa opa-envoy-plugin grpcurl jaeger spire promtool python oneread mcp
# The Python agents and tool servers run from .tools/venv (tests call plain `python3`).
export PATH="$PWD/.tools/venv/bin:$PATH"

echo "== format"
npx --no-install prettier --check --log-level warn . || { echo "run npm run format" >&2; exit 1; }

echo "== typecheck"
npx --no-install tsc --noEmit -p .

echo "== policies"
bash scripts/test-policies.sh

echo "== tap"
mkdir -p .tap
set +e
# Outside .tap/, which tap clears when it starts (another tap run must not erase it).
run_log=$(mktemp "${TMPDIR:-/tmp}/tollgate-tap.XXXXXX")
npx --no-install tap "$@" 2>&1 | tee "$run_log"
status=${PIPESTATUS[0]}
set -e
# A plain closing line any CI reader understands.
summary=$(grep -aE '^# \{ total: ' "$run_log" | tail -n 1 || true)
total=$(sed -nE 's/.*total: ([0-9]+).*/\1/p' <<<"$summary")
pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
fail=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")
# Coverage floor (see .taprc for why it is not 100%).
if [ "$status" -eq 0 ] && [ "$#" -eq 0 ]; then
  if ! npx --no-install c8 check-coverage --temp-directory .tap/coverage --lines 85 --functions 85 --branches 75; then
    echo "coverage is below the floor (lines 85%, functions 85%, branches 75%)" >&2
    status=1
  fi
fi
echo "${pass:-0} passed, ${fail:-0} failed"
if [ -z "$total" ] || [ "${total:-0}" -eq 0 ]; then
  echo "no tests ran" >&2
  exit 1
fi
exit "$status"
