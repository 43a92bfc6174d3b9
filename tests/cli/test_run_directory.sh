#!/usr/bin/env bash
# What a run may and may not do to the files of another run (generated data, a tiny Crepe):
# - one run at a time in a run directory: a second run, new or --resume, is refused (exit 1)
#   naming the first's host and PID, and the first finishes intact;
# - a run refused for its options, its data or its checkpoint creates nothing; a new run does not
#   replace a previous run's metrics.jsonl or config.json unless --overwrite;
# - temporary files that a killed process of this host left (train's run directory, preprocess's
#   outputs, predict's output) are removed by the next run, and said so; those of live processes
#   and of other hosts stay.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
export OMP_NUM_THREADS=1

py - <<'PY'
import random
random.seed(3)
words = [["vote", "minister", "treaty"], ["goal", "coach", "league"], ["shares", "profit", "bank"]]
with open("train.csv", "w") as f:
    for _ in range(320):
        k = random.randrange(3)
        text = " ".join(random.choice(words[k] + ["the", "of", "new"]) for _ in range(random.randint(4, 20)))
        f.write('"%d","title","%s"\n' % (k + 1, text))
PY
run_ts 0 preprocess --input train.csv --format zhang --no-words --output train.h5
options=(--batch-size 32 --threads 1 --progress off)
tiny=(--train train.h5 --model crepe-small --features 16 --fc 16 "${options[@]}")
host=$(uname -n)
sleep 0 &
dead=$!
wait "$dead"  # a PID that no longer runs

valid_metrics() {  # valid_metrics RUN: every line of RUN/metrics.jsonl is a JSON object, the last one final
  py - "$1/metrics.jsonl" <<'PY' || fail "$1/metrics.jsonl is damaged"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
assert rows and rows[-1]["type"] == "final", rows[-1:]
PY
}

# --- One run at a time ---------------------------------------------------------------------------
# The first run is slowed (5 ms a row from step 0: about 0.2 s a step, 10 steps an epoch) so that
# the others start while it runs; it writes a checkpoint every 2 steps. It says it is Slurm job 4242.
SLURM_JOB_ID=4242 "$TEXTSCALE_BIN" train "${tiny[@]}" --epochs 3 --checkpoint-every 2 --fault slow:0:0 --run-dir shared \
  > first.out 2> first.err &
first=$!
waited=0
while [ $waited -lt 300 ] && ! { [ -f shared/checkpoint.h5 ] && grep -q '"pid"' shared/.lock 2>/dev/null; }; do
  sleep 0.1
  waited=$((waited + 1))
done
[ -f shared/.lock ] || fail "no lock file in the run directory of a running run"
run_ts 1 train "${tiny[@]}" --epochs 1 --run-dir shared
expect_in "$WORK/err" "run directory 'shared' is in use by process $first on host $host (Slurm job 4242), started"
run_ts 1 train --resume shared/checkpoint.h5 --progress off
expect_in "$WORK/err" "is in use by process $first on host $host"
kill -0 "$first" 2>/dev/null || fail "the first run ended before the second started: make it slower"
status=0
wait "$first" || status=$?
[ "$status" = 0 ] || fail "the first run failed ($status): $(cat first.err)"
valid_metrics shared
grep -qF -- "--fault slow:0:0" shared/config.json || fail "config.json is not the first run's"
expect_absent shared/.lock
# A lock file a killed run left (flock: whatever it says, nobody holds it) does not stop a resume.
printf '{"host": "%s", "pid": %d}\n' "$host" "$dead" > shared/.lock
run_ts 0 train --resume shared/checkpoint.h5 --epochs 4 --max-steps 32 --progress off

# --- Nothing created before the run is accepted; no previous run replaced without --overwrite ----
run_ts 1 train --train missing.h5 --model crepe-small "${options[@]}" --run-dir refused-data
run_ts 2 train "${tiny[@]}" --epochs 0 --run-dir refused-option
run_ts 1 train --train train.h5 --model crepe-small --features 32 --fc 16 "${options[@]}" \
  --init-from shared/checkpoint.h5 --run-dir refused-checkpoint
