#!/bin/bash
# Ingest throughput through one or three peba nodes on PostgreSQL, or one
# DuckDB node, as in docs/performance.md ("Multi-node").
#
#   go build -o /tmp/peba ./cmd/peba
#   scripts/bench-multinode.sh pg1|pg3|duck [DURATION]
#
# PEBA_BIN (default /tmp/peba) is the binary; PGURL (default
# postgres://postgres@127.0.0.1:5432) the server, on which database
# PEBA_BENCH_DB (default peba_bench; it must be a throw-away name) is dropped
# and recreated. Nodes listen on 127.0.0.1:19101-19103,
# rate limits off. pg3 runs three `bench ingest` processes (3 + 3 + 2
# clients, one per node) and sums their alerts/s; the others run 8 clients.
# At the end it prints count(*) and count(DISTINCT id) of the stored events.
#
# Diagnostics (PostgreSQL modes): PPROF=1 gives node i -debugaddr
# 127.0.0.1:1610i (net/http/pprof); WAITS=1 samples pg_stat_activity of the
# benchmark database every 0.2 s during the run and prints how often each
# state / wait event / statement was seen among the active backends.
# CPU=1 prints the CPU seconds (user+system, /proc) the nodes and the
# benchmark database's backends spent during the run, and per stored event.
set -u
MODE=$1
DUR=${2:-20s}
BIN=${PEBA_BIN:-/tmp/peba}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
DB=${PEBA_BENCH_DB:-peba_bench}
DSN="$PGURL/$DB?sslmode=disable"
TMP=$(mktemp -d)
PIDS=()
start() { # addr, extra flags
	local addr=$1
	shift
	local dbg=()
	if [ "${PPROF:-}" = 1 ]; then
		dbg=(-debugaddr "127.0.0.1:1610$((${#PIDS[@]} + 1))")
	fi
	"$BIN" serve -bindhost "$addr" -loglevel warn -ratelimit_address 0 -ratelimit_sensor 0 -datadir "$TMP/data" "${dbg[@]}" "$@" 2>>"$TMP/serve.log" &
	PIDS+=($!)
}
if [ "$MODE" = duck ]; then
	start 127.0.0.1:19101
else
	psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" -c "CREATE DATABASE \"$DB\""
	start 127.0.0.1:19101 -postgres_dsn "$DSN"
	if [ "$MODE" = pg3 ]; then
		sleep 2 # the first node creates the schema
		start 127.0.0.1:19102 -postgres_dsn "$DSN"
		start 127.0.0.1:19103 -postgres_dsn "$DSN"
	fi
fi
sleep 3
cpusum() { # CPU seconds (utime+stime) of the nodes, then of the database's backends
	local ticks n=0 b=0 p
	ticks=$(getconf CLK_TCK)
	for p in "${PIDS[@]}"; do n=$((n + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
	if [ "$MODE" != duck ]; then
		for p in $(psql "$DSN" -Atc "SELECT pid FROM pg_stat_activity WHERE datname = '$DB' AND pid <> pg_backend_pid()"); do
			b=$((b + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
		done
	fi
	echo "$n $b $ticks"
}
[ "${CPU:-}" = 1 ] && CPU0=$(cpusum)
uptime
if [ "${WAITS:-}" = 1 ] && [ "$MODE" != duck ]; then
	(while true; do
		psql "$DSN" -Atc "SELECT state, coalesce(wait_event_type || ':' || wait_event, 'CPU'), left(regexp_replace(query, '\s+', ' ', 'g'), 60)
			FROM pg_stat_activity WHERE datname = '$DB' AND state <> 'idle' AND pid <> pg_backend_pid()" >>"$TMP/waits"
		sleep 0.2
	done) &
	WAITPID=$!
fi
if [ "$MODE" = pg3 ]; then
	B=()
	for i in 1 2 3; do
		c=3
		[ $i = 3 ] && c=2
		"$BIN" bench ingest -url "http://127.0.0.1:1910$i/ews-0.1/alert/postSimpleMessage" -duration "$DUR" -clients $c -seed $i >"$TMP/bench-$i.out" &
		B+=($!)
	done
	wait "${B[@]}"
	cat "$TMP"/bench-{1,2,3}.out
	awk -F'[ =]' '/alerts\/s=/{for(i=1;i<=NF;i++) if($i=="alerts/s") s+=$(i+1)} END{print "TOTAL alerts/s=" s}' "$TMP"/bench-{1,2,3}.out
else
	"$BIN" bench ingest -url http://127.0.0.1:19101/ews-0.1/alert/postSimpleMessage -duration "$DUR" -clients 8
fi
[ "${CPU:-}" = 1 ] && CPU1=$(cpusum)
uptime
if [ -n "${WAITPID:-}" ]; then
	kill "$WAITPID"
	echo "pg_stat_activity samples (active backends: count, state|wait|statement):"
	sort "$TMP/waits" | uniq -c | sort -rn | head -15
fi
kill -TERM "${PIDS[@]}"
wait "${PIDS[@]}"
if [ "$MODE" != duck ]; then
	N=$(psql "$DSN" -Atc "SELECT count(*), count(DISTINCT id) FROM events")
	echo "$N"
	if [ "${CPU:-}" = 1 ]; then
		echo "$CPU0 $CPU1 ${N%%|*}" | awk '{t=$3; n=($4-$1)/t; b=($5-$2)/t; printf "CPU s: nodes=%.2f backends=%.2f; per event: nodes=%.1f us backends=%.1f us total=%.1f us\n", n, b, n/$7*1e6, b/$7*1e6, (n+b)/$7*1e6}'
	fi
fi
rm -rf "$TMP"
