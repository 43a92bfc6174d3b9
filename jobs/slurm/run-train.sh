#!/usr/bin/env bash
# The body of every textscale Slurm job (the .sbatch files here set the configuration and exec
# this). It never builds anything. Usage, from a batch script:
#   exec bash "$TEXTSCALE_HOME/jobs/slurm/run-train.sh" DATASET [textscale train options...]
# DATASET names the folder under $TEXTSCALE_DATA holding train.h5, test.h5 and (optional)
# train.valid.h5, as data/prepare.sh writes them.
#
# Environment (all optional):
#   TEXTSCALE_HOME   the textscale checkout (default: the submit directory)
#   TEXTSCALE_BIN    the binary (default $TEXTSCALE_HOME/build/bin/textscale)
#   TEXTSCALE_DATA   preprocessed datasets (default $TEXTSCALE_HOME/../shared/data)
#   TEXTSCALE_RUNS   where run directories go (default $TEXTSCALE_HOME/runs)
#   RUN_DIR          this job's run directory (default $TEXTSCALE_RUNS/<job name>-<job id>)
#   TRAIN, VALID, TEST  data files (default $TEXTSCALE_DATA/DATASET/{train,train.valid,test}.h5)
#   LAUNCHER         srun (default: srun --mpi=pmix) | mpirun (Open MPI's, inside the allocation)
#   EXTRA_ARGS       more `textscale train` options; each replaces the job's value of that option
#   REQUEUE          1 (default): after an interrupted run (a signal before the time limit, a
#                    pre-emption) requeue the job; it resumes from the run directory's checkpoint
#   DRY_RUN          1: print the resolved launch command and exit
set -euo pipefail
dataset=$1
shift
home=${TEXTSCALE_HOME:-${SLURM_SUBMIT_DIR:-$PWD}}
bin=${TEXTSCALE_BIN:-$home/build/bin/textscale}
data=${TEXTSCALE_DATA:-$home/../shared/data}
runs=${TEXTSCALE_RUNS:-$home/runs}
job=${SLURM_JOB_NAME:-textscale}-${SLURM_JOB_ID:-local}
run_dir=${RUN_DIR:-$runs/$job}
train=${TRAIN:-$data/$dataset/train.h5}
valid=${VALID:-$data/$dataset/train.valid.h5}
test=${TEST:-$data/$dataset/test.h5}
ranks=${SLURM_NTASKS:-1}

args=(train --train "$train" --test "$test" --run-dir "$run_dir" --progress off "$@")
[ -f "$valid" ] && args+=(--valid "$valid")
# A requeued (or resubmitted) job continues from its last checkpoint. A requeued job that ended
# before its first checkpoint (a node lost) starts afresh over what it left: `train` refuses a
# run directory holding a previous run's files unless --overwrite.
if [ -f "$run_dir/checkpoint.h5" ]; then
  args+=(--resume "$run_dir/checkpoint.h5")
elif [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then
  args+=(--overwrite)
fi
# EXTRA_ARGS ("--name value" or "--name=value" words) replace the script's values of the same options.
if [ -n "${EXTRA_ARGS:-}" ]; then
  read -r -a extra <<< "$EXTRA_ARGS"
  for word in "${extra[@]}"; do
    [[ $word == --* ]] || continue
    name=${word%%=*}
    kept=()
    for ((i = 0; i < ${#args[@]}; i++)); do
      if [ "${args[i]}" = "$name" ]; then
        i=$((i + 1)) # and its value
      elif [[ ${args[i]} == "$name="* ]]; then
        :
      else
        kept+=("${args[i]}")
      fi
    done
    args=("${kept[@]}")
  done
  args+=("${extra[@]}")
fi

case ${LAUNCHER:-srun} in
  srun) launch=(srun --mpi=pmix --kill-on-bad-exit=1 "$bin") ;;
  mpirun) launch=(mpirun -np "$ranks" --bind-to core "$bin") ;;
  *) echo "LAUNCHER must be srun or mpirun, not '$LAUNCHER'" >&2; exit 2 ;;
esac

if [ "${DRY_RUN:-0}" = 1 ]; then
  printf '%q ' "${launch[@]}" "${args[@]}"
  echo
  exit 0
fi
[ -x "$bin" ] || { echo "error: no textscale binary at $bin (build it first, or set TEXTSCALE_BIN)" >&2; exit 2; }
for f in "$train" "$test"; do
  [ -f "$f" ] || { echo "error: $f does not exist (data/prepare.sh $dataset, or set TRAIN/TEST)" >&2; exit 2; }
done
mkdir -p "$run_dir"

# What ran where: one file per start of the job (a requeued job starts again).
restart=${SLURM_RESTART_COUNT:-0}
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "job: ${SLURM_JOB_ID:-none} (${SLURM_JOB_NAME:-}), start $((restart + 1)), restart count $restart"
  echo "nodes: $(scontrol show hostnames "${SLURM_JOB_NODELIST:-$(hostname -s)}" 2> /dev/null | tr '\n' ' ')"
  echo "tasks: $ranks (${SLURM_NTASKS_PER_NODE:-?} per node), cpus per task: ${SLURM_CPUS_PER_TASK:-?}"
  echo "gpus: ${CUDA_VISIBLE_DEVICES:-none visible to the batch script}"
  command -v nvidia-smi > /dev/null && nvidia-smi -L 2> /dev/null | sed 's/^/  /'
  echo "binary: $bin"
  "$bin" --version | sed 's/^/  /'
  echo "checkout: $(git -C "$home" rev-parse HEAD 2> /dev/null || echo 'not a git checkout')"
  echo "command: ${launch[*]} ${args[*]}"
} > "$run_dir/environment-$restart.txt"

export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
set +e
"${launch[@]}" "${args[@]}"
rc=$?
set -e
echo "textscale train exited with $rc"
# srun can report success for tasks that never started (a failed step launch): trust the run's
# own record of its end instead.
if [ $rc = 0 ] && ! grep -q '"type":"final"' "$run_dir/metrics.jsonl" 2> /dev/null; then
  echo "error: the launcher reported success, but the run did not finish (no final record in $run_dir/metrics.jsonl)" >&2
  rc=1
fi
# 128 + SIGTERM/SIGINT: every rank stopped after the same step and a checkpoint was written.
if { [ $rc = 143 ] || [ $rc = 130 ]; } && [ "${REQUEUE:-1}" = 1 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
  echo "interrupted: requeueing job $SLURM_JOB_ID; it resumes from $run_dir/checkpoint.h5"
  scontrol requeue "$SLURM_JOB_ID"
  exit 0
fi
exit $rc
