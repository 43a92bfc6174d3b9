#!/usr/bin/env bash
# Load benchmark of `textscale serve` (not a test; results/serve.md). On loopback only: `wrk -t1`
# POSTs single-text requests (AG News texts, in turn; bench/serve_load.lua) at each concurrency
# for --duration seconds, after --warmup seconds at that concurrency that are not counted,
# against textscale serve (dynamic batching) and against the peer a user would otherwise write,
# bench/peer_serve.py (the same PyTorch model behind Python's ThreadingHTTPServer, one forward
# pass a request). Also `textscale bench` for the model's inference rate at batch --max-batch
# and at batch 1. Reports requests/s, p50/p99 latency and errors, and checks the targets:
# throughput at the highest concurrency >= 80% of the bench rate at --max-batch and >= 5x the
# peer's, p99 at concurrency 1 < 2x the batch-1 inference time.
#
# Bounded: every wrk run has its duration, every server start a 300 s limit, and the servers are
# stopped (SIGTERM) when the script ends, however it ends.
#
# usage: bench/serve_load.sh --checkpoint RUN/best.h5 [--duration 60] [--warmup 10]
#          [--concurrency "1 8 64"] [--max-batch 64] [--max-delay-ms 5] [--threads 2]
#          [--winograd on|off] [--texts ../shared/data/ag_news/test.csv] [--peer on|off]
#          [--out results/serve-load]
#   --winograd: the convolution algorithm of textscale's CPU backend, for bench and serve alike
#   TEXTSCALE=path/to/textscale (default build/bin/textscale)
# needs wrk (apt-get install wrk) and, for the peer, /usr/bin/python3 with torch and h5py.
set -euo pipefail
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE  # Debian's PyTorch then runs OpenBLAS at full speed
cd "$(dirname "$0")/.."

checkpoint= duration=60 warmup=10 concurrency="1 8 64" max_batch=64 max_delay=5 threads=2 winograd=on
texts=../shared/data/ag_news/test.csv peer=on out=results/serve-load
while [ $# -gt 0 ]; do
  case $1 in
    --checkpoint) checkpoint=$2 ;;
    --duration) duration=$2 ;;
    --warmup) warmup=$2 ;;
    --concurrency) concurrency=$2 ;;
    --max-batch) max_batch=$2 ;;
    --max-delay-ms) max_delay=$2 ;;
    --threads) threads=$2 ;;
    --winograd) winograd=$2 ;;
    --texts) texts=$2 ;;
    --peer) peer=$2 ;;
    --out) out=$2 ;;
    *) echo "serve_load.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
textscale=${TEXTSCALE:-build/bin/textscale}
[ -n "$checkpoint" ] || { echo "serve_load.sh: --checkpoint is required" >&2; exit 2; }
command -v wrk > /dev/null || { echo "serve_load.sh: no wrk (apt-get install wrk)" >&2; exit 2; }
[ -f "$texts" ] || { echo "serve_load.sh: no texts file $texts (--texts: a Zhang CSV)" >&2; exit 2; }
mkdir -p "$out"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)  # other work on the machine shows here
results=$out/results.jsonl
: > "$results"
max_c=$(tr ' ' '\n' <<< "$concurrency" | sort -n | tail -n 1)

pids=()
trap 'for pid in "${pids[@]}"; do kill -TERM "$pid" 2> /dev/null || true; done' EXIT

# One JSON body a line: {"text": title + " " + description}, the first 500 rows.
/usr/bin/python3 - "$texts" "$out/bodies.jsonl" <<'PY'
import csv, json, sys
rows = list(csv.reader(open(sys.argv[1], encoding="utf-8")))[:500]
with open(sys.argv[2], "w") as out:
    for row in rows:
        out.write(json.dumps({"text": " ".join(row[1:]).replace("\\n", "\n")}) + "\n")
PY

record() {  # record JSON: one line of results.jsonl
  echo "$1" >> "$results"
}

# The model's inference rate on this machine, as `textscale bench` measures it.
# The median of 5 timings of about 2 s each: single short timings of this machine vary by 5-10%.
for batch in "$max_batch" 1; do
  steps=$((batch == 1 ? 160 : (1600 + batch - 1) / batch))  # about 2 s at this machine's rates
  line=$("$textscale" bench --model crepe-small --batch-size "$batch" --threads "$threads" --winograd "$winograd" \
    --warmup 5 --steps "$steps" --repeats 5 2> /dev/null | grep '^{')
  record "{\"kind\": \"bench\", \"batch\": $batch, \"infer_samples_per_second\": $(
    /usr/bin/python3 -c "import json,sys; print(json.loads(sys.argv[1])['infer_samples_per_second'])" "$line")}"
