#!/usr/bin/env bash
# topo.sh up|down|status|guard <nat|dr|off>
#
#   client ns             director ns                    lan ns             rsN ns
#  eth0 198.51.100.2 <--> cli0 198.51.100.1                                 eth0 192.0.2.1N
#                         lan0 192.0.2.1   <--> p-dir [br0] p-rs1..3 <-->   lo: VIP/32
#
# See README.md for the full picture.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

sysctl_ns() { nsx "$1" sysctl -qw "$2" >/dev/null; }

# Offloads off on both ends of every veth so that what a user-space forwarder
# reads with AF_PACKET is what would be on a wire: full checksums (no
# CHECKSUM_PARTIAL), no GSO/GRO super-frames, and receivers really verify L4
# checksums (veth otherwise marks them CHECKSUM_UNNECESSARY).
no_offload() {
    local ns=$1 dev=$2 f
    for f in rx tx sg tso gso gro lro rx-gro-hw tx-udp-segmentation rx-gro-list rx-udp-gro-forwarding; do
        nsx "$ns" ethtool -K "$dev" "$f" off >/dev/null 2>&1 || true
    done
}

# RPS: pin the receive softirq of an interface to one CPU.  veth delivers via
# netif_rx(), which honours RPS, so this decides which core does the work.
rps() { nsx "$1" sh -c "for q in /sys/class/net/$2/queues/rx-*; do echo $(cpumask "$3") > \$q/rps_cpus; done"; }

ns_base() {
    local ns=$1
    ip netns add "$ns"
    nsx "$ns" ip link set lo up
    sysctl_ns "$ns" net.ipv6.conf.all.disable_ipv6=1
    sysctl_ns "$ns" net.ipv6.conf.default.disable_ipv6=1
    sysctl_ns "$ns" net.ipv4.conf.all.rp_filter=0
    sysctl_ns "$ns" net.ipv4.conf.default.rp_filter=0
}

