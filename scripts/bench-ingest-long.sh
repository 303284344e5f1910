#!/bin/bash
# A long whole-server ingest run, as scripts/bench-ingest.sh, that prints
# every 10 s what the server did in those 10 s: alerts accepted per second,
# RSS, and the store transactions (mean duration, count, and the share of
# the 10 s the applier spent in them). It shows what a summary hides: a
# stall (one transaction of seconds), a slow decline, RSS growing with the
# data (docs/performance.md, session 11).
#
#   go build -o /tmp/peba ./cmd/peba
#   scripts/bench-ingest-long.sh /tmp/peba [DURATION] [serve flags...]
#
# LOADGEN (default: the binary under test) runs the load. The data directory
# is kept in $DIR (default: a new temporary directory, printed at the end)
# for a look at the store afterwards; remove it when done.
set -u
BIN=$1
DUR=${2:-600s}
shift $(( $# < 2 ? $# : 2 ))
LOADGEN=${LOADGEN:-$BIN}
ADDR=127.0.0.1:19922
DIR=${DIR:-$(mktemp -d)}
mkdir -p "$DIR"
"$BIN" serve -datadir "$DIR/data" -bindhost $ADDR -ratelimit_address 0 -ratelimit_sensor 0 "$@" >"$DIR/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null' EXIT
for _ in $(seq 1 100); do curl -sf http://$ADDR/heartbeat >/dev/null && break; sleep 0.1; done
"$LOADGEN" bench ingest -clients 8 -duration "$DUR" -url http://$ADDR/ews-0.1/alert/postSimpleMessage >"$DIR/bench.out" 2>&1 &
LG=$!
prev=0 ps=0 pc=0
while kill -0 $LG 2>/dev/null; do
	sleep 10
	m=$(curl -s http://$ADDR/metrics)
	acc=$(awk '/^peba_ews_alerts_total\{result="accepted"\}/{printf "%d", $2}' <<<"$m")
	read -r s c <<<"$(awk '/^peba_ingest_commit_seconds_sum/{s=$2} /^peba_ingest_commit_seconds_count/{c=$2} END{print s+0, c+0}' <<<"$m")"
	rss=$(awk '/VmRSS/{print int($2/1024)}' /proc/$PID/status)
	tx=$(awk -v s="$s" -v c="$c" -v ps="$ps" -v pc="$pc" 'BEGIN{ if (c>pc) printf "%.0f ms/transaction, %d transactions, applier busy %.0f%%", (s-ps)/(c-pc)*1000, c-pc, (s-ps)*10 }')
	echo "$(date -u +%T) accepted=${acc:-0} rate=$(( (${acc:-0}-prev)/10 ))/s rss=${rss}MiB $tx"
	prev=${acc:-0} ps=$s pc=$c
done
cat "$DIR/bench.out"
grep -c 'level=ERROR' "$DIR/serve.log" | sed 's/^/server errors logged: /'
echo "data directory: $DIR/data"
