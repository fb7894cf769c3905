#!/usr/bin/env bash
# Line coverage of a policy directory's non-test Rego, with a floor: runs `opa test
# --coverage` (ignoring dist/), prints "coverage N%", and on a shortfall lists the
# uncovered lines and exits 1. Used by scripts/test-policies.sh and policies/ci.sh.
#
#   scripts/policy-coverage.sh <policy-dir> <minimum-percent>
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
OPA="$REPO/.tools/bin/opa"
dir=$1 min=$2
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# A layer of its own (policies/hybrid: the PDP-chain example) is measured on its own: mixed
# into the seed policies' run, opa attributes its lines wrongly.
"$OPA" test "$dir" --ignore dist --ignore hybrid --coverage >"$tmp/coverage.json"
# Test files would inflate the figure: only the policies themselves count.
cat >"$tmp/coverage.rego" <<'REGO'
package coverage

files[name] := f if {
	some name, f in input.files
	not endswith(name, "_test.rego")
}

covered := sum([object.get(f, "covered_lines", 0) | some f in files])

total := covered + sum([object.get(f, "not_covered_lines", 0) | some f in files])

percent := (covered * 100) / max([total, 1])

uncovered contains sprintf("  not covered: %s:%d", [name, r.start.row]) if {
	some name, f in files
	some r in object.get(f, "not_covered", [])
}
REGO
coverage_eval() { "$OPA" eval -d "$tmp/coverage.rego" --stdin-input -f raw "$1" <"$tmp/coverage.json"; }
echo "coverage: $(coverage_eval 'sprintf("%v", [round(data.coverage.percent * 10) / 10])')% of policy lines (minimum $min%)"
if [[ "$(coverage_eval "data.coverage.percent >= $min")" != true ]]; then
  coverage_eval 'concat("\n", sort(data.coverage.uncovered))' >&2
  echo "coverage is below the minimum of $min%" >&2
  exit 1
fi
