#!/usr/bin/env bash
# Data-parallel training under mpirun on real data (AG News rows from TEXTSCALE_DATA):
# - 2 and 3 ranks give the weights of 1 rank with the same global batch (dropout on: its masks
#   follow the sample, not the rank), to 1e-5 (the all-reduce and the per-rank GEMMs sum in
#   another order); bucketed-and-overlapped equals one bucket after backward, bitwise on 2 ranks;
#   with --balance and one rank slowed down, the faster rank takes more rows, same weights; so do
#   gradient accumulation (--accumulate) on 1 and 2 ranks; bf16 gradient buckets stay close;
#   distributed evaluation equals one process's counts exactly;
# - a checkpoint resumes on another number of ranks (2->1->3, 1->2, and after a SIGTERM that
#   reached one rank) and ends where the uninterrupted run ends, to 1e-5;
# - failures end the job fast, naming the rank: a rank killed with SIGKILL, an exception on one
#   rank, a non-finite loss on one rank (and --skip-nonfinite skips that step); mismatched
#   configuration or data across ranks is refused at start, also when every rank reads the same
#   relative path in a folder of its own that holds another shuffle of the same source;
# - with --sync-bn, batch-norm statistics span the ranks: one step on 2 and 3 ranks equals one
#   process's; VDCNN with per-rank statistics trains on 2 ranks.
source "$(dirname "$0")/../cli/lib.sh"
DATA=${TEXTSCALE_DATA:-$TEXTSCALE_SOURCE_DIR/../shared/data}
if [ ! -f "$DATA/ag_news/alps_train_sample/dev.tsv" ]; then
  echo "SKIP: no AG News in '$DATA' (set TEXTSCALE_DATA to a folder laid out like ../shared/data)"
  exit 77
fi
command -v mpirun > /dev/null || { echo "SKIP: no mpirun (apt-get install openmpi-bin)"; exit 77; }
cd "$WORK"
# Open MPI refuses to start as root unless told (CI machines run as root); ranks may outnumber
# cores here; single-copy shared memory needs ptrace rights that containers often lack.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --oversubscribe --bind-to none --mca btl_vader_single_copy_mechanism none)
ts() { "$TEXTSCALE_BIN" "$@"; }

ag_news_subset "$DATA" 700 203

# A tiny Crepe with dropout; global batch 22 (not a multiple of 3), 7 batches an epoch over 150
# rows (the last one 18 rows), --limit-eval 101 (odd).
tiny=(--train train.h5 --test test.h5 --model crepe-small --features 32 --fc 64 --batch-size 22 --limit-train 150
  --limit-eval 101 --lr 0.02 --threads 1 --log-every 3 --progress off)

# train NP RUN_DIR ARGS...: mpirun -np NP textscale train; output in RUN_DIR.log
train() {
  local np=$1 dir=$2
  shift 2
  "${MPIRUN[@]}" -np "$np" "$TEXTSCALE_BIN" train "$@" --run-dir "$dir" > "$dir.log" 2>&1 ||
    { fail "mpirun -np $np textscale train $* failed:"; sed 's/^/    /' "$dir.log" | tail -20 >&2; }
}
# same_params A B [TOLERANCE]: parameters and optimizer state of two checkpoints agree
same_params() {
  local tolerance=${3:-}
  for group in /parameters /optimizer; do
    if [ -n "$tolerance" ]; then
      h5diff -d "$tolerance" "$1" "$2" "$group" "$group" > diff.txt 2>&1 || { fail "$1 vs $2: $group differ by more than $tolerance"; head -5 diff.txt >&2; }
    else
      h5diff "$1" "$2" "$group" "$group" > diff.txt 2>&1 || { fail "$1 vs $2: $group not bitwise equal"; head -5 diff.txt >&2; }
    fi
  done
}
final_confusion() { py -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][-1]; print(r['test']['confusion'], r['test']['loss'])" "$1/metrics.jsonl"; }

