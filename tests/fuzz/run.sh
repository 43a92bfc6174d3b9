#!/usr/bin/env bash
# Builds the libFuzzer targets (clang-14, AddressSanitizer + UndefinedBehaviorSanitizer) into
# build-fuzz and runs each for SECONDS (default 25): first over its regression inputs
# (tests/fuzz/regressions/<target>/: every input that once failed), then fuzzing from seeds cut from
# the real data (${TEXTSCALE_DATA:-../shared/data}; without it, from the regression inputs only).
# A failure keeps the input in build-fuzz/findings/<target>/ and exits 1.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-25}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_record_reader)
data=${TEXTSCALE_DATA:-../shared/data}
build=build-fuzz
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTEXTSCALE_CUDA=OFF \
    -DTEXTSCALE_FUZZ=ON > /dev/null
fi
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}" > /dev/null

# Seeds: the first rows of each real file, behind the layout byte each target reads first.
seeds() {
  local target=$1 out=$2
  mkdir -p "$out"
  case $target in
    fuzz_record_reader)
      # Layout byte: bit 0 comma (else tab), bit 1 quoting, bit 2 header.
      [ -f "$data/ag_news/test.csv" ] && { printf '\x03'; head -c 4000 "$data/ag_news/test.csv"; } > "$out/ag_news.csv"
      [ -f "$data/ag_news/alps_train_sample/dev.tsv" ] &&
        { printf '\x02'; head -c 4000 "$data/ag_news/alps_train_sample/dev.tsv"; } > "$out/ag_news.tsv"
      [ -f "$data/sst2/train.tsv" ] && { printf '\x06'; head -c 4000 "$data/sst2/train.tsv"; } > "$out/sst2.tsv"
      [ -f "$data/imdb/test.csv.gz" ] && { printf '\x03'; zcat "$data/imdb/test.csv.gz" | head -c 4000 || true; } > "$out/imdb.csv"
      ;;
  esac
  return 0
}

failed=0
for target in "${targets[@]}"; do
  binary=$(find "$build" -name "$target" -type f -perm -u+x | head -1)
  regressions=tests/fuzz/regressions/$target
  corpus=$build/corpus/$target findings=$build/findings/$target
  mkdir -p "$corpus" "$findings"
  seeds "$target" "$corpus"
  if compgen -G "$regressions/*" > /dev/null && ! "$binary" "$regressions"/* > "$findings/regressions.log" 2>&1; then
    echo "$target: a regression input fails again (log: $findings/regressions.log)" >&2
    failed=1
    continue
  fi
  if "$binary" -max_total_time="$seconds" -artifact_prefix="$findings/" -print_final_stats=1 "$corpus" \
    > "$findings/fuzz.log" 2>&1; then
    echo "$target: $(grep -o 'number_of_executed_units: *[0-9]*' "$findings/fuzz.log" | grep -o '[0-9]*$') inputs in ${seconds} s, no finding"
  else
    echo "$target: FINDING, input kept in $findings (log: $findings/fuzz.log)" >&2
    grep -m3 -E "ERROR|runtime error|what\(\)" "$findings/fuzz.log" >&2 || true
    failed=1
  fi
done
exit "$failed"
