// The NCCL communicator: gradient all-reduces between GPU ranks, on device memory.
//
// Every pointer given to it is device memory of the backend it was made for (its float, double
// and int64 all-reduces, its broadcast); allgather and barrier carry host values and go through
// the bootstrap communicator (MPI). Collectives run on a stream of their own, ordered after the
// work the backend has queued when they start (an event), and the backend's later work waits for
// them (another event): an all-reduce started from a backward hook overlaps the rest of backward.
//
// Failure: NCCL is initialised non-blocking; every wait polls ncclCommGetAsyncError and gives up
// after the timeout, aborting the communicator (ncclCommAbort) before throwing CommError, so a
// rank whose peer died never hangs inside NCCL.
#pragma once

#include <memory>

#include "textscale/dist/communicator.h"
#include "textscale/engine/backend.h"

namespace textscale::cuda {

// `bootstrap` spreads rank 0's ncclUniqueId (all ranks call this together); `backend` is this
// rank's CUDA backend (make_cuda_backend). `timeout_seconds` bounds every wait (0: none).
[[nodiscard]] std::shared_ptr<dist::Communicator> make_nccl_communicator(dist::Communicator& bootstrap,
                                                                         engine::Backend<float>& backend,
                                                                         double timeout_seconds);

}  // namespace textscale::cuda
