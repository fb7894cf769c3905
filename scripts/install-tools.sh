#!/usr/bin/env bash
# Installs Tollgate's pinned peer tools into the git-ignored .tools/bin, idempotently.
#
#   scripts/install-tools.sh [opa|opa-envoy-plugin|ghz|grpcurl|jaeger|vegeta|spire|promtool|debian|python|oneread|all]...
#
# No argument installs opa. A tool is skipped when .tools/bin/<tool> exists and
# .tools/bin/<tool>.version holds the pinned version below; delete either to force a
# reinstall. How each tool is obtained on these machines: ../shared/peers/README.md.
#
# Environment:
#   TOLLGATE_OPA_ENVOY_PLUGIN   path to a prebuilt opa-envoy-plugin binary to use instead of
#                               building one (what users of openpolicyagent/opa:latest-envoy have)
set -euo pipefail

OPA_VERSION=v1.22.2
GHZ_VERSION=v0.93.0
GRPCURL_VERSION=v1.9.4
JAEGER_VERSION=v1.76.0
# Paced (open-loop) load generator of the soak benchmark (bench/soak.sh).
VEGETA_VERSION=v12.13.0
# SPIRE server and agent: the SVID issuer of the verified-identity tests.
SPIRE_VERSION=v1.13.3
# Checks and unit-tests the alerting rules in deploy/prometheus/ (test/deploy/prometheus-rules.test.ts).
PROMTOOL_VERSION=v0.316.0
# opa-envoy-plugin is built from an unmodified source tree, not fetched: the Go module proxy
# reachable here answers 403 for it. Pin = the OPA it embeds + the source commit.
OPA_ENVOY_PLUGIN_OPA=1.19.1
OPA_ENVOY_PLUGIN_COMMIT=07a1fd15b3f5b9e9259bd2db9d6658cf6e3e8137
OPA_ENVOY_PLUGIN_VERSION="${OPA_ENVOY_PLUGIN_OPA}-envoy+${OPA_ENVOY_PLUGIN_COMMIT:0:12}"
# iptables and iproute2 are what the test suite needs (transparent-mode e2e in network
# namespaces); python3-venv lets Debian's python3 build .tools/venv; the rest is for bench/.
DEBIAN_PACKAGES=(nginx-light squid wrk iptables iproute2 curl python3 python3-venv redis-server chromium)

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
TOOLS="$REPO/.tools"
BIN="$TOOLS/bin"
OPA_ENVOY_PLUGIN_SRC="$REPO/../shared/peers/opa-envoy-plugin"

# One GOBIN for every tool, independent of the user's GOPATH.
export GOBIN="$BIN"

log() { printf '%s\n' "$*"; }
die() { printf 'install-tools: %s\n' "$*" >&2; exit 1; }

# is_current TOOL VERSION: the binary exists and was installed at VERSION.
is_current() {
  [[ -x "$BIN/$1" && -f "$BIN/$1.version" && "$(<"$BIN/$1.version")" == "$2" ]]
}

# record TOOL VERSION: written last, so an interrupted install is retried next time.
record() {
  printf '%s\n' "$2" >"$BIN/$1.version"
  log "$1: installed $2 ($BIN/$1)"
}

# lock TOOL: serialise concurrent installs of one tool (e.g. tests and a build in parallel).
# Held until exit; taken once per process, since a second flock on a new descriptor of the
# same file would wait for ourselves (`install-tools.sh opa all`).
declare -A LOCKED=()
lock() {
  command -v flock >/dev/null 2>&1 || return 0
  [[ -z "${LOCKED[$1]:-}" ]] || return 0
  local fd
  exec {fd}>"$TOOLS/.lock-$1"
  flock "$fd"
  LOCKED[$1]=$fd
}

# go_install TOOL PACKAGE VERSION [GO_INSTALL_FLAGS...]
go_install() {
  local tool=$1 pkg=$2 version=$3
  shift 3
  lock "$tool"
  if is_current "$tool" "$version"; then
    log "$tool: already present $version"
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "$tool: go is required (go install $pkg@$version)"
  rm -f "$BIN/$tool.version"
  go install "$@" "$pkg@$version"
  record "$tool" "$version"
}

