#!/usr/bin/env bash
# Copies Envoy's own ext_authz v3 .proto files and the exact transitive
# closure of their imports from the npm package @grpc/grpc-js-xds (a pinned
# devDependency that ships envoy-api, googleapis, protoc-gen-validate and cncf/xds
# under deps/) into proto/, so field numbers and package names are Envoy's, not
# retyped. google/protobuf/* well-known types are not copied: protobufjs, protoc and grpcurl
# all carry them built in.
# Idempotent: rerun after bumping @grpc/grpc-js-xds and commit the diff.
set -euo pipefail
cd "$(dirname "$0")/.."
DEPS=node_modules/@grpc/grpc-js-xds/deps
[ -d "$DEPS" ] || { echo "vendor-protos: $DEPS missing; run npm ci first" >&2; exit 1; }
VERSION=$(node -p "require('./node_modules/@grpc/grpc-js-xds/package.json').version")
# v2 is not vendored: the npm package does not ship envoy/api/v2/core, which v2 imports.
ROOTS=(envoy/service/auth/v3/external_auth.proto)
OUT=${VENDOR_OUT:-proto}  # VENDOR_OUT: write elsewhere (the freshness test compares with proto/)

find_in_deps() { # proto import path -> file under deps/, or empty
  local rel=$1 d
  for d in envoy-api googleapis protoc-gen-validate xds; do
    if [ -f "$DEPS/$d/$rel" ]; then echo "$d/$rel"; return; fi
  done
}

declare -A seen=()
queue=("${ROOTS[@]}")
files=()
while [ ${#queue[@]} -gt 0 ]; do
  rel=${queue[0]}; queue=("${queue[@]:1}")
  [ -n "${seen[$rel]:-}" ] && continue
  seen[$rel]=1
  case $rel in google/protobuf/*) continue ;; esac
  src=$(find_in_deps "$rel")
  [ -n "$src" ] || { echo "vendor-protos: import $rel not found under $DEPS" >&2; exit 1; }
  files+=("$src")
  while IFS= read -r imp; do queue+=("$imp"); done < <(sed -nE 's/^import (public |weak )?"([^"]+)";.*/\2/p' "$DEPS/$src")
done

rm -rf "$OUT/envoy" "$OUT/google" "$OUT/validate" "$OUT/udpa" "$OUT/xds" "$OUT/grpc"
for src in "${files[@]}"; do
  rel=${src#*/}
  mkdir -p "$OUT/$(dirname "$rel")"
  cp "$DEPS/$src" "$OUT/$rel"
done
# grpc.health.v1 as the gRPC project publishes it (via the grpc-health-check package).
mkdir -p "$OUT/grpc/health/v1"
cp node_modules/grpc-health-check/proto/health/v1/health.proto "$OUT/grpc/health/v1/health.proto"

# The descriptor the sidecar decodes and encodes with (protobufjs JSON, parsed as proto-loader parses).
node scripts/proto-json.mjs "$OUT" "$OUT/ext-authz.json"

# A FileDescriptorSet of everything served, for server reflection: proto-loader's own
# descriptors are synthesised per package (camelCase names, relative type names), which
# strict clients such as grpcurl reject. Needs grpcurl (scripts/install-tools.sh grpcurl).
GRPCURL=${GRPCURL:-.tools/bin/grpcurl}
if [ -x "$GRPCURL" ] || command -v "$GRPCURL" >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  for symbol in envoy.service.auth.v3.Authorization grpc.health.v1.Health; do
    "$GRPCURL" -import-path "$OUT" -proto envoy/service/auth/v3/external_auth.proto -proto grpc/health/v1/health.proto \
      -protoset-out "$tmp/$symbol.protoset" describe "$symbol" >/dev/null
  done
  # Concatenated FileDescriptorSets are one set (repeated field); duplicates are dropped at load.
  cat "$tmp"/envoy.service.auth.v3.Authorization.protoset "$tmp"/grpc.health.v1.Health.protoset > "$OUT/reflection.protoset"
  rm -rf "$tmp"
else
  echo "vendor-protos: $GRPCURL not found; $OUT/reflection.protoset left as it is" >&2
fi

# The npm package ships no LICENSE files for its deps/; all four upstreams are Apache-2.0.
cp node_modules/@grpc/grpc-js/LICENSE "$OUT/LICENSE"
{
  echo "# Vendored .proto files — do not edit; regenerate with scripts/vendor-protos.sh"
  echo
  echo "Copied unmodified from the npm package @grpc/grpc-js-xds@$VERSION (deps/), which"
  echo "vendors these upstream repositories, each licensed under the Apache License 2.0 (LICENSE):"
  echo
  echo "| folder | upstream | copyright |"
  echo "|---|---|---|"
  echo "| envoy/ | github.com/envoyproxy/envoy (api/) | Envoy Project Authors |"
  echo "| google/rpc/ | github.com/googleapis/googleapis | Google LLC |"
  echo "| validate/ | github.com/bufbuild/protoc-gen-validate | Buf Technologies / Lyft |"
  echo "| udpa/, xds/ | github.com/cncf/xds | CNCF xDS API Working Group |"
  echo "| grpc/health/v1/ | github.com/grpc/grpc-proto (npm grpc-health-check) | gRPC authors |"
  echo
  echo "reflection.protoset is the FileDescriptorSet of all of the above plus the google/protobuf"
  echo "types they import, written by grpcurl -protoset-out; the server's reflection serves it."
  echo "ext-authz.json is the same schema as protobufjs JSON (scripts/proto-json.mjs), which the"
  echo "sidecar decodes and encodes with."
  echo
  echo "Files (the transitive import closure of ${ROOTS[*]}):"
  echo
  printf '%s\n' "${files[@]}" | sed 's#^[^/]*/#- #' | sort
} > "$OUT/NOTICE.md"
echo "vendor-protos: ${#files[@]} files from @grpc/grpc-js-xds@$VERSION into $OUT/"
