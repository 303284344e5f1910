#!/bin/bash
# Whole-server ingest on the embedded store, as in docs/performance.md
# (issue 2): `peba serve` on a fresh data directory with the rate limits
# off, loaded by `peba bench ingest -clients 8 -batch 100` for DURATION.
#
#   go build -o /tmp/peba ./cmd/peba
#   scripts/bench-ingest.sh /tmp/peba NAME [DURATION] [serve flags...]
#
# LOADGEN (default: the binary under test) runs the load, so that two
# binaries are compared under the same load generator. The server listens
# on 127.0.0.1:19922. It prints one Markdown table row:
#   | NAME | duration | alerts/s | POST p99 | peak RSS | alerts accepted | 503s | server CPU per alert | time |
# Peak RSS is sampled from /proc every 0.2 s while the load runs; the peak
# of the shutdown that follows (the store's final checkpoint) is given after
# it in brackets. CPU per alert is the server's
# user+system time over the run divided by the alerts it accepted. Compare
# binaries in interleaved runs: on a shared 2-CPU machine single runs vary
# by 10% and more.
set -u
BIN=$1
NAME=$2
DUR=${3:-60s}
shift $(( $# < 3 ? $# : 3 ))
LOADGEN=${LOADGEN:-$BIN}
ADDR=127.0.0.1:19922
D=$(mktemp -d)
trap 'kill ${PID:-} ${SAMP:-} 2>/dev/null; rm -rf "$D"' EXIT
"$BIN" serve -datadir "$D/data" -bindhost $ADDR -ratelimit_address 0 -ratelimit_sensor 0 "$@" >"$D/serve.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -sf http://$ADDR/heartbeat >/dev/null && break; sleep 0.1; done
( while kill -0 $PID 2>/dev/null; do awk '/VmRSS/{print $2}' /proc/$PID/status 2>/dev/null; sleep 0.2; done ) >"$D/rss" &
SAMP=$!
C0=$(awk '{print $14+$15}' /proc/$PID/stat)
"$LOADGEN" bench ingest -clients 8 -duration "$DUR" -url http://$ADDR/ews-0.1/alert/postSimpleMessage >"$D/bench.out" 2>&1
C1=$(awk '{print $14+$15}' /proc/$PID/stat)
RUNLINES=$(wc -l <"$D/rss")
ACC=$(curl -s http://$ADDR/metrics | awk '/^peba_ews_alerts_total\{result="accepted"\}/{printf "%d", $2}')
kill $PID; wait $PID 2>/dev/null
kill $SAMP 2>/dev/null
PEAK=$(head -n "$RUNLINES" "$D/rss" | sort -n | tail -1)
DOWN=$(tail -n +"$((RUNLINES + 1))" "$D/rss" | sort -n | tail -1)
RATE=$(grep -o 'alerts/s=[0-9]*' "$D/bench.out" | cut -d= -f2)
P99=$(grep -o 'p99=[^ ]*' "$D/bench.out" | cut -d= -f2)
FAIL=$(grep -o 'failures=[0-9]*' "$D/bench.out" | cut -d= -f2)
CLK=$(getconf CLK_TCK)
CPU=$(awk -v c0="$C0" -v c1="$C1" -v a="$ACC" -v hz="$CLK" 'BEGIN{ if (a>0) printf "%.1f", (c1-c0)/hz*1e6/a; else print "-"}')
printf "| %s | %s | %s | %s | %d MiB (%d) | %s | %s | %s µs | %s |\n" "$NAME" "$DUR" "$RATE" "$P99" $((PEAK/1024)) $((${DOWN:-0}/1024)) "$ACC" "$FAIL" "$CPU" "$(date -u +%H:%M)"