install_opa() { go_install opa github.com/open-policy-agent/opa "$OPA_VERSION"; }
install_ghz() { go_install ghz github.com/bojand/ghz/cmd/ghz "$GHZ_VERSION"; }
install_vegeta() { go_install vegeta github.com/tsenart/vegeta/v12 "$VEGETA_VERSION"; }
install_promtool() { go_install promtool github.com/prometheus/prometheus/cmd/promtool "$PROMTOOL_VERSION"; }
# grpcurl's release builds stamp main.version; without it `grpcurl --version` says "dev build".
install_grpcurl() {
  go_install grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl "$GRPCURL_VERSION" \
    -ldflags "-X main.version=$GRPCURL_VERSION"
}

# link_prebuilt PATH REASON: use an existing opa-envoy-plugin binary as is.
link_prebuilt_opa_envoy_plugin() {
  local target
  target="$(cd "$(dirname "$1")" && pwd -P)/$(basename "$1")"
  [[ -x "$target" ]] || die "opa-envoy-plugin: $1 ($2) is not an executable file"
  local version="prebuilt $target"
  if is_current opa-envoy-plugin "$version"; then
    log "opa-envoy-plugin: already present ($version)"
    return 0
  fi
  rm -f "$BIN/opa-envoy-plugin.version"
  ln -sfn "$target" "$BIN/opa-envoy-plugin"
  printf '%s\n' "$version" >"$BIN/opa-envoy-plugin.version"
  log "opa-envoy-plugin: installed $version via $2 ($("$target" version 2>/dev/null | head -1))"
}

install_opa_envoy_plugin() {
  lock opa-envoy-plugin
  if [[ -n "${TOLLGATE_OPA_ENVOY_PLUGIN:-}" ]]; then
    link_prebuilt_opa_envoy_plugin "$TOLLGATE_OPA_ENVOY_PLUGIN" "TOLLGATE_OPA_ENVOY_PLUGIN"
    return 0
  fi
  if is_current opa-envoy-plugin "$OPA_ENVOY_PLUGIN_VERSION"; then
    log "opa-envoy-plugin: already present $OPA_ENVOY_PLUGIN_VERSION"
    return 0
  fi
  if [[ -f "$OPA_ENVOY_PLUGIN_SRC/go.mod" ]]; then
    command -v go >/dev/null 2>&1 || die "opa-envoy-plugin: go is required to build $OPA_ENVOY_PLUGIN_SRC"
    # The source tree carries no .git, so check the pin by the OPA version it vendors.
    grep -Eq "^[[:space:]]*github.com/open-policy-agent/opa v${OPA_ENVOY_PLUGIN_OPA}\$" \
      "$OPA_ENVOY_PLUGIN_SRC/go.mod" ||
      die "opa-envoy-plugin: $OPA_ENVOY_PLUGIN_SRC no longer embeds OPA v$OPA_ENVOY_PLUGIN_OPA; update the pin in $0"
    rm -f "$BIN/opa-envoy-plugin.version" "$BIN/opa-envoy-plugin"
    # Like its Makefile's -X flags, so `opa-envoy-plugin version` names what was built; the
    # Makefile still names opa/version, which OPA 1.x moved to opa/v1/version.
    local v=github.com/open-policy-agent/opa/v1/version
    (cd "$OPA_ENVOY_PLUGIN_SRC" && go build -buildvcs=false -o "$BIN/opa-envoy-plugin" \
      -ldflags "-X $v.Version=${OPA_ENVOY_PLUGIN_OPA}-envoy -X $v.Vcs=${OPA_ENVOY_PLUGIN_COMMIT}" \
      ./cmd/opa-envoy-plugin)
    record opa-envoy-plugin "$OPA_ENVOY_PLUGIN_VERSION"
    return 0
  fi
  # No source here: keep a prebuilt binary linked earlier, else look on PATH (ignoring
  # .tools/bin itself).
  local installed=""
  [[ -f "$BIN/opa-envoy-plugin.version" ]] && installed="$(<"$BIN/opa-envoy-plugin.version")"
  if [[ "$installed" == "prebuilt "* && -x "$BIN/opa-envoy-plugin" ]]; then
    log "opa-envoy-plugin: already present ($installed)"
    return 0
  fi
  local found
  found="$(PATH="$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$BIN" | paste -sd: -)" \
    command -v opa-envoy-plugin || true)"
  [[ -n "$found" ]] && { link_prebuilt_opa_envoy_plugin "$found" "PATH"; return 0; }
  # Last resort, what works wherever the Go module proxy serves the module: go install of the
  # pinned commit (stamped like the source build above).
  local pkg=github.com/open-policy-agent/opa-envoy-plugin/cmd/opa-envoy-plugin
  local way_out="set TOLLGATE_OPA_ENVOY_PLUGIN to a prebuilt opa-envoy-plugin binary (e.g. from the openpolicyagent/opa:latest-envoy image), put one on PATH, or place its source at $OPA_ENVOY_PLUGIN_SRC"
  command -v go >/dev/null 2>&1 ||
    die "opa-envoy-plugin: no source at $OPA_ENVOY_PLUGIN_SRC, none on PATH, and no go to run 'go install $pkg@$OPA_ENVOY_PLUGIN_COMMIT'; $way_out"
  log "opa-envoy-plugin: no source at $OPA_ENVOY_PLUGIN_SRC and none on PATH; trying go install $pkg@$OPA_ENVOY_PLUGIN_COMMIT"
  rm -f "$BIN/opa-envoy-plugin.version" "$BIN/opa-envoy-plugin"
  local v=github.com/open-policy-agent/opa/v1/version
  if ! go install -ldflags "-X $v.Version=${OPA_ENVOY_PLUGIN_OPA}-envoy -X $v.Vcs=${OPA_ENVOY_PLUGIN_COMMIT}" \
    "$pkg@$OPA_ENVOY_PLUGIN_COMMIT"; then
    die "opa-envoy-plugin: 'go install $pkg@$OPA_ENVOY_PLUGIN_COMMIT' failed (some Go module proxies refuse this module); $way_out"
  fi
  record opa-envoy-plugin "$OPA_ENVOY_PLUGIN_VERSION"
}