# --- 1 vs 2 vs 3 ranks, the same global batch ---------------------------------------------------
train 1 one "${tiny[@]}" --epochs 2
train 2 two "${tiny[@]}" --epochs 2
train 3 three "${tiny[@]}" --epochs 2
train 2 two-single "${tiny[@]}" --epochs 2 --bucket-mb 0
train 2 two-small "${tiny[@]}" --epochs 2 --bucket-mb 0.01
same_params one/checkpoint.h5 two/checkpoint.h5 1e-5
same_params one/checkpoint.h5 three/checkpoint.h5 1e-5
same_params two-single/checkpoint.h5 two-small/checkpoint.h5
same_params two-single/checkpoint.h5 two/checkpoint.h5
# Gradient accumulation: the batch in micro-batches, their gradients summed before the all-reduce
# (1 process: 22 rows as 6, 6, 6, 4; 2 ranks: 11 rows as 4, 4, 3, added to the dense buckets as
# they are sent, small buckets too): the same sums in another order, to the same 1e-5.
train 1 one-acc "${tiny[@]}" --epochs 2 --accumulate 4
train 2 two-acc "${tiny[@]}" --epochs 2 --accumulate 3 --bucket-mb 0.01
same_params one/checkpoint.h5 one-acc/checkpoint.h5 1e-5
same_params one/checkpoint.h5 two-acc/checkpoint.h5 1e-5
# bf16 gradient buckets: not the fp32 run's weights (the rounding happened), close to them, and
# the same training losses to 1% (tests/mpi/test_communicator.cpp checks the rounding itself).
train 2 two-bf16 "${tiny[@]}" --epochs 2 --allreduce-precision bf16
h5diff -q two/checkpoint.h5 two-bf16/checkpoint.h5 /parameters /parameters > /dev/null 2>&1 &&
  fail "--allreduce-precision bf16 gave the fp32 run's weights bitwise"
py - two two-bf16 <<'PY' || fail "bf16 gradient buckets moved the weights, momentum or losses too far from fp32's"
# Each reduced gradient element is within 2 roundings of 2^-8 (0.4%) of its ranks' magnitudes;
# the momentum, a sum of such gradients, moved 0.3% of its norm when this was written, the
# weights 0.1% at most (the last layer's bias): bounds of 2% and 0.5%.
import h5py, json, sys
import numpy as np
a, b = (h5py.File(f"{run}/checkpoint.h5", "r") for run in sys.argv[1:])
for group, bound in (("parameters", 0.005), ("optimizer", 0.02)):
    names = []
    a[group].visit(lambda n: names.append(n) if isinstance(a[group][n], h5py.Dataset) else None)
    for name in names:
        x, y = np.asarray(a[group][name], np.float64), np.asarray(b[group][name], np.float64)
        change = np.linalg.norm(x - y) / max(np.linalg.norm(x), 1e-30)
        assert change <= bound, f"{group}/{name}: relative difference {change:.3g} > {bound}"
fp32, bf16 = ([r["loss"] for r in map(json.loads, open(f"{run}/metrics.jsonl")) if r["type"] == "interval"]
              for run in sys.argv[1:])
assert len(fp32) == len(bf16) > 0 and all(abs(x - y) <= 0.01 * x for x, y in zip(fp32, bf16)), (fp32, bf16)
PY
grep -q "2 ranks (mpi)" two.log || fail "the 2-rank run does not say it runs on 2 ranks"
grep -q "comm wait .* ms/step (least " two.log || fail "the 2-rank run does not report its communication wait"
# --balance with rank 1 slowed down (5 ms a row, several times the tiny model's own time): rank 0
# takes more rows of each batch once the rates are measured, and the weights are still those of
# one process (the same samples and mean gradient in every step).
train 2 two-balance "${tiny[@]}" --epochs 2 --balance true --fault slow:1:0
same_params one/checkpoint.h5 two-balance/checkpoint.h5 1e-5
py - two-balance/metrics.jsonl <<'PY' || fail "--balance did not give the slow rank fewer rows"
import json, sys
rows = [r["rows_per_rank"] for r in map(json.loads, open(sys.argv[1])) if r["type"] == "interval"]
assert all(sum(r) == 22 for r in rows), rows
assert all(r[0] > r[1] for r in rows), rows
PY
py - two/metrics.jsonl <<'PY' || fail "the communication waits in two/metrics.jsonl are inconsistent"
import json, sys
final = [json.loads(l) for l in open(sys.argv[1])][-1]
assert 0 <= final["comm_wait_least_ms_per_step"] <= final["comm_wait_ms_per_step"], final
PY
[ "$(grep -c '^\[rank' two.log || true)" = 0 ] || fail "rank 1 printed to the log: $(grep '^\[rank' two.log | head -3)"
py - one/metrics.jsonl two/metrics.jsonl three/metrics.jsonl <<'PY' || fail "1, 2 and 3 ranks disagree on the evaluation or the training loss"
import json, sys
runs = [[json.loads(l) for l in open(p)] for p in sys.argv[1:]]
finals = [r[-1] for r in runs]
assert all(f["type"] == "final" for f in finals)
assert all(f["test"]["confusion"] == finals[0]["test"]["confusion"] for f in finals), [f["test"]["confusion"] for f in finals]
assert sum(map(sum, finals[0]["test"]["confusion"])) == 101
for f in finals[1:]:
    assert abs(f["test"]["loss"] - finals[0]["test"]["loss"]) < 1e-4, (f["test"]["loss"], finals[0]["test"]["loss"])
