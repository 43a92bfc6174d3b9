#!/usr/bin/env bash
# Two nodes on this machine (jobs/slurm/local-nodes.sh), one rank each, over TCP: the weights equal
# one process's to 1e-5 (the same global batch and dropout masks; only the order of the sums
# differs), the ranks ran under different hostnames, and their MPI traffic went over the TCP BTL
# between the nodes' addresses (shared memory is not even loaded).
source "$(dirname "$0")/lib.sh"
nodes start 2 > nodes.log 2>&1 || { cat nodes.log >&2; exit 1; }

nodes exec tsnt1 "$TEXTSCALE_BIN" train "${tiny[@]}" --epochs 2 --run-dir one > one.log 2>&1 ||
  { fail "one process in tsnt1 failed:"; tail -20 one.log >&2; }
nodes mpirun -np 2 --map-by node --bind-to none --mca btl_base_verbose 100 "$TEXTSCALE_BIN" train "${tiny[@]}" \
  --epochs 2 --run-dir two > two.log 2>&1 || { fail "2 nodes x 1 rank failed:"; grep -v 'btl\|mca:' two.log | tail -20 >&2; }

for group in /parameters /optimizer; do
  h5diff -d 1e-5 one/checkpoint.h5 two/checkpoint.h5 "$group" "$group" > diff.txt 2>&1 ||
    { fail "1 process vs 2 nodes: $group differ by more than 1e-5"; head -5 diff.txt >&2; }
done
py - two/config.json <<'PY' || fail "the ranks did not run on tsnt1 and tsnt2"
import json, sys
config = json.load(open(sys.argv[1]))
assert config["world_size"] == 2 and config["hosts"] == ["tsnt1", "tsnt2"], config.get("hosts")
PY
expect_in two.log "2 ranks (mpi)"
expect_in two.log "ranks by host: tsnt1: 0; tsnt2: 1"
# Open MPI's own account (btl_base_verbose): each rank reaches the other through the TCP BTL, at
# the other node's address; vader (shared memory) is neither loaded nor used.
grep -qE '^\[tsnt2:[0-9]+\] mca: bml: Using tcp btl for send to \[\[[0-9]+,1\],0\] on node tsnt1' two.log ||
  fail "rank 1 did not send to rank 0 over TCP"
grep -qE '^\[tsnt1:[0-9]+\] mca: bml: Using tcp btl for send to \[\[[0-9]+,1\],1\] on node tsnt2' two.log ||
  fail "rank 0 did not send to rank 1 over TCP"
# One TCP connection between the two, opened by whichever rank sends first, to the other's address.
grep -qE 'connect\(\) to 10\.77\.1\.[12]:[0-9]+ completed' two.log || fail "no TCP connection between 10.77.1.1 and 10.77.1.2"
grep -q vader two.log && fail "the shared-memory BTL (vader) appears in the log: $(grep -m2 vader two.log)"
finish
