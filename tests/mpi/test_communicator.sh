#!/usr/bin/env bash
# The MPI communicator's own test (tests/mpi/test_communicator.cpp) under mpirun on 1, 2 and 3
# ranks: sums differ from a single process's only with two or more.
source "$(dirname "$0")/../cli/lib.sh"
command -v mpirun > /dev/null || { echo "SKIP: no mpirun (apt-get install openmpi-bin)"; exit 77; }
[ -x "${TEXTSCALE_TEST_COMMUNICATOR:-}" ] || { echo "FAIL: TEXTSCALE_TEST_COMMUNICATOR is not the test program"; exit 1; }
cd "$WORK"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for np in 1 2 3; do
  mpirun --oversubscribe --bind-to none -np "$np" "$TEXTSCALE_TEST_COMMUNICATOR" > "np$np.log" 2>&1 ||
    { fail "test_communicator on $np ranks failed"; tail -20 "np$np.log" >&2; }
done
finish
