#!/usr/bin/env bash
# The Slurm job scripts (jobs/slurm) through a real single-node Slurm started here
# (jobs/slurm/local-cluster.sh: slurmctld + slurmd + munge), on AG News rows from TEXTSCALE_DATA:
# - data/prepare.sh lays out the data the jobs read by default;
# - the CPU job script with 2 tasks under `sbatch --wait`: exit code 0, both ranks trained (a
#   2-rank world), the run directory holds the configuration, environment, metrics and checkpoint;
# - the BiLSTM's CPU job script the same way, on word tensors from `data/prepare.sh --words`;
# - requeue: SIGTERM to the job's tasks mid-run (what `--signal=TERM@300` sends before the time
#   limit): every rank stops, rank 0 checkpoints, the job requeues itself and its second start
#   resumes from the checkpoint and completes;
# - predict.sbatch with 2 tasks writes what one process writes; SIGTERM mid-run, the job requeues
#   itself and its second start continues from the partial output to the same result;
# - `sbatch --test-only` of every single-node script against the cluster advertising 64 CPUs and 4
#   fake GPUs; the multi-node script's dry run prints the srun (and mpirun) command it would run.
# Needs root (the daemons) and apt or the installed packages; stops the cluster at exit.
source "$(dirname "$0")/../cli/lib.sh"
DATA=${TEXTSCALE_DATA:-$TEXTSCALE_SOURCE_DIR/../shared/data}
if [ ! -f "$DATA/ag_news/alps_train_sample/dev.tsv" ]; then
  echo "SKIP: no AG News in '$DATA' (set TEXTSCALE_DATA to a folder laid out like ../shared/data)"
  exit 77
fi
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: a local Slurm needs root"
  exit 77
fi
jobs_dir=$TEXTSCALE_SOURCE_DIR/jobs/slurm
cluster() { bash "$jobs_dir/local-cluster.sh" "$@"; }
# The local cluster's own configuration (local-cluster.sh): the machine's /etc/slurm is not used.
export SLURM_CONF=${SLURM_LOCAL_DIR:-/var/tmp/textscale-slurm}/etc/slurm.conf
trap 'cluster stop > /dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
cd "$WORK"
# AG News rows stand in for DBpedia: laid out as data/fetch.sh leaves it, then data/prepare.sh
# (shuffled training file, validation split, test file) into the folder the job reads by default.
mkdir -p data/dbpedia
head -n 1300 "$DATA/ag_news/test.csv" > data/dbpedia/train.csv
tail -n 203 "$DATA/ag_news/test.csv" > data/dbpedia/test.csv
cp "$DATA/ag_news/classes.txt" data/dbpedia/
bash "$TEXTSCALE_SOURCE_DIR/data/prepare.sh" --dest "$WORK/data" --valid 0.1 --textscale "$TEXTSCALE_BIN" dbpedia \
  > prepare.log 2>&1 || { fail "data/prepare.sh failed:"; tail -5 prepare.log >&2; }

cluster start > cluster.log 2>&1 || { fail "the local Slurm did not start:"; tail -20 cluster.log >&2; exit 1; }

# The job scripts take their data, binary and run directories from the environment (sbatch
# passes it on); EXTRA_ARGS shrinks the published configuration to a tiny Crepe.
export TEXTSCALE_HOME=$TEXTSCALE_SOURCE_DIR TEXTSCALE_BIN TEXTSCALE_DATA=$WORK/data TEXTSCALE_RUNS=$WORK/runs
tiny="--model crepe-small --features 32 --fc 64 --batch-size 22 --limit-eval 101 --threads 1 --log-every 5"

# job_state ID: "STATE RESTARTS"
job_state() {
  scontrol show job "$1" 2> /dev/null |
    sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p; s/.*Restarts=\([0-9]*\).*/\1/p' | tr '\n' ' '
}

# wait_for_requeued_job ID: waits until the job, signalled and requeued, has run again and ended.
wait_for_requeued_job() {
  local requeued=0 state
  for _ in $(seq 600); do
    state=$(job_state "$1")
    if [ "$requeued" = 0 ] && [[ $state == PENDING\ 1* ]] && ! pgrep -f "slurmstepd: \[$1\." > /dev/null; then
      # Slurm holds a requeued job for about two minutes before it may start again (so that its
      # last step is gone, PMIx sockets included): once no step process is left, skip the wait.
      sleep 2
      scontrol update JobId="$1" StartTime=now
      requeued=1
    fi
    [[ $state == COMPLETED* || $state == FAILED* || $state == CANCELLED* ]] && return
    sleep 0.2
  done
}

