#!/usr/bin/env bash
# Installs or removes the iptables rules that send a pod's (or a network namespace's)
# outbound TCP to Tollgate's transparent listener, as Istio's init container does:
# nat OUTPUT → TOLLGATE_OUTPUT, which RETURNs for Tollgate's own uid (so its upstream
# calls are not looped back), loopback, and the excluded ports (admin, proxy, PDP),
# and REDIRECTs the captured destination ports to the transparent listener.
# The Kubernetes init container (deploy/kubernetes) and the e2e test run this script.
#
# Usage: iptables-redirect.sh install|remove|show [options]
#   --proxy-port N        transparent listener port (default $TOLLGATE_TRANSPARENT_PORT or 15002)
#   --uid N               uid Tollgate runs as, never redirected (default $TOLLGATE_UID or 1337)
#   --ports LIST          destination ports to capture, comma-separated, or "*" for all TCP
#                         (default $TOLLGATE_CAPTURE_PORTS or 80,443)
#   --exclude-ports LIST  destination ports never captured (default $TOLLGATE_EXCLUDE_PORTS
#                         or 15000,15001,15002,9191: admin, proxy, transparent, ext_authz)
#   --exclude-cidrs LIST  destination CIDRs never captured (default $TOLLGATE_EXCLUDE_CIDRS or none)
#   --ipv6 reject|off     IPv6: the transparent listener is IPv4-only, so by default the
#                         captured ports are REJECTed for IPv6 (fail closed: an agent cannot
#                         bypass Tollgate over a v6 route); "off" leaves IPv6 alone
#                         (default $TOLLGATE_IPV6 or reject; skipped when ip6tables is absent)
# Needs NET_ADMIN (root in the namespace). Idempotent: install removes old rules first.
set -euo pipefail

action=${1:-}
shift || true
proxy_port=${TOLLGATE_TRANSPARENT_PORT:-15002}
uid=${TOLLGATE_UID:-1337}
ports=${TOLLGATE_CAPTURE_PORTS:-80,443}
exclude_ports=${TOLLGATE_EXCLUDE_PORTS:-15000,15001,15002,9191}
exclude_cidrs=${TOLLGATE_EXCLUDE_CIDRS:-}
ipv6=${TOLLGATE_IPV6:-reject}
while [ $# -gt 0 ]; do
  case "$1" in
    --proxy-port) proxy_port=$2; shift 2 ;;
    --uid) uid=$2; shift 2 ;;
    --ports) ports=$2; shift 2 ;;
    --exclude-ports) exclude_ports=$2; shift 2 ;;
    --exclude-cidrs) exclude_cidrs=$2; shift 2 ;;
    --ipv6) ipv6=$2; shift 2 ;;
    *) echo "iptables-redirect: unknown option $1" >&2; exit 2 ;;
  esac
done

IPT=${IPTABLES:-iptables}
IPT6=${IP6TABLES:-ip6tables}
have_ip6() { command -v "$IPT6" >/dev/null 2>&1 && $IPT6 -t filter -S >/dev/null 2>&1; }

remove() {
  while $IPT -t nat -D OUTPUT -p tcp -j TOLLGATE_OUTPUT 2>/dev/null; do :; done
  for chain in TOLLGATE_OUTPUT TOLLGATE_REDIRECT; do
    $IPT -t nat -F "$chain" 2>/dev/null || true
    $IPT -t nat -X "$chain" 2>/dev/null || true
  done
  if have_ip6; then
    while $IPT6 -t filter -D OUTPUT -p tcp -j TOLLGATE_OUTPUT6 2>/dev/null; do :; done
    $IPT6 -t filter -F TOLLGATE_OUTPUT6 2>/dev/null || true
    $IPT6 -t filter -X TOLLGATE_OUTPUT6 2>/dev/null || true
  fi
}

# IPv6: refuse (TCP reset) what IPv4 would have redirected, except Tollgate and loopback.
install_ipv6_reject() {
  $IPT6 -t filter -N TOLLGATE_OUTPUT6
  $IPT6 -t filter -A TOLLGATE_OUTPUT6 -m owner --uid-owner "$uid" -j RETURN
  $IPT6 -t filter -A TOLLGATE_OUTPUT6 -o lo -j RETURN
  if [ "$ports" = "*" ]; then
    $IPT6 -t filter -A TOLLGATE_OUTPUT6 -p tcp -j REJECT --reject-with tcp-reset
  else
    $IPT6 -t filter -A TOLLGATE_OUTPUT6 -p tcp -m multiport --dports "$ports" -j REJECT --reject-with tcp-reset
  fi
  $IPT6 -t filter -A OUTPUT -p tcp -j TOLLGATE_OUTPUT6
}

install() {
  [[ "$proxy_port" =~ ^[0-9]+$ ]] || { echo "iptables-redirect: bad --proxy-port $proxy_port" >&2; exit 2; }
  [[ "$uid" =~ ^[0-9]+$ ]] || { echo "iptables-redirect: bad --uid $uid" >&2; exit 2; }
  remove
  $IPT -t nat -N TOLLGATE_REDIRECT
  $IPT -t nat -A TOLLGATE_REDIRECT -p tcp -j REDIRECT --to-ports "$proxy_port"
  $IPT -t nat -N TOLLGATE_OUTPUT
  # Tollgate's own connections (its upstream calls) leave untouched.
  $IPT -t nat -A TOLLGATE_OUTPUT -m owner --uid-owner "$uid" -j RETURN
  # Loopback: the agent talking to Tollgate's explicit proxy, admin, or itself.
  $IPT -t nat -A TOLLGATE_OUTPUT -o lo -j RETURN
  $IPT -t nat -A TOLLGATE_OUTPUT -d 127.0.0.0/8 -j RETURN
  local p c
  IFS=, read -r -a list <<<"$exclude_ports"
  for p in "${list[@]}"; do [ -n "$p" ] && $IPT -t nat -A TOLLGATE_OUTPUT -p tcp --dport "$p" -j RETURN; done
  IFS=, read -r -a list <<<"$exclude_cidrs"
  for c in "${list[@]}"; do [ -n "$c" ] && $IPT -t nat -A TOLLGATE_OUTPUT -d "$c" -j RETURN; done
  if [ "$ports" = "*" ]; then
    $IPT -t nat -A TOLLGATE_OUTPUT -p tcp -j TOLLGATE_REDIRECT
  else
    $IPT -t nat -A TOLLGATE_OUTPUT -p tcp -m multiport --dports "$ports" -j TOLLGATE_REDIRECT
  fi
  $IPT -t nat -A OUTPUT -p tcp -j TOLLGATE_OUTPUT
  case "$ipv6" in
    reject) if have_ip6; then install_ipv6_reject; else echo "iptables-redirect: no usable ip6tables: IPv6 left alone" >&2; fi ;;
    off) ;;
    *) echo "iptables-redirect: bad --ipv6 $ipv6 (reject|off)" >&2; exit 2 ;;
  esac
}

case "$action" in
  install) install; echo "iptables-redirect: tcp ports ${ports} -> 127.0.0.1:${proxy_port} (uid ${uid} and ports ${exclude_ports} excluded)" ;;
  remove) remove; echo "iptables-redirect: rules removed" ;;
  show) { $IPT -t nat -S; if have_ip6; then $IPT6 -t filter -S; fi; } | grep -E 'TOLLGATE' || true ;;
  *) echo "usage: iptables-redirect.sh install|remove|show [--proxy-port N] [--uid N] [--ports 80,443|*] [--exclude-ports LIST] [--exclude-cidrs LIST] [--ipv6 reject|off]" >&2; exit 2 ;;
esac
