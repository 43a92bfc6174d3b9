#!/usr/bin/env bash
# Two nodes on this machine, one rank each over TCP; the second node's link is cut mid-run (its
# veth set down: nothing is closed, packets just stop). Each rank's collective times out after
# --comm-timeout 10 s, naming the rank it no longer hears from; the job ends within
# --comm-timeout + 30 s and no process is left in either node (Open MPI's daemons give up on
# each other once TCP does: local-nodes.sh lowers tcp_retries2 in the nodes).
source "$(dirname "$0")/lib.sh"
nodes start 2 > nodes.log 2>&1 || { cat nodes.log >&2; exit 1; }

start_job cut 2 "${tiny[@]}" --epochs 1000 --comm-timeout 10
wait_for_steps cut
cut_at=$(now_ms)
nodes link tsnt2 down
wait_for_end cut 40
took=$(($(now_ms) - cut_at))
echo "the job ended $((took / 1000)).$((took % 1000 / 100)) s after the link was cut"
[ "$(cat cut.status 2> /dev/null)" != 0 ] || fail "the job exited 0"
# The timeout names the rank it no longer hears from; should TCP give up on the failure
# detector's connection first, the loss is reported naming the rank too.
grep -qE "\[rank 0/2\] error: (a collective did not complete within 10 s \(--comm-timeout\).*no heartbeat from rank 1 on tsnt2|lost rank 1 on tsnt2)" cut.log ||
  { fail "no message naming rank 1 on tsnt2:"; tail -20 cut.log >&2; }
# What the job said (for the record): textscale's lines, and Open MPI's headlines.
grep -E "^\[rank|lost communication|ORTE|unexpectedly disconnected|MPI_ABORT" cut.log | sort -u | sed 's/^/  | /' || true
no_processes_left $((40 - took / 1000))
echo "no process left in the nodes $((($(now_ms) - cut_at) / 1000)) s after the link was cut"
finish