expect_absent refused-data refused-option refused-checkpoint
mkdir old
printf '{"type": "final", "from": "an earlier run"}\n' > old/metrics.jsonl
cp old/metrics.jsonl metrics-before.jsonl
run_ts 1 train "${tiny[@]}" --epochs 1 --max-steps 1 --run-dir old
expect_in "$WORK/err" "run directory 'old' holds a previous run's metrics.jsonl"
cmp -s old/metrics.jsonl metrics-before.jsonl || fail "a refused run changed the previous run's metrics.jsonl"
expect_absent old/config.json old/checkpoint.h5
run_ts 1 train "${tiny[@]}" --epochs 1 --max-steps 1 --run-dir shared
expect_in "$WORK/err" "holds a run (shared/checkpoint.h5)"
run_ts 2 train --resume shared/checkpoint.h5 --overwrite
run_ts 0 train "${tiny[@]}" --epochs 1 --max-steps 2 --run-dir old --overwrite
valid_metrics old
grep -q "earlier run" old/metrics.jsonl && fail "--overwrite kept the previous run's metrics"
run_ts 0 train "${tiny[@]}" --epochs 1 --max-steps 2 --run-dir shared --overwrite
valid_metrics shared
[ "$(grep -c '"type":"final"' shared/metrics.jsonl)" = 1 ] || fail "--overwrite appended to the previous metrics"

# --- Temporary files of killed processes ---------------------------------------------------------
# Train: a checkpoint's and config.json's temporary files of a dead process of this host go; a
# live process's (this shell) and another host's stay.
touch "shared/.checkpoint.h5.tmp-$host-$dead" "shared/.config.json.tmp-$host-$dead" \
  "shared/.checkpoint.h5.tmp-$host-$$" "shared/.best.h5.tmp-elsewhere-$dead"
run_ts 0 train --resume shared/checkpoint.h5 --max-steps 4 --progress off
expect_in "$WORK/err" "shared/.checkpoint.h5.tmp-$host-$dead: a temporary file of a process of this host that no"
expect_in "$WORK/err" "shared/.config.json.tmp-$host-$dead: a temporary file"
expect_absent "shared/.checkpoint.h5.tmp-$host-$dead" "shared/.config.json.tmp-$host-$dead"
[ -e "shared/.checkpoint.h5.tmp-$host-$$" ] || fail "a live process's temporary file was removed"
[ -e "shared/.best.h5.tmp-elsewhere-$dead" ] || fail "another host's temporary file was removed"
rm -f "shared/.checkpoint.h5.tmp-$host-$$" "shared/.best.h5.tmp-elsewhere-$dead"
no_leftovers shared

# Preprocess killed (SIGKILL) while it writes: its temporary files stay until the next run.
py -c '
import random
random.seed(5)
with open("big.csv", "w") as f:
    for i in range(400000): f.write("\"%d\",\"t\",\"%s\"\n" % (i % 3 + 1, " ".join("w%d" % random.randrange(5000) for _ in range(12))))'
"$TEXTSCALE_BIN" preprocess --input - --format zhang --threads 1 --output big.h5 < big.csv > /dev/null 2>&1 &
killed=$!
waited=0
while [ $waited -lt 100 ] && ! compgen -G "big.h5.tokens-*" > /dev/null; do sleep 0.1; waited=$((waited + 1)); done
kill -KILL "$killed"
wait "$killed" 2>/dev/null || true
left=$(compgen -G "big.h5.*" | wc -l)
[ "$left" -ge 1 ] || fail "the killed preprocess left no temporary file (it should have been killed while writing)"
touch "big.h5.tmp-$host-$$" "big.h5.spool-elsewhere-$dead"
run_ts 0 preprocess --input train.csv --format zhang --no-words --output big.h5
expect_in "$WORK/err" "removed big.h5.stdin-$host-$killed"
[ "$(compgen -G "big.h5.*-$host-$killed" | wc -l)" = 0 ] || fail "the killed preprocess's files stayed"
[ -e "big.h5.tmp-$host-$$" ] && [ -e "big.h5.spool-elsewhere-$dead" ] || fail "files of a live process or another host were removed"
rm -f "big.h5.tmp-$host-$$" "big.h5.spool-elsewhere-$dead" big.csv

# Predict: its output's temporary file.
printf 'vote minister treaty\ngoal coach league\n' > texts.txt
touch ".predictions.csv.tmp-$host-$dead"
run_ts 0 predict --checkpoint shared/checkpoint.h5 --input texts.txt --output predictions.csv
expect_in "$WORK/err" "removed .predictions.csv.tmp-$host-$dead"
expect_absent ".predictions.csv.tmp-$host-$dead"
no_leftovers "$WORK"
# --- a full disk when config.json is written: the file and the system's reason -----------------
status=0
( ulimit -f 1; exec "$TEXTSCALE_BIN" train "${tiny[@]}" --epochs 1 --run-dir full-disk ) > "$WORK/out" 2> "$WORK/err" ||
  status=$?
[ "$status" = 1 ] || fail "config.json on a full disk: exit $status, expected 1: $(cat "$WORK/err")"
expect_in "$WORK/err" "cannot write 'full-disk/config.json': File too large"
[ -z "$(find full-disk -name 'config.json*' 2> /dev/null)" ] || fail "a partial config.json was left: $(ls -a full-disk)"

finish
