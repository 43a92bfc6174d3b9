# Shared by the multi-node tests (sourced): nodes on this machine (jobs/slurm/local-nodes.sh:
# network and UTS namespaces linked through a bridge), mpirun over them on TCP, AG News rows and a
# tiny Crepe. Skips (exit 77) without the data, mpirun, root or namespaces; the nodes are removed
# at exit, whatever happened.
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"
DATA=${TEXTSCALE_DATA:-$TEXTSCALE_SOURCE_DIR/../shared/data}
skip() {
  echo "SKIP: $*"
  exit 77
}
[ -f "$DATA/ag_news/alps_train_sample/dev.tsv" ] ||
  skip "no AG News in '$DATA' (set TEXTSCALE_DATA to a folder laid out like ../shared/data)"
command -v mpirun > /dev/null || skip "no mpirun (apt-get install openmpi-bin)"
[ "$(id -u)" = 0 ] || skip "network namespaces need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)"
# Names and addresses of their own, so that nodes started by hand are left alone.
export LOCAL_NODES_PREFIX=tsnt LOCAL_NODES_NET=10.77.1 LOCAL_NODES_DIR=/run/textscale-nodes-test
probe=tsnt-probe$$
{ ip netns add "$probe" && ip netns delete "$probe"; } > /dev/null 2>&1 ||
  skip "this machine does not let us create a network namespace (ip netns add: no CAP_NET_ADMIN?)"
unshare --uts true > /dev/null 2>&1 || skip "this machine does not let us create a UTS namespace (unshare --uts)"
nodes() { bash "$TEXTSCALE_SOURCE_DIR/jobs/slurm/local-nodes.sh" "$@"; }
trap 'nodes stop > /dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
cd "$WORK"
ag_news_subset "$DATA" 700 203

# A tiny Crepe with dropout (as tests/mpi/test_data_parallel.sh): global batch 22, 7 batches an
# epoch over 150 rows.
tiny=(--train train.h5 --test test.h5 --model crepe-small --features 32 --fc 64 --batch-size 22 --limit-train 150
  --limit-eval 101 --lr 0.02 --threads 1 --log-every 1 --progress off)

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# start_job NAME NP ARGS...: `textscale train ARGS` on NP nodes, one rank each, in the background;
# its output in NAME.log, its exit status in NAME.status when it ends.
start_job() {
  local name=$1 np=$2
  shift 2
  {
    local status=0
    nodes mpirun -np "$np" --map-by node --bind-to none "$TEXTSCALE_BIN" train "$@" --run-dir "$name" \
      > "$name.log" 2>&1 || status=$?
    echo $status > "$name.status"
  } &
}

# wait_for_steps NAME: until the run has logged a training interval (all ranks are in the loop)
wait_for_steps() {
  for _ in $(seq 600); do
    grep -q '"type":"interval"' "$1/metrics.jsonl" 2> /dev/null && return 0
    [ -f "$1.status" ] && break
    sleep 0.1
  done
  fail "$1: the job did not start training:"
  tail -20 "$1.log" >&2
  return 1
}

# wait_for_end NAME SECONDS: until the job has ended; fails if it takes longer
wait_for_end() {
  local deadline=$(($(now_ms) + $2 * 1000))
  while [ ! -f "$1.status" ] && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.1; done
  [ -f "$1.status" ] || fail "$1: the job was still running $2 s later"
}

# no_processes_left SECONDS: within SECONDS, no process is left in any node
no_processes_left() {
  local deadline=$(($(now_ms) + $1 * 1000)) node left
  while :; do
    left=""
    for node in $(nodes names); do
      # ps fails for a process that ended meanwhile
      left+=$(nodes pids "$node" | xargs -r ps -o pid=,comm= -p | sed "s/^ */$node:/" | tr '\n' ' ' || true)
    done
    [ -z "$left" ] && return 0
    [ "$(now_ms)" -ge "$deadline" ] && break
    sleep 0.2
  done
  fail "processes left in the nodes $1 s later: $left"
}
