#!/usr/bin/env bash
# peers.sh <peer> on|off   -- configure one load balancer in the director ns.
#
#   route       reference: no load balancer, kernel routing straight to rs1
#               (measures the topology itself; clients target rs1's address)
#   nft-nat     Peer A (NAT): nftables DNAT, numgen inc mod 3 (round robin),
#               conntrack un-NATs replies on the way back
#   nft-dr      Peer A (DR-like): netdev ingress on cli0, jhash(5-tuple) mod 3
#               -> RS MAC, 'fwd to lan0'; RS answer from VIP on lo, replies
#               routed back by the director namespace's kernel
#   haproxy     Peer B: HAProxy 2.6, mode tcp, roundrobin, 1 thread on DIR_CPU
#               (a proxy: the RS see 192.0.2.1 as client; no UDP)
#   peer-c      Peer C (our director): runs "$PEER_C_CMD" in the director ns,
#               pinned to DIR_CPU, after 'topo.sh guard $PEER_C_MODE'
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

RS_SET="${RS_IP[0]}, ${RS_IP[1]}, ${RS_IP[2]}"

nft_nat() {
    case $1 in
    on) nsx "$NS_DIR" nft -f - <<NFT
table ip lb_nat {
    chain pre {
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr $VIP meta l4proto { tcp, udp } th dport { $HTTP_PORT, $UDP_PORT } \
            dnat to numgen inc mod 3 map { 0 : ${RS_IP[0]}, 1 : ${RS_IP[1]}, 2 : ${RS_IP[2]} }
    }
    chain post {
        type nat hook postrouting priority srcnat; policy accept;
    }
}
NFT
    ;;
    off) nsx "$NS_DIR" nft delete table ip lb_nat 2>/dev/null || true
         # drop leftover (TIME_WAIT) entries so the next peer starts clean
         nsx "$NS_DIR" conntrack -F >/dev/null 2>&1 || true ;;
    esac
}

nft_dr() {
    case $1 in
    on) nsx "$NS_DIR" nft -f - <<NFT
table netdev lb_dr {
    chain cli_in {
        type filter hook ingress device "$DIR_CLI_IF" priority 0; policy accept;
        ip daddr $VIP meta l4proto { tcp, udp } th dport { $HTTP_PORT, $UDP_PORT } \
            ether saddr set $DIR_LAN_MAC \
            ether daddr set jhash ip saddr . ip daddr . meta l4proto . th sport . th dport mod 3 seed 0x5eed \
                map { 0 : ${RS_MAC[0]}, 1 : ${RS_MAC[1]}, 2 : ${RS_MAC[2]} } \
            fwd to "$DIR_LAN_IF"
    }
}
NFT
    ;;
    off) nsx "$NS_DIR" nft delete table netdev lb_dr 2>/dev/null || true ;;
    esac
}

haproxy_peer() {
    local d=$STATE_DIR/haproxy
    case $1 in
    on)
        mkdir -p "$d"
        cat > "$d/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 8000
    tune.bufsize 16384
defaults
    mode tcp
    option dontlognull
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe_vip
    bind $VIP:$HTTP_PORT backlog 8192
    maxconn 8000
    default_backend be_rs
backend be_rs
    balance roundrobin
    server rs1 ${RS_IP[0]}:$HTTP_PORT
    server rs2 ${RS_IP[1]}:$HTTP_PORT
    server rs3 ${RS_IP[2]}:$HTTP_PORT
CFG
        nsx "$NS_DIR" ip addr add "$VIP/32" dev lo
        nsx "$NS_DIR" taskset -c "$DIR_CPU" haproxy -D -f "$d/haproxy.cfg" -p "$d/haproxy.pid"
        sleep 0.3; [ -s "$d/haproxy.pid" ] || { log "haproxy did not start"; exit 1; }
        cp "$d/haproxy.pid" "$STATE_DIR/haproxy.pid"
        ;;
    off)
        if [ -s "$d/haproxy.pid" ]; then
            local pid; pid=$(cat "$d/haproxy.pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            rm -f "$d/haproxy.pid" "$STATE_DIR/haproxy.pid"
        fi
        nsx "$NS_DIR" ip addr del "$VIP/32" dev lo 2>/dev/null || true
        ;;
    esac
}

# ---- Peer C hook ---------------------------------------------------------
# PEER_C_CMD   command line, run as:  ip netns exec director taskset -c $DIR_CPU sh -c "$PEER_C_CMD"
#              with $STATE_DIR/topo.env sourced (so it can use $DIR_CLI_IF, $RS_MAC, ...)
# PEER_C_MODE  nat|dr  -- selects the kernel guard (topo.sh guard) and tells
#              the harness where clients aim (always the VIP)
# PEER_C_READY optional shell test (run on the host) that succeeds when ready;
#              default: sleep 1
peer_c() {
    case $1 in
    on)
        : "${PEER_C_CMD:?set PEER_C_CMD to run Peer C}"
        "$HERE/topo.sh" guard "${PEER_C_MODE:-dr}"
        # A simple command, not the nsx function: run in the background, a function would stay
        # a shell around the command, and $! would be that shell's, not Peer C's.
        ip netns exec "$NS_DIR" taskset -c "$DIR_CPU" sh -c "set -a; . '$STATE_DIR/topo.env'; set +a; exec $PEER_C_CMD" \
            > "$STATE_DIR/peer-c.log" 2>&1 &
        echo $! > "$STATE_DIR/peer-c.pid"
        if [ -n "${PEER_C_READY:-}" ]; then
            for _ in $(seq 100); do sh -c "$PEER_C_READY" && break; sleep 0.1; done
        else
            sleep 1
        fi
        kill -0 "$(cat "$STATE_DIR/peer-c.pid")" || { log "Peer C exited early; see $STATE_DIR/peer-c.log"; exit 1; }
        ;;
    off)
        if [ -s "$STATE_DIR/peer-c.pid" ]; then
            local pid; pid=$(cat "$STATE_DIR/peer-c.pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
            rm -f "$STATE_DIR/peer-c.pid"
        fi
        "$HERE/topo.sh" guard off
        ;;
    esac
}

case "${1:-}" in
    route) : ;;   # nothing to configure: the director already routes
    nft-nat) nft_nat "${2:?on|off}" ;;
    nft-dr) nft_dr "${2:?on|off}" ;;
    haproxy) haproxy_peer "${2:?on|off}" ;;
    peer-c) peer_c "${2:?on|off}" ;;
    # lvs-<dr|nat>-<afpacket|afxdp>: examples/director as peer C (bench/lvs-peer.sh), ready
    # once its control socket exists.
    lvs-dr-afpacket|lvs-dr-afxdp|lvs-nat-afpacket|lvs-nat-afxdp)
        rest=${1#lvs-}
        PEER_C_MODE=${rest%%-*}
        PEER_C_CMD="$HERE/lvs-peer.sh $PEER_C_MODE ${rest#*-}"
        PEER_C_READY="test -S $STATE_DIR/lvs.sock"
        rm -f "$STATE_DIR/lvs.sock"
        peer_c "${2:?on|off}"
        [ "$2" = off ] && cp "$STATE_DIR/peer-c.log" "$STATE_DIR/$1.log" 2>/dev/null
        : ;;
    *) echo "usage: $0 route|nft-nat|nft-dr|haproxy|peer-c|lvs-<dr|nat>-<afpacket|afxdp> on|off" >&2; exit 2 ;;
esac