# --- 1. sbatch --wait: the CPU script with 2 tasks ------------------------------------------------
EXTRA_ARGS="$tiny --limit-train 150 --epochs 2" sbatch --wait --parsable --ntasks=2 --cpus-per-task=1 --time=10 \
  --output="$WORK/%x-%j.out" "$jobs_dir/crepe-dbpedia-cpu.sbatch" > job1.id 2> job1.err ||
  { fail "sbatch --wait crepe-dbpedia-cpu.sbatch failed:"; cat job1.err >&2; cat "$WORK"/*.out >&2 || true; }
id=$(tr -dc 0-9 < job1.id)
run=$WORK/runs/crepe-dbpedia-cpu-$id
for f in config.json metrics.jsonl checkpoint.h5 environment-0.txt; do
  [ -f "$run/$f" ] || fail "job $id: $run/$f is missing"
done
[ -f "$run/config.json" ] && { py -c "import json,sys; sys.exit(json.load(open(sys.argv[1]))['world_size'] != 2)" \
  "$run/config.json" || fail "job $id did not train with 2 ranks"; }
[ -f "$run/metrics.jsonl" ] && { py -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][-1]; sys.exit(r['type'] != 'final' or r['ranks'] != 2)" \
  "$run/metrics.jsonl" || fail "job $id: no final 2-rank metrics record"; }
expect_in "$WORK/crepe-dbpedia-cpu-$id.out" "2 ranks (mpi)"
expect_in "$run/environment-0.txt" "tasks: 2"
expect_in "$run/environment-0.txt" "--valid $WORK/data/dbpedia/train.valid.h5"
crepe_checkpoint=$run/checkpoint.h5

# --- 1b. the BiLSTM's CPU script on word tensors (data/prepare.sh --words) ------------------------
# The same rows laid out as AG News, the folder the script reads by default; a tiny BiLSTM.
mkdir -p data/ag_news
cp data/dbpedia/train.csv data/dbpedia/test.csv data/dbpedia/classes.txt data/ag_news/
bash "$TEXTSCALE_SOURCE_DIR/data/prepare.sh" --dest "$WORK/data" --valid 0.1 --words --textscale "$TEXTSCALE_BIN" \
  ag_news > prepare-words.log 2>&1 || { fail "data/prepare.sh --words failed:"; tail -5 prepare-words.log >&2; }
tiny_words="--embed-dim 16 --hidden 12 --batch-size 22 --limit-train 150 --limit-eval 101 --threads 1 --log-every 5"
EXTRA_ARGS="$tiny_words --epochs 1" sbatch --wait --parsable --ntasks=2 --cpus-per-task=1 --time=10 \
  --output="$WORK/%x-%j.out" "$jobs_dir/bilstm-ag-news-cpu.sbatch" > job1w.id 2> job1w.err ||
  { fail "sbatch --wait bilstm-ag-news-cpu.sbatch failed:"; cat job1w.err >&2; cat "$WORK"/bilstm-*.out >&2 || true; }
id=$(tr -dc 0-9 < job1w.id)
run=$WORK/runs/bilstm-ag-news-cpu-$id
for f in config.json metrics.jsonl checkpoint.h5 environment-0.txt; do
  [ -f "$run/$f" ] || fail "job $id: $run/$f is missing"
done
bilstm_2_ranks="c = json.load(open(sys.argv[1])); o = c['options']
sys.exit(c['world_size'] != 2 or o['model'] != 'bilstm' or o['bucket-by-length'] is not True)"
[ -f "$run/config.json" ] && { py -c "import json, sys; $bilstm_2_ranks" "$run/config.json" ||
  fail "job $id did not train the bilstm, rows bucketed, with 2 ranks"; }
[ -f "$run/metrics.jsonl" ] && { py -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][-1]; sys.exit(r['type'] != 'final' or r['ranks'] != 2)" \
  "$run/metrics.jsonl" || fail "job $id: no final 2-rank metrics record"; }
expect_in "$run/environment-0.txt" "--valid $WORK/data/ag_news/train.valid.h5"

# --- 2. requeue: a signal mid-run, the job requeues itself and resumes ----------------------------
id=$(EXTRA_ARGS="$tiny --limit-train 440 --epochs 12 --checkpoint-every 4" sbatch --parsable --ntasks=2 \
  --cpus-per-task=1 --time=10 --output="$WORK/%x-%j.out" "$jobs_dir/crepe-dbpedia-cpu.sbatch")
run=$WORK/runs/crepe-dbpedia-cpu-$id
for _ in $(seq 300); do [ -f "$run/checkpoint.h5" ] && break; sleep 0.1; done
[ -f "$run/checkpoint.h5" ] || fail "job $id wrote no checkpoint"
scancel --signal=TERM "$id" # to the job's tasks, as --signal=TERM@300 does before the time limit
wait_for_requeued_job "$id"
state=$(job_state "$id")
out=$WORK/crepe-dbpedia-cpu-$id.out
[ "$state" = "COMPLETED 1 " ] || {
  fail "job $id: expected COMPLETED after 1 restart, got '$state'; its log ends:"
  grep -v '^epoch\|^  ' "$out" | tail -n 25 >&2
  grep -F "$id" "${SLURM_LOCAL_DIR:-/var/tmp/textscale-slurm}/log/slurmd.log" | tail -n 15 >&2
}
expect_in "$out" "requeueing job $id"
expect_in "$out" "resumed at epoch"
[ -f "$run/environment-1.txt" ] || fail "job $id: no environment of its second start"
py -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][-1]; sys.exit(r['type'] != 'final')" \
  "$run/metrics.jsonl" || fail "job $id: the resumed run did not finish"

# --- 2b. predict.sbatch: 2 tasks write what 1 process writes; requeued, it continues -------------
# The test rows 40 times over (8k records), in small blocks so that the job takes many rounds.
for _ in $(seq 40); do cat data/dbpedia/test.csv; done > claims.csv
small="--batch-size 16 --block-bytes 4000 --threads 1 --input-format zhang"
"$TEXTSCALE_BIN" predict --checkpoint "$crepe_checkpoint" --input claims.csv $small --output one.csv --quiet ||
  fail "predict in one process failed"
CHECKPOINT=$crepe_checkpoint INPUT=$WORK/claims.csv OUTPUT=$WORK/predicted.csv EXTRA_ARGS="$small" \
  sbatch --wait --parsable --ntasks=2 --cpus-per-task=1 --time=10 --output="$WORK/%x-%j.out" \
  "$jobs_dir/predict.sbatch" > job-predict.id 2> job-predict.err ||
  { fail "sbatch --wait predict.sbatch failed:"; cat job-predict.err "$WORK"/predict-*.out >&2 || true; }
cmp -s one.csv predicted.csv || fail "predict.sbatch with 2 tasks differs from one process"
id=$(CHECKPOINT=$crepe_checkpoint INPUT=$WORK/claims.csv OUTPUT=$WORK/requeued.csv EXTRA_ARGS="$small" \
  sbatch --parsable --ntasks=2 --cpus-per-task=1 --time=10 --output="$WORK/%x-%j.out" "$jobs_dir/predict.sbatch")
for _ in $(seq 600); do [ -f requeued.csv.progress.json ] && break; sleep 0.05; done
scancel --signal=TERM "$id"
wait_for_requeued_job "$id"
state=$(job_state "$id")
[ "$state" = "COMPLETED 1 " ] || { fail "predict job $id: expected COMPLETED after 1 restart, got '$state':"; tail -n 20 "$WORK/predict-$id.out" >&2; }
expect_in "$WORK/predict-$id.out" "requeueing job $id"
expect_in "$WORK/predict-$id.out" "resuming after"
cmp -s one.csv requeued.csv || fail "the requeued predict job's output differs from one process's"

# --- 3. every single-node script fits a 64-CPU, 4-GPU node -----------------------------------------
SLURM_LOCAL_CPUS=64 SLURM_LOCAL_GPUS=4 cluster start > cluster-gpus.log 2>&1 ||
  { fail "restarting with 4 fake GPUs failed:"; tail -n 40 cluster-gpus.log >&2; }
for script in "$jobs_dir"/*-gpu.sbatch "$jobs_dir"/*-cpu.sbatch "$jobs_dir"/predict.sbatch; do
  sbatch --test-only "$script" > test-only.txt 2>&1 || true
  grep -q "to start at" test-only.txt || { fail "sbatch --test-only $(basename "$script"):"; cat test-only.txt >&2; }
done

# --- 4. the multi-node script's dry run ------------------------------------------------------------
multi=$jobs_dir/crepe-amazon-polarity-multinode.sbatch
DRY_RUN=1 SLURM_NTASKS=8 bash "$multi" > dry-srun.txt
expect_in dry-srun.txt "srun --mpi=pmix --kill-on-bad-exit=1 $TEXTSCALE_BIN train"
expect_in dry-srun.txt "--batch-per-rank 128"
expect_in dry-srun.txt "--lr-scaling linear"
DRY_RUN=1 LAUNCHER=mpirun SLURM_NTASKS=8 EXTRA_ARGS="--epochs 1" bash "$multi" > dry-mpirun.txt
expect_in dry-mpirun.txt "mpirun -np 8 --bind-to core"
expect_in dry-mpirun.txt "--epochs 1"
grep -q -- "--epochs 10" dry-mpirun.txt && fail "EXTRA_ARGS did not replace --epochs"
finish