# Jaeger's go.mod has a replace directive, so `go install …@version` refuses it: build it from
# a tiny tools module that requires it and repeats the replace.
install_jaeger() {
  lock jaeger
  if is_current jaeger "$JAEGER_VERSION"; then
    log "jaeger: already present $JAEGER_VERSION"
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "jaeger: go is required"
  local src="$TOOLS/src/jaeger"
  rm -rf "$src" "$BIN/jaeger.version"
  mkdir -p "$src"
  cat >"$src/go.mod" <<EOF
module tollgate.local/tools/jaeger

go 1.24

require github.com/jaegertracing/jaeger $JAEGER_VERSION

// Repeated from github.com/jaegertracing/jaeger's own go.mod (replace is not inherited).
replace github.com/Shopify/sarama => github.com/Shopify/sarama v1.33.0
EOF
  cat >"$src/tools.go" <<'EOF'
//go:build tools

// Package tools pins the Jaeger all-in-one binary that Tollgate's e2e tests export to.
package tools

import _ "github.com/jaegertracing/jaeger/cmd/jaeger"
EOF
  # latestVersion is what its Makefile stamps; without it `jaeger version` prints "".
  (cd "$src" && GOFLAGS=-mod=mod go mod tidy &&
    GOFLAGS=-mod=mod go build -o "$BIN/jaeger" \
      -ldflags "-X github.com/jaegertracing/jaeger/internal/version.latestVersion=$JAEGER_VERSION" \
      github.com/jaegertracing/jaeger/cmd/jaeger)
  record jaeger "$JAEGER_VERSION"
}

# SPIRE's server and agent, built from a tiny tools module (`go get -tool`) that pins them,
# so both binaries come from one resolved module graph (its go.sum is the lock).
install_spire() {
  lock spire
  if is_current spire-server "$SPIRE_VERSION" && is_current spire-agent "$SPIRE_VERSION"; then
    log "spire: already present $SPIRE_VERSION"
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "spire: go is required"
  local src="$TOOLS/src/spire"
  rm -rf "$src" "$BIN/spire-server.version" "$BIN/spire-agent.version"
  mkdir -p "$src"
  printf 'module tollgate.local/tools/spire\n\ngo 1.24\n' >"$src/go.mod"
  # As SPIRE's release builds: without the tag, `spire-server --version` says "1.13.3-dev-unk".
  local ldflags="-X github.com/spiffe/spire/pkg/common/version.gittag=${SPIRE_VERSION#v}"
  (cd "$src" &&
    go get -tool "github.com/spiffe/spire/cmd/spire-server@$SPIRE_VERSION" &&
    go get -tool "github.com/spiffe/spire/cmd/spire-agent@$SPIRE_VERSION" &&
    go build -ldflags "$ldflags" -o "$BIN/spire-server" github.com/spiffe/spire/cmd/spire-server &&
    go build -ldflags "$ldflags" -o "$BIN/spire-agent" github.com/spiffe/spire/cmd/spire-agent) ||
    die "spire: building spire-server/spire-agent $SPIRE_VERSION failed"
  record spire-server "$SPIRE_VERSION"
  record spire-agent "$SPIRE_VERSION"
}

