#!/usr/bin/env bash
# Preprocessing benchmark: textscale preprocess vs a Python peer (bench/peer_preprocess.py) on a
# synthetic Zhang CSV shaped like Amazon Review Polarity (bench/gen_zhang_csv.py).
#
# Runs, on the same input, each under /usr/bin/time -v:
#   1. textscale preprocess (all cores, or --threads N / THREADS),
#   2. textscale preprocess --threads 1,
#   3. the Python peer (single process, /usr/bin/python3 with numpy + h5py),
# and prints a markdown table: wall seconds, MB/s (input bytes / wall seconds), rows/s, CPU
# seconds (user + sys) and peak RSS, then the textscale/peer throughput ratios. The input is read
# once (cat > /dev/null) before each run, so every run reads it from the page cache, and `sync`
# runs between runs (untimed) so one run's write-back does not land in the next one's time.
#
# Usage: bench/preprocess_bench.sh [--rows N] [--seed S] [--bench-dir DIR] [--csv PATH] [--imdb N]
#                                  [--threads N] [--out FILE] [--no-peer] [--no-single-thread]
#                                  [--keep-outputs]
# --imdb N benchmarks real text instead: $TEXTSCALE_DATA/imdb/train.csv.gz (default ../shared/data)
# decompressed and repeated N times.
# Environment (flags win): ROWS (3600000), SEED (1), BENCH_DIR (/tmp/textscale-bench), CSV,
#   THREADS (0 = all cores), TEXTSCALE (build/bin/textscale), PYTHON (/usr/bin/python3).
# The CSV is generated only when missing (default $BENCH_DIR/zhang_synth_<rows>_s<seed>.csv, about
# 460 bytes a row: 1.65 GB for 3.6M rows). Each output HDF5 file is about 2.2 KB a row (8 GB for
# 3.6M rows); the script deletes them unless --keep-outputs, and keeps at most two at a time.
#
# No BLAS is involved: the `unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE` seen in other benchmark
# commands matters only for the torch benches and is irrelevant here.
# Installs nothing; needs /usr/bin/time (apt-get install -y time).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

invocation="bench/preprocess_bench.sh $*"
rows=${ROWS:-3600000}
seed=${SEED:-1}
bench_dir=${BENCH_DIR:-/tmp/textscale-bench}
csv=${CSV:-}
imdb_copies=0
data_dir=${TEXTSCALE_DATA:-$repo/../shared/data}
threads=${THREADS:-0}
textscale=${TEXTSCALE:-$repo/build/bin/textscale}
python=${PYTHON:-/usr/bin/python3}
out_file=""
run_peer=1
run_single=1
keep=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rows) rows=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --bench-dir) bench_dir=$2; shift 2 ;;
    --csv) csv=$2; shift 2 ;;
    --imdb) imdb_copies=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --out) out_file=$2; shift 2 ;;
    --no-peer) run_peer=0; shift ;;
    --no-single-thread) run_single=0; shift ;;
    --keep-outputs) keep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "preprocess_bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

[[ -x /usr/bin/time ]] || { echo "needs /usr/bin/time (apt-get install -y time)" >&2; exit 1; }
[[ -x $textscale ]] || { echo "no textscale binary at $textscale (cmake --build build -j2)" >&2; exit 1; }
"$python" -c 'import numpy, h5py' 2>/dev/null || { echo "$python lacks numpy or h5py" >&2; exit 1; }

mkdir -p "$bench_dir"
if [[ $imdb_copies -gt 0 ]]; then
  # Real text: the IMDB training CSV (25,000 reviews, Zhang polarity format) repeated N times.
  csv=$bench_dir/imdb_train_x${imdb_copies}.csv
  if [[ ! -s $csv ]]; then
    [[ -f $data_dir/imdb/train.csv.gz ]] || { echo "no $data_dir/imdb/train.csv.gz (set TEXTSCALE_DATA)" >&2; exit 1; }
    for ((i = 0; i < imdb_copies; ++i)); do gzip -dc "$data_dir/imdb/train.csv.gz"; done > "$csv"
  fi
fi
csv=${csv:-$bench_dir/zhang_synth_${rows}_s${seed}.csv}
if [[ ! -s $csv ]]; then
  echo "generating $csv ($rows rows, seed $seed)" >&2
  "$python" "$here/gen_zhang_csv.py" --rows "$rows" --seed "$seed" --out "$csv"
fi
input_bytes=$(stat -c %s "$csv")
log_dir=$bench_dir/logs
mkdir -p "$log_dir"

declare -a table_rows=()
declare -A mbps=()

