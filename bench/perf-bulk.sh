#!/bin/bash
# perf-bulk.sh: where connectd's CPU goes during one bulk stream (perf record -g)
#
# usage: bench/perf-bulk.sh CONNECTD [EXTRA-CONF-LINE]
#	e.g. bench/perf-bulk.sh build/connectd/connectd "relay_splice off"
# Needs perf and bench/out/loadgen (bench.py builds it).  Prints the top
# symbols of connectd's samples and the stream's MB/s; /tmp/perf.data
# keeps the call graphs (perf report -i /tmp/perf.data --no-children).
set -u
cd "$(dirname "$0")/.." || exit 2
CD=${1:?usage: bench/perf-bulk.sh CONNECTD [EXTRA-CONF-LINE]}
LG=bench/out/loadgen
PORT=41300
coproc ORIG { "$LG" origin 8000000000; }
read -r ports <&"${ORIG[0]}"
src=$(echo "$ports" | python3 -c 'import json,sys; print(json.load(sys.stdin)["source"])')
conf=$(mktemp)
printf 'http_port 127.0.0.1:%d\nhttp_access allow all\naccess_log stdio:/dev/null json\nshutdown_lifetime 0 seconds\n%s\n' \
    "$PORT" "${2:-}" >"$conf"
"$CD" -f "$conf" 2>/dev/null &
cd_pid=$!
sleep 0.5
"$LG" bulk "$PORT" "$src" 6000000000 60 >"$conf.res" &
lg=$!
sleep 0.7
perf record -q -g -o /tmp/perf.data -p "$cd_pid" -- sleep 2.5 2>/dev/null
perf report -i /tmp/perf.data --no-children --percent-limit 2 --stdio 2>/dev/null |
    grep -E '^ +[0-9]'
wait "$lg"
cat "$conf.res"
kill "$cd_pid" "$ORIG_PID" 2>/dev/null
rm -f "$conf" "$conf.res"
