#!/usr/bin/env bash
# run-peers.sh -- topology up, every peer x every test x REPS runs, one table,
# topology down.  Environment knobs (defaults in brackets):
#   PEERS     [route nft-nat nft-dr haproxy lvs-dr-afpacket lvs-dr-afxdp lvs-nat-afpacket lvs-nat-afxdp]
#             (+ peer-c when PEER_C_CMD is set); the lvs-* peers need
#             `cargo build --release --example director` first (or LVS_DIRECTOR=path)
#   TESTS     [pps cps rps]       REPS [3]       DURATION [10] seconds per run
#   WRK_CONNS [64]  WRK_THREADS [1]   GEN_CPU [0]  RS_CPU [=GEN_CPU]  DIR_CPU [1]
#   PEER_C_CMD / PEER_C_MODE (nat|dr) / PEER_C_READY -- see README.md
#   BENCH_OUT [/tmp/lb-bench-<timestamp>] -- raw RESULT lines, wrk logs, table
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

TESTS=${TESTS:-pps cps rps}
REPS=${REPS:-3}
export DURATION=${DURATION:-10}
if [ -z "${PEERS:-}" ]; then
    PEERS="route nft-nat nft-dr haproxy lvs-dr-afpacket lvs-dr-afxdp lvs-nat-afpacket lvs-nat-afxdp"
    [ -n "${PEER_C_CMD:-}" ] && PEERS+=" peer-c"
fi
OUT=${BENCH_OUT:-/tmp/lb-bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RAW=$OUT/results.raw
: > "$RAW"
START=$(date +%s)

CURRENT_PEER=""
cleanup() {
    set +e
    [ -n "$CURRENT_PEER" ] && "$HERE/peers.sh" "$CURRENT_PEER" off >/dev/null 2>&1
    "$HERE/servers.sh" stop >/dev/null 2>&1
    "$HERE/topo.sh" down >/dev/null 2>&1
    cp "$STATE_DIR"/wrk-*.log "$STATE_DIR"/peer-c.log "$STATE_DIR"/lvs-*.log "$OUT"/ 2>/dev/null
    rm -f "$STATE_DIR"/wrk-*.log
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "other busy processes on this machine right now (they perturb the numbers):"
ps -eo pid,psr,pcpu,comm --sort=-pcpu | awk 'NR>1 && $3>5 {print "    " $0}' >&2 || true

"$HERE/topo.sh" up
"$HERE/servers.sh" start
rm -f "$STATE_DIR"/wrk-*.log

target_of() { [ "$1" = route ] && echo "${RS_IP[0]}" || echo "$VIP"; }
label_of() { [ "$1" = peer-c ] && echo "peer-c-${PEER_C_MODE:-dr}" || echo "$1"; }

# one request per RS expected: proves the peer balances before measuring it
sanity() {
    local target=$1 seen=""
    for _ in 1 2 3 4 5 6 7 8 9; do
        seen+="$(nsx "$NS_CLIENT" curl -s -m 2 -H 'Connection: close' "http://$target:$HTTP_PORT/" 2>/dev/null | awk '{print $3}') "
    done
    echo "$seen" | tr ' ' '\n' | sort | uniq -c | awk 'NF==2 {printf "%s:%s ", $2, $1}'
}

for peer in $PEERS; do
    label=$(label_of "$peer"); target=$(target_of "$peer")
    log "=== peer $label (target $target)"
    CURRENT_PEER=$peer
    "$HERE/peers.sh" "$peer" on
    log "sanity (9 requests): $(sanity "$target")"
    for t in $TESTS; do
        if [ "$t" = pps ] && [ "$peer" = haproxy ]; then
            echo "RESULT pps $label skipped=tcp-proxy-no-udp" >> "$RAW"; continue
        fi
        for r in $(seq "$REPS"); do
            line=$("$HERE/measure.sh" "$t" "$target" "$label")
            log "  run $r: ${line#RESULT }"
            echo "$line" >> "$RAW"
            sleep 1
        done
    done
    "$HERE/peers.sh" "$peer" off
    CURRENT_PEER=""
done

ELAPSED=$(( $(date +%s) - START ))
python3 "$HERE/table.py" "$RAW" "$REPS" "$DURATION" "$GEN_CPU" "$RS_CPU" "$DIR_CPU" "$ELAPSED" | tee "$OUT/table.txt"
log "raw results and wrk logs in $OUT"