up() {
    if ip netns list | grep -qw "^$NS_DIR"; then
        log "topology already up (namespace $NS_DIR exists); run '$0 down' first"; exit 1
    fi
    mkdir -p "$STATE_DIR"
    local ns i
    for ns in "${ALL_NS[@]}"; do ns_base "$ns"; done

    # --- client <-> director point-to-point link ---
    ip link add "$CLIENT_IF" netns "$NS_CLIENT" address "$CLIENT_MAC" type veth \
        peer name "$DIR_CLI_IF" netns "$NS_DIR" address "$DIR_CLI_MAC"
    nsx "$NS_CLIENT" ip addr add "$CLIENT_IP/24" dev "$CLIENT_IF"
    nsx "$NS_DIR"    ip addr add "$DIR_CLI_IP/24" dev "$DIR_CLI_IF"

    # --- lan: one bridge = one clean L2 segment for director + all RS (DR) ---
    nsx "$NS_LAN" ip link add "$LAN_BR" type bridge stp_state 0 forward_delay 0 \
        nf_call_iptables 0 nf_call_arptables 0 mcast_snooping 0
    ip link add "$DIR_LAN_IF" netns "$NS_DIR" address "$DIR_LAN_MAC" type veth \
        peer name p-dir netns "$NS_LAN"
    nsx "$NS_DIR" ip addr add "$DIR_LAN_IP/24" dev "$DIR_LAN_IF"
    nsx "$NS_LAN" ip link set p-dir master "$LAN_BR"
    for i in 0 1 2; do
        ns=${NS_RS[$i]}
        ip link add "$RS_IF" netns "$ns" address "${RS_MAC[$i]}" type veth \
            peer name "p-rs$((i+1))" netns "$NS_LAN"
        nsx "$NS_LAN" ip link set "p-rs$((i+1))" master "$LAN_BR"
        nsx "$ns" ip addr add "${RS_IP[$i]}/24" dev "$RS_IF"
        # DR: VIP on lo, never answer/announce ARP for it
        nsx "$ns" ip addr add "$VIP/32" dev lo
        sysctl_ns "$ns" net.ipv4.conf.all.arp_ignore=1
        sysctl_ns "$ns" net.ipv4.conf.all.arp_announce=2
        sysctl_ns "$ns" "net.ipv4.conf.$RS_IF.arp_ignore=1"
        sysctl_ns "$ns" "net.ipv4.conf.$RS_IF.arp_announce=2"
        # NAT (and DR return path): the director is the RS gateway.  No default
        # route anywhere: only the client prefix is reachable.
        nsx "$ns" ip link set "$RS_IF" up
        nsx "$ns" ip route add 198.51.100.0/24 via "$DIR_LAN_IP"
    done

    # --- director: a router between the two sides ---
    sysctl_ns "$NS_DIR" net.ipv4.ip_forward=1
    sysctl_ns "$NS_DIR" net.ipv4.conf.all.send_redirects=0
    sysctl_ns "$NS_DIR" net.ipv4.conf.default.send_redirects=0
    sysctl_ns "$NS_DIR" net.ipv4.ip_local_port_range="1024 65535"
    sysctl_ns "$NS_DIR" net.ipv4.tcp_tw_reuse=1
    # --- client: many short connections ---
    sysctl_ns "$NS_CLIENT" net.ipv4.ip_local_port_range="1024 65535"
    sysctl_ns "$NS_CLIENT" net.ipv4.tcp_tw_reuse=1
    for ns in "${NS_RS[@]}"; do sysctl_ns "$ns" net.core.somaxconn=8192; done

    # links up, offloads off, static neighbours (no ARP in the measurements)
    nsx "$NS_LAN" ip link set "$LAN_BR" up
    for dev in p-dir p-rs1 p-rs2 p-rs3; do nsx "$NS_LAN" ip link set "$dev" up; done
    nsx "$NS_CLIENT" ip link set "$CLIENT_IF" up
    nsx "$NS_DIR" ip link set "$DIR_CLI_IF" up
    nsx "$NS_DIR" ip link set "$DIR_LAN_IF" up
    nsx "$NS_CLIENT" ip route add "$VIP/32" via "$DIR_CLI_IP"
    nsx "$NS_CLIENT" ip route add 192.0.2.0/24 via "$DIR_CLI_IP"

    no_offload "$NS_CLIENT" "$CLIENT_IF"
    no_offload "$NS_DIR" "$DIR_CLI_IF"; no_offload "$NS_DIR" "$DIR_LAN_IF"
    for dev in p-dir p-rs1 p-rs2 p-rs3 "$LAN_BR"; do no_offload "$NS_LAN" "$dev"; done
    for ns in "${NS_RS[@]}"; do no_offload "$ns" "$RS_IF"; done

    nsx "$NS_CLIENT" ip neigh replace "$DIR_CLI_IP" lladdr "$DIR_CLI_MAC" dev "$CLIENT_IF" nud permanent
    nsx "$NS_DIR" ip neigh replace "$CLIENT_IP" lladdr "$CLIENT_MAC" dev "$DIR_CLI_IF" nud permanent
    for i in 0 1 2; do
        nsx "$NS_DIR" ip neigh replace "${RS_IP[$i]}" lladdr "${RS_MAC[$i]}" dev "$DIR_LAN_IF" nud permanent
        nsx "${NS_RS[$i]}" ip neigh replace "$DIR_LAN_IP" lladdr "$DIR_LAN_MAC" dev "$RS_IF" nud permanent
        nsx "$NS_LAN" bridge fdb replace "${RS_MAC[$i]}" dev "p-rs$((i+1))" master static
    done
    nsx "$NS_LAN" bridge fdb replace "$DIR_LAN_MAC" dev p-dir master static

    # CPU placement: the director namespace's receive work on DIR_CPU, every
    # other receive (client, bridge ports, RS) on GEN_CPU.
    rps "$NS_DIR" "$DIR_CLI_IF" "$DIR_CPU"; rps "$NS_DIR" "$DIR_LAN_IF" "$DIR_CPU"
    rps "$NS_CLIENT" "$CLIENT_IF" "$GEN_CPU"
    for dev in p-dir p-rs1 p-rs2 p-rs3; do rps "$NS_LAN" "$dev" "$GEN_CPU"; done
    for ns in "${NS_RS[@]}"; do rps "$ns" "$RS_IF" "$RS_CPU"; done

    # RS-side UDP sink: count and drop at ingress (cheapest possible sink, per-RS
    # counters show the spread).  Works for DR (dst=VIP) and NAT (dst=RS IP).
    for ns in "${NS_RS[@]}"; do
        nsx "$ns" nft -f - <<NFT
table netdev sink {
    counter udp_rx { }
    chain ingress {
        type filter hook ingress device "$RS_IF" priority 0; policy accept;
        udp dport $UDP_PORT counter name udp_rx drop
    }
}
NFT
    done

    write_env
    log "topology up; description in $STATE_DIR/topo.env"
}

