#!/usr/bin/env bash
# Checks the policies: formatting, strict compile, unit tests with a coverage floor, that
# the committed bundle is fresh, and that the WebAssembly bundle decides like OPA's Go
# evaluator (which runs the unit tests).
#
# Environment:
#   TOLLGATE_POLICY_COVERAGE_MIN   minimum line coverage of the non-test Rego, in percent
#                                  (default 90; the seed policies reach 100)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
OPA="$REPO/.tools/bin/opa"
COVERAGE_MIN="${TOLLGATE_POLICY_COVERAGE_MIN:-90}"

[[ "$COVERAGE_MIN" =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
  { echo "test-policies: TOLLGATE_POLICY_COVERAGE_MIN must be a number, got '$COVERAGE_MIN'" >&2; exit 1; }

"$REPO/scripts/install-tools.sh" opa >&2
cd "$REPO"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

unformatted="$("$OPA" fmt --list policies)"
if [[ -n "$unformatted" ]]; then
  echo "policies: not opa fmt clean (fix: .tools/bin/opa fmt -w policies):" >&2
  while IFS= read -r file; do echo "  $file"; done <<<"$unformatted" >&2
  exit 1
fi

"$OPA" check --strict policies

# --ignore dist: opa would otherwise load the built bundle as a second copy of every rule.
"$OPA" test policies --ignore dist -v

# Line coverage of the policies themselves, with the floor.
"$REPO/scripts/policy-coverage.sh" policies "$COVERAGE_MIN"
"$REPO/scripts/policy-coverage.sh" policies/hybrid/local "$COVERAGE_MIN"

"$REPO/scripts/check-bundle-fresh.sh"

# The bundle runs in WebAssembly, the tests above in Go, and the two differ on arithmetic,
# number parsing and sprintf: compare their decisions when the npm dependencies (the PDP
# Tollgate wraps) are installed.
if command -v node >/dev/null 2>&1 && [[ -d node_modules/@open-policy-agent/opa-wasm ]]; then
  "$OPA" eval -d policies --ignore dist -f raw \
    'json.marshal(data.tollgate.authz_test.wasm_parity_expected)' >"$tmp/parity.json"
  node policies/wasm-parity.mjs policies/dist/bundle.tar.gz "$tmp/parity.json"
else
  echo "policies: wasm parity skipped (needs node on PATH and npm install)"
fi
