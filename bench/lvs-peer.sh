#!/bin/sh
# lvs-peer.sh MODE BACKEND -- examples/director as peer C: runs in the director namespace with
# topo.env's variables exported (peers.sh starts it), on cli0 (port 0) and lan0 (port 1),
# services tcp VIP:HTTP_PORT and udp VIP:UDP_PORT with rr over the three RS by DR (-g) or NAT
# (-m), static next hops from topo.env, on BACKEND (afpacket or afxdp).
set -eu
mode=$1 backend=$2
bin=${LVS_DIRECTOR:-$(dirname "$0")/../target/release/examples/director}
case $mode in dr) fwd=-g ;; nat) fwd=-m ;; *) echo "mode: dr or nat" >&2; exit 2 ;; esac
rules=$STATE_DIR/rules-$mode.txt
{
    for svc in "-t $VIP:$HTTP_PORT" "-u $VIP:$UDP_PORT"; do
        echo "-A $svc -s rr"
        port=${svc##*:}
        for ip in $RS_IP; do echo "-a $svc -r $ip:$port $fwd -w 1"; done
    done
} > "$rules"
set -- --rules "$rules" --port "$DIR_CLI_IF" --port "$DIR_LAN_IF" --backend "$backend" \
    --control "$STATE_DIR/lvs.sock" --gateway "$CLIENT_MAC@$DIR_CLI_IF" \
    --neigh "$CLIENT_IP=$CLIENT_MAC@$DIR_CLI_IF"
i=1
for ip in $RS_IP; do
    mac=$(echo "$RS_MAC" | cut -d' ' -f$i)
    set -- "$@" --neigh "$ip=$mac@$DIR_LAN_IF"
    i=$((i + 1))
done
exec "$bin" "$@"