epochs = [[e for e in r if e["type"] == "epoch"] for r in runs]
for e in epochs[1:]:
    for a, b in zip(e, epochs[0]):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4, (a["train_loss"], b["train_loss"])
        assert a["train_accuracy"] == b["train_accuracy"]
PY
echo "1 vs 2 vs 3 ranks: checked"

# --- Resume on another number of ranks ----------------------------------------------------------
train 2 chain "${tiny[@]}" --epochs 2 --max-steps 4
cp chain/checkpoint.h5 after4.h5
train 1 chain "${tiny[@]}" --epochs 2 --resume chain/checkpoint.h5 --max-steps 9
train 3 chain "${tiny[@]}" --epochs 2 --resume chain/checkpoint.h5
same_params one/checkpoint.h5 chain/checkpoint.h5 1e-5
train 1 grow "${tiny[@]}" --epochs 2 --max-steps 5
train 2 grow "${tiny[@]}" --epochs 2 --resume grow/checkpoint.h5
same_params one/checkpoint.h5 grow/checkpoint.h5 1e-5
grep -q "resumed at epoch 1 batch 5" grow.log || fail "the 1->2 resume did not continue at batch 5: $(grep resumed grow.log)"
# SIGTERM reaching one rank only: every rank stops after the same step, rank 0 writes the
# checkpoint, and resuming on 1 rank ends where the uninterrupted run ends.
status=0
"${MPIRUN[@]}" -np 2 "$TEXTSCALE_BIN" train "${tiny[@]}" --epochs 2 --run-dir term --fault term:1:5 > term.log 2>&1 || status=$?
[ "$status" != 0 ] || fail "the job interrupted by SIGTERM exited 0"
grep -q "interrupted by signal 15: checkpoint written" term.log || fail "no checkpoint after SIGTERM: $(tail -5 term.log)"
train 1 term "${tiny[@]}" --epochs 2 --resume term/checkpoint.h5
grep -q "resumed at epoch 1 batch 6" term.log || fail "the SIGTERM checkpoint is not after step 6: $(grep resumed term.log)"
same_params one/checkpoint.h5 term/checkpoint.h5 1e-5
echo "resume across world sizes: checked"

# --- --batch-per-rank and linear learning-rate scaling -----------------------------------------
train 2 scaled --train train.h5 --model crepe-small --features 32 --fc 64 --batch-per-rank 11 --limit-train 44 \
  --epochs 1 --lr 0.01 --lr-scaling linear --lr-base-batch 11 --threads 1 --log-every 1 --progress off
py - <<'PY' || fail "--batch-per-rank / --lr-scaling: wrong global batch or learning rate"
import json
config = json.load(open("scaled/config.json"))
assert config["options"]["batch-size"] == 22 and "batch-per-rank" not in config["options"], config["options"]
assert config["world_size"] == 2
lrs = {r["lr"] for r in map(json.loads, open("scaled/metrics.jsonl")) if r["type"] == "interval"}
assert lrs == {0.02}, lrs
PY

