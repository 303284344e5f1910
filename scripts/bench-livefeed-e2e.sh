#!/usr/bin/env bash
# End-to-end live feed delay through the real ingest path (docs/performance.md, "Live feed"):
# a `peba serve` on an empty data directory, N anonymous viewers (the load-test viewers of
# http/livefeed, run as their own process), and `bench ingest` posting EWS batches over HTTP.
# A delay is the viewer's receipt time minus the event's timestamp, which the server set when
# the POST arrived: journal, DuckDB apply, hub, encoding, socket. (TestLoad measures from
# hub.Publish on.)
#
#   go build -o /tmp/peba ./cmd/peba && (cd http/livefeed && go test -c -o /tmp/livefeed.test .)
#   scripts/bench-livefeed-e2e.sh sse|socketio [VIEWERS=1000] [BATCH=12] [INGEST_CLIENTS=1]
#
# One ingest client with batches of 12 posts about 5,000 events/s on the project's machine;
# bench ingest prints the rate reached. RATE=5000 (with INGEST_CLIENTS=2 or more) fixes the
# offered rate instead, so that servers are compared at the same load; DUR (5s) is the
# length of the run; PEBA_CLIENT_BIN is the bench ingest binary (default: PEBA_BIN).
set -u
T=$1; N=${2:-1000}; B=${3:-12}; IC=${4:-1}
BIN=${PEBA_BIN:-/tmp/peba}; VIEWERS=${PEBA_LIVEFEED_TEST:-/tmp/livefeed.test}
D=$(mktemp -d)
"$BIN" serve -datadir "$D/data" -bindhost 127.0.0.1:19900 -loglevel error -ratelimit_address 0 -ratelimit_sensor 0 2>/dev/null &
SP=$!
trap 'kill $SP 2>/dev/null; rm -rf "$D"' EXIT
sleep 2
coproc V { PEBA_LIVEFEED_LOADCLIENT=1 PEBA_LIVEFEED_URL=http://127.0.0.1:19900 PEBA_LIVEFEED_TRANSPORT=$T \
	PEBA_LIVEFEED_CLIENTS=$N "$VIEWERS" -test.run '^TestLoadClients$' 2>/dev/null; }
while read -r line <&"${V[0]}"; do case "$line" in "LOAD ready"*) echo "$line"; break ;; esac; done
sleep 1
echo "go $(date +%s%N)" >&"${V[1]}"
"${PEBA_CLIENT_BIN:-$BIN}" bench ingest -url http://127.0.0.1:19900/ews-0.1/alert/postSimpleMessage -duration "${DUR:-5s}" \
	-clients "$IC" -batch "$B" ${RATE:+-rate "$RATE"} 2>&1 | head -3
sleep 1
echo stop >&"${V[1]}"
while read -r line <&"${V[0]}"; do case "$line" in "LOAD result"*) echo "${line#LOAD result }" >"$D/res.json"; break ;; esac; done
curl -s 127.0.0.1:19900/metrics | grep -E "peba_ingest_commit_seconds_(sum|count)"
python3 - "$D/res.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
def upper(b):  # the load test's histogram buckets (load_timing_test.go)
    if b < 64: return b
    s = (b - 64) // 64; m = (b - 64) % 64 + 64
    return ((m + 1) << s) - 1
tot = r['received']; h = sorted(r['hist'])
def q(p):
    want = int((tot - 1) * p) + 1; seen = 0
    for b, c in h:
        seen += c
        if seen >= want: return upper(b) / 1000
print("deliveries %d  p50 %.1f ms  p99 %.1f ms  max %.1f ms" % (tot, q(.5), q(.99), q(1)))
PY