# System packages for the proxy peers and load generator; only root can install them.
install_debian() {
  local missing=() pkg
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then
    log "debian: already present ${DEBIAN_PACKAGES[*]}"
    return 0
  fi
  if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    log "debian: skipped (needs root and apt-get); missing: ${missing[*]}"
    return 0
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  log "debian: installed ${missing[*]}"
}

# Python packages from PyPI, in a virtual environment under .tools/venv (Debian's own
# python3 refuses `pip install` outside one: PEP 668 "externally-managed-environment").
# requests and httpx are the agents the TLS-interception tests drive; starlette, uvicorn
# and mcp make the Python tool server of the one-reading suites. scripts/test.sh puts
# .tools/venv/bin first on PATH, so tests that run `python3` get this interpreter.
PYTHON_PACKAGES=(requests==2.34.2 httpx==0.28.1 starlette==1.10.0 uvicorn==0.54.0 mcp==1.30.0)
VENV="$TOOLS/venv"
install_python() {
  lock python
  local version="${PYTHON_PACKAGES[*]}"
  if [[ -x "$VENV/bin/python3" && -f "$VENV/.version" && "$(<"$VENV/.version")" == "$version" ]]; then
    log "python: already present ($VENV: $version)"
    return 0
  fi
  command -v python3 >/dev/null 2>&1 ||
    die "python: python3 is required (Debian: apt-get install -y python3 python3-venv)"
  rm -f "$VENV/.version"
  if [[ ! -x "$VENV/bin/python3" ]]; then
    python3 -m venv "$VENV" ||
      die "python: python3 -m venv failed; on Debian install python3-venv (apt-get install -y python3-venv, or scripts/install-tools.sh debian as root)"
  fi
  "$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check "${PYTHON_PACKAGES[@]}"
  printf '%s\n' "$version" >"$VENV/.version"
  log "python: installed $version into $VENV"
}

# The Go tool servers of the one-reading suites (test/fixtures/oneread/go-*), built from
# their committed modules (the MCP Go SDK comes from the Go module proxy). Rebuilt when
# their sources change: the version is a hash of them.
install_oneread() {
  lock oneread
  command -v go >/dev/null 2>&1 || die "oneread: go is required to build test/fixtures/oneread/go-*"
  local mod name version
  for mod in "$REPO"/test/fixtures/oneread/go-*/; do
    name="oneread-$(basename "$mod")"
    version="$(cat "$mod"go.mod "$mod"*.go $([[ -f "$mod"go.sum ]] && echo "$mod"go.sum) | sha256sum | cut -c1-16)"
    if is_current "$name" "$version"; then
      log "$name: already present $version"
      continue
    fi
    rm -f "$BIN/$name.version"
    (cd "$mod" && go build -buildvcs=false -o "$BIN/$name" .)
    record "$name" "$version"
  done
}

main() {
  (($# > 0)) || set -- opa
  mkdir -p "$BIN"
  local target
  for target in "$@"; do
    case "$target" in
      opa) install_opa ;;
      opa-envoy-plugin) install_opa_envoy_plugin ;;
      ghz) install_ghz ;;
      grpcurl) install_grpcurl ;;
      jaeger) install_jaeger ;;
      vegeta) install_vegeta ;;
      spire) install_spire ;;
      promtool) install_promtool ;;
      debian) install_debian ;;
      python) install_python ;;
      oneread) install_oneread ;;
      all)
        install_opa
        install_opa_envoy_plugin
        install_ghz
        install_grpcurl
        install_jaeger
        install_vegeta
        install_spire
        install_promtool
        install_debian
        install_python
        install_oneread
        ;;
      *) die "unknown tool '$target' (expected opa, opa-envoy-plugin, ghz, grpcurl, jaeger, vegeta, spire, promtool, debian, python, oneread or all)" ;;
    esac
  done
}

# On one line: bash reads scripts as it runs them, so an edit made while an install is in
# progress must not be read after main returns.
main "$@"; exit