# --- Failures end the job fast and name the rank ------------------------------------------------
# fails_fast NAME EXPECTED_TEXT ARGS...: the job exits non-zero within 30 s and says EXPECTED_TEXT
fails_fast() {
  local name=$1 expected=$2 start status=0
  shift 2
  start=$(date +%s)
  timeout 120 "${MPIRUN[@]}" -np 2 "$TEXTSCALE_BIN" train "${tiny[@]}" --epochs 2 --run-dir "$name" "$@" \
    > "$name.log" 2>&1 || status=$?
  local took=$(($(date +%s) - start))
  [ "$status" != 0 ] || fail "$name: the job exited 0"
  [ "$status" != 124 ] || fail "$name: the job hung (killed by timeout after 120 s)"
  [ "$took" -le 30 ] || fail "$name: the job took $took s to end"
  grep -qE -- "$expected" "$name.log" || { fail "$name: no '$expected' in the output:"; tail -15 "$name.log" >&2; }
}
fails_fast killed "rank 1 .*(signal 9|Killed|killed)" --fault kill:1:3
fails_fast thrown "\[rank 1/2\] error: failure injected by --fault at step 2" --fault throw:1:2
fails_fast nan "loss is not finite at step 3 \(epoch 1, batch 3\) on rank 1" --fault nan:1:2
train 2 skipped "${tiny[@]}" --epochs 1 --fault nan:1:2 --skip-nonfinite true
py -c "import json,sys; r=[json.loads(l) for l in open('skipped/metrics.jsonl')][-1]; sys.exit(0 if r.get('skipped_steps') == 1 else 1)" ||
  fail "--skip-nonfinite did not skip exactly one step"
grep -q "skipped the step: the loss is not finite at step 3" skipped.log || fail "the skipped step was not reported"
# The skip is decided where the optimizer runs (on a GPU, without waiting for the device) from the
# reduced gradient: after a skipped third step the parameters and optimizer state, step count
# included, are bitwise those after two steps.
train 2 skip-third "${tiny[@]}" --epochs 1 --max-steps 3 --fault nan:1:2 --skip-nonfinite true
train 2 two-steps "${tiny[@]}" --epochs 1 --max-steps 2
same_params skip-third/checkpoint.h5 two-steps/checkpoint.h5

# Mismatched configuration / data across ranks (MPMD launch: one program line per rank).
mismatch() {
  local name=$1 expected=$2 status=0
  shift 2
  timeout 120 "${MPIRUN[@]}" "$@" > "$name.log" 2>&1 || status=$?
  [ "$status" != 0 ] && [ "$status" != 124 ] || fail "$name: exited $status"
  grep -qF -- "$expected" "$name.log" || { fail "$name: no '$expected' in the output:"; tail -10 "$name.log" >&2; }
}
mismatch seeds "rank(s) 1 were started with a different configuration than rank 0" \
  -np 1 "$TEXTSCALE_BIN" train "${tiny[@]}" --run-dir m1 : -np 1 "$TEXTSCALE_BIN" train "${tiny[@]}" --run-dir m1 --seed 2
ts preprocess --input train.tsv --format tsv --label-column 1 --labels names --classes "$DATA/ag_news/classes.txt" \
  --no-words --output other.h5 > /dev/null  # without --unescape: other content
mismatch files "rank(s) 1 were started with a different file for --train" \
  -np 1 "$TEXTSCALE_BIN" train "${tiny[@]}" --run-dir m2 : -np 1 "$TEXTSCALE_BIN" train "${tiny[@]/train.h5/other.h5}" --run-dir m2
# The same rows in another order: only the content digest tells the files apart.
ts preprocess --input train.tsv --format tsv --label-column 1 --labels names --classes "$DATA/ag_news/classes.txt" \
  --unescape backslash --no-words --shuffle --seed 3 --output reordered.h5 > /dev/null
mismatch reordered "rank(s) 1 were started with a different file for --train than rank 0: the content of '" \
  -np 1 "$TEXTSCALE_BIN" train "${tiny[@]}" --run-dir m3 : -np 1 "$TEXTSCALE_BIN" train "${tiny[@]/train.h5/reordered.h5}" --run-dir m3
# Nodes with local copies: every rank reads train.h5 in a folder of its own (one per rank), the
# run directory is shared. The same source shuffled with --seed 1 on rank 0 and --seed 2 on rank 1
# is refused, naming the file; the same file on both runs.
for r in 0 1; do
  mkdir -p "rank$r"
  cp test.h5 "rank$r/"
  ts preprocess --input train.tsv --format tsv --label-column 1 --labels names --classes "$DATA/ag_news/classes.txt" \
    --unescape backslash --no-words --shuffle --seed $((r + 1)) --output "rank$r/train.h5" > /dev/null
