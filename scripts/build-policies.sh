#!/usr/bin/env bash
# Builds policies/ into the WebAssembly bundle that `tollgate run` loads by default.
#
#   scripts/build-policies.sh [OUT]     (default OUT: policies/dist/bundle.tar.gz)
#
# The bundle is committed so that Node users without Go can start; CI rebuilds it with
# scripts/check-bundle-fresh.sh and fails when it is stale. The output depends only on the
# sources and the pinned opa: the revision is a hash of the sources (not git), and paths in
# the bundle are relative to the repo root, which is why this runs from there.
# policies/hybrid/local (the local layer of the hybrid PDP-chain example) is its own bundle,
# policies/hybrid/local.tar.gz, built here too when the default output is written.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
OPA="$REPO/.tools/bin/opa"
ENTRYPOINTS=(tollgate/authz/decision tollgate/authz/allow tollgate/authz/response)

out="${1:-policies/dist/bundle.tar.gz}"
[[ "$out" == /* ]] || out="$PWD/$out"

"$REPO/scripts/install-tools.sh" opa >&2
cd "$REPO"

# sources lists what opa build loads from policies/: Rego and data files, minus tests and
# the build output. Sorted bytewise, so the revision does not depend on the locale.
sources() {
  find policies \( -path policies/dist -o -path policies/hybrid \) -prune -o -type f \
    \( -name '*.rego' -o -name '*.json' -o -name '*.yaml' -o -name '*.yml' \) \
    ! -name '*_test.rego' -print | LC_ALL=C sort
}

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$@"; else shasum -a 256 "$@"; fi
}

# Hashing "digest  path" lines means renaming or moving a file changes the revision too.
mapfile -t files < <(sources)
((${#files[@]} > 0)) || { echo "build-policies: no Rego or data files under policies/" >&2; exit 1; }
digest="$(sha256 "${files[@]}" | sha256 | cut -c1-12)"
revision="seed-$digest"

entrypoint_flags=()
for entrypoint in "${ENTRYPOINTS[@]}"; do entrypoint_flags+=(-e "$entrypoint"); done

# Build next to the target and rename, so a failed build never leaves half a bundle.
mkdir -p "$(dirname "$out")"
tmp="$(mktemp "$(dirname "$out")/.bundle.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
"$OPA" build -t wasm "${entrypoint_flags[@]}" --revision "$revision" \
  --ignore '*_test.rego' --ignore dist --ignore hybrid -o "$tmp" policies
chmod 644 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT

echo "policies: built ${out#"$REPO/"} (revision $revision, ${#files[@]} sources)"

# The hybrid example's local layer (README "Layered policies"), only with the default output.
if [[ -z "${1:-}" ]]; then
  mapfile -t local_files < <(find policies/hybrid/local -type f -name '*.rego' ! -name '*_test.rego' | LC_ALL=C sort)
  local_revision="hybrid-local-$(sha256 "${local_files[@]}" | sha256 | cut -c1-12)"
  "$OPA" build -t wasm -e tollgate/local/decision --revision "$local_revision" \
    --ignore '*_test.rego' -o policies/hybrid/local.tar.gz policies/hybrid/local
  chmod 644 policies/hybrid/local.tar.gz
  echo "policies: built policies/hybrid/local.tar.gz (revision $local_revision)"
fi
