#!/usr/bin/env bash
# The multi-node job script for real, through a Slurm whose nodes are namespaces on this machine
# (jobs/slurm/local-nodes-slurm.sh: one slurmd per node, slurmctld in the first): 2 nodes x 1 task,
# on the CPU, AG News rows standing in for Amazon polarity, a tiny Crepe. Launched both ways the
# script offers: srun's PMIx (the default) and Open MPI's mpirun inside the allocation
# (LAUNCHER=mpirun). Each job ends COMPLETED with a 2-rank run whose ranks report the two nodes'
# hostnames. Slurm and munge are installed when missing (as tests/slurm does).
source "$(dirname "$0")/lib.sh"
export SLURM_NODES_DIR=/var/tmp/textscale-slurm-nodes-test
slurm() { bash "$TEXTSCALE_SOURCE_DIR/jobs/slurm/local-nodes-slurm.sh" "$@"; }
trap 'slurm stop > /dev/null 2>&1 || true; nodes stop > /dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
slurm start 2 > slurm.log 2>&1 || { fail "the namespace Slurm did not start:"; tail -30 slurm.log >&2; exit 1; }

mkdir -p data/amazon_polarity
cp train.h5 test.h5 data/amazon_polarity/
# The GPU script on the CPU: the overrides it needs (sbatch options on the command line replace the
# script's #SBATCH ones; EXTRA_ARGS replaces its textscale options).
export TEXTSCALE_HOME=$TEXTSCALE_SOURCE_DIR TEXTSCALE_BIN TEXTSCALE_DATA=$WORK/data TEXTSCALE_RUNS=$WORK/runs
export MODEL=crepe-small PRECISION=fp32 EPOCHS=1 EPOCH_ROWS=150 WARMUP_STEPS=2
export EXTRA_ARGS="--device cpu --threads 1 --features 32 --fc 64 --batch-per-rank 11 --limit-eval 101 --log-every 1"
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=tcp,self OMPI_MCA_btl_tcp_if_include=10.77.1.0/24 OMPI_MCA_oob_tcp_if_include=10.77.1.0/24
for launcher in srun mpirun; do
  LAUNCHER=$launcher slurm run sbatch --wait --parsable --nodes 2 --ntasks-per-node 1 --cpus-per-task 1 \
    --gpus-per-task=0 --time 5 --output "$WORK/%x-%j.out" \
    "$TEXTSCALE_SOURCE_DIR/jobs/slurm/crepe-amazon-polarity-multinode.sbatch" > "job-$launcher.id" 2> "job-$launcher.err" ||
    { fail "sbatch --wait (LAUNCHER=$launcher) failed:"; cat "job-$launcher.err" "$WORK"/*.out >&2 || true; }
  id=$(tr -dc 0-9 < "job-$launcher.id")
  run=$WORK/runs/crepe-amazon-polarity-multinode-$id
  py - "$run/config.json" "$run/metrics.jsonl" <<'PY' || { fail "LAUNCHER=$launcher: not a finished 2-rank run on tsnt1 and tsnt2"; tail -20 "$WORK"/*-"$id".out >&2; }
import json, sys
config = json.load(open(sys.argv[1]))
assert config["world_size"] == 2 and config["hosts"] == ["tsnt1", "tsnt2"], (config["world_size"], config["hosts"])
assert config["device"] == "cpu"
assert [json.loads(l) for l in open(sys.argv[2])][-1]["type"] == "final"
PY
  expect_in "$run/environment-0.txt" "nodes: tsnt1 tsnt2"
  echo "LAUNCHER=$launcher: job $id ran on tsnt1 and tsnt2"
done
finish