write_env() {
    local f=$STATE_DIR/topo.env
    {
        echo "# generated by bench/topo.sh up -- source it from a Peer C wrapper"
        echo "NS_CLIENT=$NS_CLIENT NS_DIR=$NS_DIR NS_LAN=$NS_LAN"
        echo "NS_RS=\"${NS_RS[*]}\""
        echo "VIP=$VIP HTTP_PORT=$HTTP_PORT UDP_PORT=$UDP_PORT"
        echo "CLIENT_IP=$CLIENT_IP CLIENT_MAC=$CLIENT_MAC"
        echo "DIR_CLI_IF=$DIR_CLI_IF DIR_CLI_IP=$DIR_CLI_IP DIR_CLI_MAC=$DIR_CLI_MAC DIR_CLI_IFINDEX=$(nsx "$NS_DIR" cat /sys/class/net/$DIR_CLI_IF/ifindex)"
        echo "DIR_LAN_IF=$DIR_LAN_IF DIR_LAN_IP=$DIR_LAN_IP DIR_LAN_MAC=$DIR_LAN_MAC DIR_LAN_IFINDEX=$(nsx "$NS_DIR" cat /sys/class/net/$DIR_LAN_IF/ifindex)"
        echo "RS_IP=\"${RS_IP[*]}\""
        echo "RS_MAC=\"${RS_MAC[*]}\""
        echo "GEN_CPU=$GEN_CPU RS_CPU=$RS_CPU DIR_CPU=$DIR_CPU"
        echo "STATE_DIR=$STATE_DIR"
    } > "$f"
}

# guard nat|dr|off -- for a user-space director (Peer C).  AF_PACKET sockets
# bound to ETH_P_ALL see a frame *before* the netdev ingress hook, so dropping
# there keeps the director kernel from also routing/answering the traffic the
# user-space program handles, while the program still receives it.
#   dr : drop client->VIP at cli0 ingress (kernel still routes RS replies,
#        src=VIP, back to the client: that is the "router" of a DR setup)
#   nat: additionally drop RS->client replies at lan0 ingress (the program
#        must un-NAT them itself)
guard() {
    local mode=$1
    nsx "$NS_DIR" nft delete table netdev userspace_guard 2>/dev/null || true
    [ "$mode" = off ] && return 0
    local extra="" rs_set
    rs_set=$(IFS=,; echo "${RS_IP[*]}")
    if [ "$mode" = nat ]; then
        extra="chain lan_in { type filter hook ingress device \"$DIR_LAN_IF\" priority 0; policy accept; ip saddr { $rs_set } ip daddr 198.51.100.0/24 counter drop; }"
    fi
    nsx "$NS_DIR" nft -f - <<NFT
table netdev userspace_guard {
    chain cli_in {
        type filter hook ingress device "$DIR_CLI_IF" priority 0; policy accept;
        ip daddr $VIP counter drop
    }
    $extra
}
NFT
}

down() {
    local ns pidf
    # stop anything the harness started (by recorded PID only)
    for pidf in "$STATE_DIR"/*.pid; do
        [ -e "$pidf" ] || continue
        kill "$(cat "$pidf")" 2>/dev/null || true
        rm -f "$pidf"
    done
    for ns in "${ALL_NS[@]}"; do
        # anything still running inside our own namespaces was started by us
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    done
    sleep 0.3
    for ns in "${ALL_NS[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -f "$STATE_DIR/topo.env"
    log "topology down"
}

status() {
    local ns
    for ns in "${ALL_NS[@]}"; do
        echo "== $ns"; nsx "$ns" ip -br addr 2>/dev/null | grep -v '^lo ' || echo "(absent)"
    done
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    guard) guard "${2:?nat|dr|off}" ;;
    *) echo "usage: $0 up|down|status|guard <nat|dr|off>" >&2; exit 2 ;;
esac
