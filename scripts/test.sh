#!/usr/bin/env bash
# The whole test suite (README command 2, called by .ci/run): installs the pinned
# tools the tests use, type-checks, runs the policy checks (opa fmt/check/test and
# the committed-bundle freshness check), then every tap test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-tools.sh opa opa-envoy-plugin grpcurl jaeger

echo "== typecheck"
npx --no-install tsc --noEmit -p .

echo "== policies"
bash scripts/test-policies.sh

echo "== tap"
mkdir -p .tap
set +e
npx --no-install tap "$@" 2>&1 | tee .tap/last-run.txt
status=${PIPESTATUS[0]}
set -e
# A plain closing line any CI reader understands.
summary=$(grep -E '^# \{ total: ' .tap/last-run.txt | tail -n 1 || true)
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