# measure KEY LABEL OUTPUT.h5 COMMAND...: run under /usr/bin/time -v, append a table row.
measure() {
  local key=$1 name=$2 output=$3; shift 3
  local log=$log_dir/$key.log
  rm -f "$output"
  sync
  cat "$csv" > /dev/null
  echo "running $name: $*" >&2
  if ! /usr/bin/time -v -o "$log.time" "$@" > "$log" 2>&1; then
    echo "$name failed; its output:" >&2
    tail -n 30 "$log" "$log.time" >&2
    exit 1
  fi
  local wall cpu rss_kb out_rows
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {
           n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$log.time")
  cpu=$(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {printf "%.2f", u + s}' "$log.time")
  rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log.time")
  out_rows=$("$python" -c 'import sys, h5py; print(int(h5py.File(sys.argv[1], "r").attrs["num_rows"]))' "$output")
  mbps[$key]=$(awk -v b="$input_bytes" -v s="$wall" 'BEGIN {printf "%.1f", b / 1e6 / s}')
  table_rows+=("$(awk -v name="$name" -v s="$wall" -v cpu="$cpu" -v r="$out_rows" -v b="$input_bytes" -v kb="$rss_kb" \
    'BEGIN {printf "| %s | %d | %.2f | %.1f | %.0f | %.2f | %.0f |", name, r, s, b / 1e6 / s, r / s, cpu, kb / 1024}')")
}

ts_out=$bench_dir/textscale.h5
ts1_out=$bench_dir/textscale_t1.h5
peer_out=$bench_dir/peer.h5
ts_label="textscale (--threads $threads)"
[[ $threads == 0 ]] && ts_label="textscale (all $(nproc) cores)"

measure textscale "$ts_label" "$ts_out" "$textscale" preprocess --input "$csv" --output "$ts_out" --overwrite --threads "$threads"
if [[ $run_single == 1 ]]; then
  measure textscale_t1 "textscale (--threads 1)" "$ts1_out" "$textscale" preprocess --input "$csv" --output "$ts1_out" --overwrite --threads 1
  [[ $keep == 1 ]] || rm -f "$ts1_out"
fi
agreement=""
if [[ $run_peer == 1 ]]; then
  measure peer "python peer" "$peer_out" "$python" "$here/peer_preprocess.py" --input "$csv" --output "$peer_out"
  # Spot check: the first and last 20,000 rows of every tensor, and the vocabulary.
  agreement=$("$python" - "$ts_out" "$peer_out" <<'EOF'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
n = a["labels"].shape[0]
parts = []
if n != b["labels"].shape[0]:
    parts.append(f"row counts differ ({n} vs {b['labels'].shape[0]})")
else:
    k = min(n, 20000)
    for name in ("labels", "chars", "words", "char_lengths", "word_lengths"):
        same = all(np.array_equal(a[name][s], b[name][s]) for s in (slice(0, k), slice(n - k, n)))
        parts.append(f"{name} {'same' if same else 'DIFFER'}")
    va = [v.decode() if isinstance(v, bytes) else v for v in a["vocab"][:]]
    vb = [v.decode() if isinstance(v, bytes) else v for v in b["vocab"][:]]
    parts.append(f"vocab {'same' if va == vb else 'DIFFERS'}")
    print(f"textscale vs peer, first and last {k} rows: " + ", ".join(parts))
EOF
)
  [[ $keep == 1 ]] || rm -f "$peer_out"
fi
[[ $keep == 1 ]] || rm -f "$ts_out"

report=$(
  echo "### textscale preprocess vs Python peer"
  echo
  echo "- input: \`$csv\`, $(awk -v b="$input_bytes" 'BEGIN {printf "%.1f MB", b / 1e6}') ($input_bytes bytes), Zhang CSV, default options (chars L=1014, words W=300, vocab 50000)"
  echo "- host: $(nproc) cores ($(lscpu | awk -F': *' '/Model name/ {print $2; exit}')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM; input in page cache"
  echo "- textscale: $("$textscale" --version 2>/dev/null | head -n 1); peer: $("$python" --version 2>&1), numpy $("$python" -c 'import numpy; print(numpy.__version__)'), h5py $("$python" -c 'import h5py; print(h5py.__version__)')"
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- command: \`$invocation\` (from the repository root, after \`bash .ci/build.sh\`)"
  echo
  echo "| run | rows | wall s | MB/s | rows/s | CPU s | peak RSS MB |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${table_rows[@]}"
  if [[ $run_peer == 1 ]]; then
    echo
    echo "- throughput ratio textscale/peer: $(awk -v a="${mbps[textscale]}" -v b="${mbps[peer]}" 'BEGIN {printf "%.1fx", a / b}')"
    if [[ $run_single == 1 ]]; then
      echo "- single-thread ratio textscale --threads 1/peer: $(awk -v a="${mbps[textscale_t1]}" -v b="${mbps[peer]}" 'BEGIN {printf "%.1fx", a / b}')"
    fi
    echo "- $agreement"
  fi
  echo "- MB/s = input bytes / wall seconds; logs in \`$log_dir\`"
)
echo "$report"
if [[ -n $out_file ]]; then
  mkdir -p "$(dirname "$out_file")"
  echo "$report" > "$out_file"
  echo "wrote $out_file" >&2
fi