done

# start NAME COMMAND...: runs COMMAND in the background (output in $out/NAME.log) until it prints
# "listening on http://..."; sets URL.
start() {
  local name=$1 _
  shift
  "$@" > "$out/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 3000); do
    URL=$(grep -o 'listening on http://[^ ]*' "$out/$name.log" | head -n 1 | cut -d' ' -f3 || true)
    [ -n "$URL" ] && return 0
    kill -0 "${pids[-1]}" 2> /dev/null || { echo "$name exited: $(cat "$out/$name.log")" >&2; exit 1; }
    sleep 0.1
  done
  echo "$name did not listen within 300 s" >&2
  exit 1
}

stop() {
  kill -TERM "${pids[-1]}"
  wait "${pids[-1]}" || true
  unset 'pids[-1]'
}

# load NAME: wrk at every concurrency against $URL, after a warm-up at that concurrency.
load() {
  local c line
  for c in $concurrency; do
    SERVE_BODIES=$out/bodies.jsonl wrk -t1 -c"$c" -d"${warmup}s" --timeout 30s -s bench/serve_load.lua \
      "$URL/v1/classify" > /dev/null
    line=$(SERVE_BODIES=$out/bodies.jsonl wrk -t1 -c"$c" -d"${duration}s" --timeout 30s -s bench/serve_load.lua \
      "$URL/v1/classify" | grep '^{')
    echo "$1 concurrency $c: $line" >&2
    record "{\"kind\": \"load\", \"server\": \"$1\", \"concurrency\": $c, ${line#\{}"
  done
}

start textscale "$textscale" serve --checkpoint "$checkpoint" --port 0 --threads "$threads" --winograd "$winograd" \
  --max-batch "$max_batch" --max-delay-ms "$max_delay" --http-threads $((max_c + 8)) --max-queue 4096
load textscale
curl -s "$URL/metrics" > "$out/textscale-metrics.txt"
stop
if [ "$peer" = on ]; then
  start peer /usr/bin/python3 bench/peer_serve.py --checkpoint "$checkpoint" --port 0 --threads "$threads"
  load peer
  stop
fi

# The table, the targets, and what produced them.
/usr/bin/python3 - "$results" "$max_batch" "$max_c" <<'PY' | tee "$out/table.md"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
max_batch, top = int(sys.argv[2]), int(sys.argv[3])
bench = {r["batch"]: r["infer_samples_per_second"] for r in rows if r["kind"] == "bench"}
load = {(r["server"], r["concurrency"]): r for r in rows if r["kind"] == "load"}
print(f"textscale bench, crepe-small inference: {bench[max_batch]:.1f} samples/s at batch {max_batch}, "
      f"{bench[1]:.1f} at batch 1 ({1000 / bench[1]:.2f} ms a row)\n")
print("| server | concurrency | requests/s | p50 ms | p99 ms | max ms | errors |")
print("|---|---:|---:|---:|---:|---:|---:|")
for (server, c), r in sorted(load.items(), key=lambda item: (item[0][0] != "textscale", item[0][1])):
    print(f"| {server} | {c} | {r['rps']:.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} "
          f"| {r['errors']} |")
t_top = load[("textscale", top)]["rps"]
print()
print(f"- throughput at concurrency {top}: {t_top:.1f} requests/s = {100 * t_top / bench[max_batch]:.1f}% "
      f"of the bench rate at batch {max_batch} (target >= 80%)")
if ("peer", top) in load:
    print(f"- against the Python peer at concurrency {top}: {t_top / load[('peer', top)]['rps']:.1f}x (target >= 5x)")
if ("textscale", 1) in load:
    p99 = load[("textscale", 1)]["p99_ms"]
    print(f"- p99 at concurrency 1: {p99:.2f} ms = {p99 * bench[1] / 1000:.2f}x the batch-1 inference time "
          f"(target < 2x)")
for server in ("textscale", "peer"):
    if any(s == server for s, _ in load):
        errors = sum(r["errors"] for (s, _), r in load.items() if s == server)
        print(f"- errors, {server}: {errors}" + (" (target 0)" if server == "textscale" else ""))
PY
{
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
  echo "- textscale: $("$textscale" --version | head -n 1); checkpoint $checkpoint; --winograd $winograd"
  echo "- wrk: $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2); duration ${duration} s after ${warmup} s of warm-up, each concurrency"
  echo "- load average (1, 5, 15 min) before: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee -a "$out/table.md"
