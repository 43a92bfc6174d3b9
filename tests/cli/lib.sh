# Shared helpers for the command-line tests (sourced). TEXTSCALE_BIN is set by ctest.
set -euo pipefail
: "${TEXTSCALE_BIN:?TEXTSCALE_BIN must point to the textscale binary}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/textscale-cli.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
failures=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# run_ts EXPECTED_STATUS ARGS...: runs textscale, keeps stdout/stderr in $WORK/out and $WORK/err.
run_ts() {
  local expected=$1
  shift
  local status=0
  "$TEXTSCALE_BIN" "$@" >"$WORK/out" 2>"$WORK/err" || status=$?
  if [ "$status" != "$expected" ]; then
    fail "textscale $* exited $status, expected $expected; stderr:"
    sed 's/^/    /' "$WORK/err" >&2
    return 0
  fi
}

expect_in() {  # expect_in FILE TEXT: FILE contains TEXT
  grep -qF -- "$2" "$1" || fail "expected '$2' in $(basename "$1"): $(head -c 600 "$1")"
}

expect_absent() {  # expect_absent PATH...: no such file
  local p
  for p in "$@"; do [ ! -e "$p" ] || fail "$p should not exist"; done
}

no_leftovers() {  # no temporary files beside outputs in DIR
  local left
  left=$(find "$1" -name '*.tmp-*' -o -name '*.spool-*' -o -name '*.stdin-*' -o -name '*.tokens-*' | head -3)
  [ -z "$left" ] || fail "temporary files left behind: $left"
}

finish() {
  if [ "$failures" -gt 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
  fi
  echo "all checks passed"
}

# py EXPR-SCRIPT: run Debian's python3 (the one with h5py/numpy).
py() { /usr/bin/python3 "$@"; }

# ag_news_subset DATA TRAIN_LINES TEST_LINES: in the current folder, the first lines of AG News's
# training sample and test split (from DATA, laid out like ../shared/data) as train.tsv and
# test.csv, preprocessed to character tensors train.h5 and test.h5 (classes.txt beside them).
ag_news_subset() {
  local data=$1
  head -n "$2" "$data/ag_news/alps_train_sample/dev.tsv" > train.tsv
  "$TEXTSCALE_BIN" preprocess --input train.tsv --format tsv --label-column 1 --labels names \
    --classes "$data/ag_news/classes.txt" --unescape backslash --no-words --output train.h5 > /dev/null
  head -n "$3" "$data/ag_news/test.csv" > test.csv
  cp "$data/ag_news/classes.txt" classes.txt
  "$TEXTSCALE_BIN" preprocess --input test.csv --format zhang --unescape backslash --no-words --classes classes.txt \
    --output test.h5 > /dev/null
}

# losses RUN: the first interval's loss and the last epoch's training loss.
losses() {
  py - "$1/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
first = next(r["loss"] for r in rows if r["type"] == "interval")
last = [r for r in rows if r["type"] == "epoch"][-1]["train_loss"]
print(first, last)
PY
}

# same_state A.h5 B.h5 WHAT [GROUPS]: the checkpoints' GROUPS (default /parameters /state
# /optimizer) are bitwise equal.
same_state() {  # same_state A.h5 B.h5 WHAT [GROUPS]
  local group
  for group in ${4:-/parameters /state /optimizer}; do
    h5diff -q "$1" "$2" "$group" "$group" > /dev/null 2>&1 || fail "$3: $group differs between $1 and $2"
  done
}
