#!/usr/bin/env bash
# Policy CI: the gate a policy pull request passes before its bundle reaches any sidecar.
#
#   policies/ci.sh                      fmt, check, test+coverage, build, sign, verify, replay, publish
#
# Steps (each fails the run):
#   1. opa fmt --list              every .rego file is formatted
#   2. opa check --strict          compiles with strict checks
#   3. opa test --coverage         unit tests pass and line coverage of non-test Rego >= COVERAGE_MIN
#   3b. policy conflicts           the layer against the local layer of a PDP chain (LOCAL_POLICY_DIR):
#                                  fails on conflicts the combining rule overrides and shadowed local rules
#   4. opa build -b -t wasm        the WebAssembly bundle, revision = REVISION
#   5. sign                        --signing-key SIGNING_KEY (RS256/ES256) inside the build: .signatures.json
#   6. verify                      Tollgate's own verifier accepts the signature (tollgate bundle verify)
#   7. replay                      recorded decisions (REPLAY_LOG) against the new bundle; fails when more
#                                  than MAX_FLIPS decisions flip; the report is kept in OUT_DIR
#   8. publish                     atomic copy into PUBLISH_DIR, the directory the bundle server serves
#                                  (sidecars poll it with If-None-Match and hot-swap the new revision)
#
# Environment (all optional):
#   POLICY_DIR      Rego + data.json to build (default: policies)
#   COVERAGE_MIN    minimum line coverage in percent (default 90)
#   REVISION        bundle revision (default: policy-<short git sha>, or policy-<source hash>)
#   SIGNING_KEY     PEM private key; unset: a throwaway key pair is generated in OUT_DIR (demo only)
#   VERIFY_KEY      PEM public key matching SIGNING_KEY (required when SIGNING_KEY is set)
#   SIGNING_ALG     RS256 (default) or ES256
#   REPLAY_LOG      decision log to replay (default: test/replay/fixtures/decisions.jsonl)
#   MAX_FLIPS       allowed flips (default 0: any behaviour change must be acknowledged by raising it)
#   LOCAL_POLICY_DIR  local layer checked for conflicts with POLICY_DIR (default: policies/hybrid/local; "-" skips)
#   LOCAL_DECISION_PATH  its decision path (default: tollgate/local/decision)
#   CHAIN_COMBINE   deny-overrides (default) or first-applicable, as the sidecar's pdp.combine
#   OUT_DIR         build output (default: policies/dist/ci)
#   PUBLISH_DIR     where the signed bundle is published (default: OUT_DIR/publish); "-" skips publishing
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
OPA="$REPO/.tools/bin/opa"
NODE="$REPO/node_modules/.bin/node"
[[ -x "$NODE" ]] || NODE=node
cd "$REPO"

POLICY_DIR="${POLICY_DIR:-policies}"
COVERAGE_MIN="${COVERAGE_MIN:-90}"
SIGNING_ALG="${SIGNING_ALG:-RS256}"
REPLAY_LOG="${REPLAY_LOG:-test/replay/fixtures/decisions.jsonl}"
MAX_FLIPS="${MAX_FLIPS:-0}"
OUT_DIR="${OUT_DIR:-policies/dist/ci}"
LOCAL_POLICY_DIR="${LOCAL_POLICY_DIR:-policies/hybrid/local}"
LOCAL_DECISION_PATH="${LOCAL_DECISION_PATH:-tollgate/local/decision}"
CHAIN_COMBINE="${CHAIN_COMBINE:-deny-overrides}"
PUBLISH_DIR="${PUBLISH_DIR:-$OUT_DIR/publish}"
ENTRYPOINTS=(-e tollgate/authz/decision -e tollgate/authz/allow -e tollgate/authz/response)
IGNORE=(--ignore '*_test.rego' --ignore dist --ignore hybrid --ignore '*.sh' --ignore '*.md' --ignore '*.mjs')

step() { printf '\n== policy ci: %s\n' "$*"; }
die() { printf 'policy ci: %s\n' "$*" >&2; exit 1; }

