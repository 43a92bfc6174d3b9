#!/usr/bin/env bash
# Two nodes on this machine, one rank each over TCP; every process of the second node (its rank and
# Open MPI's daemon) is killed with SIGKILL mid-run, as when a node fails. The job ends within 30 s,
# non-zero, with a message naming the lost rank and its host, and leaves no process behind.
source "$(dirname "$0")/lib.sh"
nodes start 2 > nodes.log 2>&1 || { cat nodes.log >&2; exit 1; }

start_job killed 2 "${tiny[@]}" --epochs 1000
wait_for_steps killed
killed_at=$(now_ms)
nodes kill tsnt2
wait_for_end killed 30
took=$(($(now_ms) - killed_at))
echo "the job ended $((took / 1000)).$((took % 1000 / 100)) s after its node was killed"
[ "$(cat killed.status 2> /dev/null)" != 0 ] || fail "the job exited 0"
grep -qE "\[rank 0/2\] (error|failure detector): lost rank 1 on tsnt2 \(pid [0-9]+\)" killed.log ||
  { fail "no message naming the lost rank 1 on tsnt2:"; grep -v '^epoch' killed.log | tail -40 >&2; }
# What the job said (for the record): textscale's lines, and Open MPI's headlines.
grep -E "^\[rank|lost communication|ORTE|unexpectedly disconnected|MPI_ABORT" killed.log | sort -u | sed 's/^/  | /' || true
no_processes_left 5
echo "no process left in the nodes $((($(now_ms) - killed_at) / 1000)) s after the kill"
finish