done
printf '#!/usr/bin/env bash\ncd "%s/rank$OMPI_COMM_WORLD_RANK" && exec "%s" "$@"\n' "$WORK" "$TEXTSCALE_BIN" > in-rank-folder.sh
chmod +x in-rank-folder.sh
mismatch rank-folders "rank(s) 1 were started with a different file for --train than rank 0: the content of 'train.h5' differs" \
  -np 2 "$WORK/in-rank-folder.sh" train "${tiny[@]}" --max-steps 2 --run-dir "$WORK/m4"
cp rank0/train.h5 rank1/train.h5
"${MPIRUN[@]}" -np 2 "$WORK/in-rank-folder.sh" train "${tiny[@]}" --max-steps 2 --run-dir "$WORK/m5" > m5.log 2>&1 ||
  { fail "rank folders holding the same file: mpirun exited non-zero:"; tail -10 m5.log >&2; }
[ -f m5/checkpoint.h5 ] || fail "rank folders holding the same file: no checkpoint in the shared run directory"
echo "failures: checked"

# --- Synchronised batch normalisation -------------------------------------------------------------
# One step of a tiny VDCNN: with --sync-bn, 2 and 3 ranks compute one process's update (parameters
# and running statistics to 1e-6); with per-rank statistics (the default) they differ by > 1e-4.
# (Over many steps VDCNN's max and k-max pooling turn rounding differences into different
# selections, so trajectories are compared one step at a time.)
vd=(--train train.h5 --model vdcnn-9 --features 16 --fc 64 --batch-size 24 --limit-train 144 --epochs 1 --max-steps 1
  --threads 1 --progress off)
for sync in true false; do
  for np in 1 2 3; do train "$np" "bn-$sync-$np" "${vd[@]}" --sync-bn "$sync"; done
done
py - <<'PY' || fail "synchronised batch norm: ranks disagree with one process (or per-rank statistics do not)"
import h5py, numpy as np
def load(path):
    f = h5py.File(path, "r")
    return {(g, k): f[g][k][...] for g in ("parameters", "state") for k in f[g]}
def gap(a, b):
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
for sync, check in (("true", lambda d: d < 1e-6), ("false", lambda d: d > 1e-4)):
    one = load(f"bn-{sync}-1/checkpoint.h5")
    for n in (2, 3):
        d = gap(one, load(f"bn-{sync}-{n}/checkpoint.h5"))
        print(f"--sync-bn {sync}: 1 vs {n} ranks, largest difference {d:.3g}")
        assert check(d), (sync, n, d)
PY
run_ts 0 train "${vd[@]}" --run-dir bn-local --sync-bn true  # one process without a launcher
same_params bn-true-1/checkpoint.h5 bn-local/checkpoint.h5
"${MPIRUN[@]}" -np 2 "$TEXTSCALE_BIN" train --train train.h5 --model vdcnn-9 --features 16 --fc 64 --batch-size 25 \
  --limit-train 51 --epochs 1 --threads 1 --progress off --sync-bn true --run-dir bn-bad \
  > bn-bad.log 2>&1 && fail "--sync-bn with a 1-row last batch on 2 ranks was accepted"
grep -q "sync-bn needs at least one row of every batch on every rank" bn-bad.log || fail "no clear message: $(tail -3 bn-bad.log)"
echo "synchronised batch norm: checked"

# --- VDCNN with batch normalisation on 2 ranks --------------------------------------------------
train 2 vdcnn --train train.h5 --test test.h5 --model vdcnn-9 --features 8 --fc 32 --batch-size 16 --limit-train 96 \
  --limit-eval 64 --epochs 1 --threads 1 --progress off --optimizer adam --lr 0.001
py -c "import json,math,sys; r=[json.loads(l) for l in open('vdcnn/metrics.jsonl')][-1]; sys.exit(0 if math.isfinite(r['test']['loss']) else 1)" ||
  fail "VDCNN on 2 ranks: no finite test loss"

finish