[[ "$COVERAGE_MIN" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "COVERAGE_MIN must be a number, got '$COVERAGE_MIN'"
[[ "$MAX_FLIPS" =~ ^[0-9]+$ ]] || die "MAX_FLIPS must be a non-negative integer, got '$MAX_FLIPS'"
[[ -x "$OPA" ]] || "$REPO/scripts/install-tools.sh" opa >&2
mkdir -p "$OUT_DIR"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

step "1/8 opa fmt"
unformatted="$("$OPA" fmt --list "$POLICY_DIR" | grep -v '/dist/' || true)"
[[ -z "$unformatted" ]] || die "not opa fmt clean (fix: opa fmt -w $POLICY_DIR):"$'\n'"$unformatted"

step "2/8 opa check --strict"
"$OPA" check --strict "$POLICY_DIR" --ignore dist

step "3/8 opa test --coverage (minimum $COVERAGE_MIN% of non-test lines)"
"$OPA" test "$POLICY_DIR" --ignore dist
"$REPO/scripts/policy-coverage.sh" "$POLICY_DIR" "$COVERAGE_MIN" || die "coverage is below the minimum of $COVERAGE_MIN%"

if [[ "$LOCAL_POLICY_DIR" == "-" ]]; then
  step "3b policy conflicts skipped (LOCAL_POLICY_DIR=-)"
else
  step "3b policy conflicts: $POLICY_DIR (central) against $LOCAL_POLICY_DIR (local), $CHAIN_COMBINE"
  conflict_args=(--central "$POLICY_DIR" --local "$LOCAL_POLICY_DIR" --local-path "$LOCAL_DECISION_PATH" --combine "$CHAIN_COMBINE" --opa "$OPA" --ignore hybrid --ignore cedar)
  [[ -f "$REPLAY_LOG" ]] && conflict_args+=(--inputs "$REPLAY_LOG")
  set +e
  "$NODE" src/cli/main.ts policy conflicts "${conflict_args[@]}" | tee "$OUT_DIR/conflicts.txt"
  conflicts_status=${PIPESTATUS[0]}
  set -e
  case "$conflicts_status" in
    0) ;;
    2) die "policy conflicts: the layers disagree where the combining rule overrides one, or a local rule is shadowed (report: $OUT_DIR/conflicts.txt)" ;;
    *) die "policy conflicts failed (exit $conflicts_status)" ;;
  esac
fi

if [[ -z "${REVISION:-}" ]]; then
  if sha="$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null)"; then REVISION="policy-$sha"; else
    REVISION="policy-$(find "$POLICY_DIR" -path '*/dist' -prune -o -type f \( -name '*.rego' -o -name '*.json' \) ! -name '*_test.rego' -print | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-12)"
  fi
fi

if [[ -z "${SIGNING_KEY:-}" ]]; then
  echo "policy ci: SIGNING_KEY unset: signing with a throwaway key pair (set SIGNING_KEY and VERIFY_KEY in real CI)" >&2
  SIGNING_KEY="$OUT_DIR/throwaway-signing.pem"
  VERIFY_KEY="$OUT_DIR/throwaway-verify.pem"
  "$NODE" -e '
    const { generateKeyPairSync } = require("node:crypto"); const fs = require("node:fs");
    const [alg, priv, pub] = process.argv.slice(1);
    const k = alg.startsWith("ES") ? generateKeyPairSync("ec", { namedCurve: "P-256" }) : generateKeyPairSync("rsa", { modulusLength: 2048 });
    fs.writeFileSync(priv, k.privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    fs.writeFileSync(pub, k.publicKey.export({ type: "spki", format: "pem" }));' "$SIGNING_ALG" "$SIGNING_KEY" "$VERIFY_KEY"
fi
[[ -n "${VERIFY_KEY:-}" ]] || die "VERIFY_KEY (the public key of SIGNING_KEY) is required to verify the signed bundle"

bundle="$OUT_DIR/bundle.tar.gz"
step "4/8 + 5/8 opa build -t wasm, signed $SIGNING_ALG (revision $REVISION)"
# Bundle mode (-b): the directory is the bundle root, so data.json lands at data.* as in the seed build.
"$OPA" build -b -t wasm "${ENTRYPOINTS[@]}" "${IGNORE[@]}" --revision "$REVISION" \
  --signing-key "$SIGNING_KEY" --signing-alg "$SIGNING_ALG" -o "$tmp/bundle.tar.gz" "$POLICY_DIR"
mv -f "$tmp/bundle.tar.gz" "$bundle"
echo "built $bundle"

step "6/8 verify the signature with Tollgate's verifier"
"$NODE" src/cli/bundle.ts verify "$bundle" --key "$VERIFY_KEY" --alg "$SIGNING_ALG"

step "7/8 replay $REPLAY_LOG against $REVISION (max flips $MAX_FLIPS)"
set +e
"$NODE" src/cli/replay.ts --log "$REPLAY_LOG" --bundle "$bundle" --format json --max-flips "$MAX_FLIPS" >"$OUT_DIR/replay.json"
replay_status=$?
"$NODE" src/cli/replay.ts --log "$REPLAY_LOG" --bundle "$bundle" --max-flips "$MAX_FLIPS"
set -e
case "$replay_status" in
  0) ;;
  2) die "replay: more than $MAX_FLIPS recorded decisions would flip (report: $OUT_DIR/replay.json); raise MAX_FLIPS if the change is intended" ;;
  *) die "replay failed (exit $replay_status)" ;;
esac

if [[ "$PUBLISH_DIR" == "-" ]]; then
  step "8/8 publish skipped (PUBLISH_DIR=-)"
else
  step "8/8 publish to $PUBLISH_DIR"
  mkdir -p "$PUBLISH_DIR"
  # Copy then rename inside the served directory: the bundle server never serves half a file.
  cp "$bundle" "$PUBLISH_DIR/.bundle.tar.gz.tmp"
  mv -f "$PUBLISH_DIR/.bundle.tar.gz.tmp" "$PUBLISH_DIR/bundle.tar.gz"
  echo "published $PUBLISH_DIR/bundle.tar.gz (revision $REVISION)"
fi
printf '\npolicy ci: ok (revision %s)\n' "$REVISION"
