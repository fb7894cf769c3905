#!/usr/bin/env bash
# Fails when the committed policies/dist/bundle.tar.gz is not what policies/ builds to.
#
# It rebuilds into a temp dir and compares the extracted files byte for byte: policy.wasm,
# data.json and .manifest (whose revision hashes every source, comments included), then the
# rest. `opa build` output is deterministic for a given opa binary (the archive itself comes
# out byte-identical), but contents rather than archive bytes are compared so that a gzip
# change in another Go or OPA build cannot make a fresh bundle look stale.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
COMMITTED="$REPO/policies/dist/bundle.tar.gz"
STALE="policies/dist/bundle.tar.gz is stale: run npm run build:policies"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

[[ -f "$COMMITTED" ]] || { echo "policies/dist/bundle.tar.gz is missing: run npm run build:policies" >&2; exit 1; }

"$REPO/scripts/build-policies.sh" "$tmp/fresh.tar.gz" >/dev/null

# extract ARCHIVE DIR, without GNU tar's note about the leading "/" of bundle paths.
extract() {
  mkdir -p "$2"
  tar -xzf "$1" -C "$2" 2>&1 | { grep -v 'Removing leading' || true; } >&2
}
extract "$COMMITTED" "$tmp/committed"
extract "$tmp/fresh.tar.gz" "$tmp/fresh"

stale=()
for file in policy.wasm data.json .manifest; do
  [[ -f "$tmp/fresh/$file" ]] || { echo "check-bundle-fresh: opa build produced no $file" >&2; exit 1; }
  cmp -s "$tmp/committed/$file" "$tmp/fresh/$file" || stale+=("$file")
done
# The Rego modules in the bundle (what remains after compiling the entrypoints to wasm).
while IFS= read -r line; do stale+=("$line"); done < <(
  diff -rq "$tmp/committed" "$tmp/fresh" | grep -v -e '/policy.wasm ' -e '/data.json ' -e '/.manifest ' |
    sed -e "s|$tmp/||g" || true
)

if ((${#stale[@]} > 0)); then
  echo "$STALE" >&2
  printf '  differs: %s\n' "${stale[@]}" >&2
  exit 1
fi
echo "policies: dist/bundle.tar.gz is fresh ($(grep -o '"revision":"[^"]*"' "$tmp/fresh/.manifest" | cut -d'"' -f4))"
