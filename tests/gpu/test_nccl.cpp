// The NCCL communicator on one GPU (a one-rank communicator: NCCL still runs its kernels, so
// ordering with the backend's stream, handles and data types are exercised). With several GPUs
// the data-parallel equivalence test runs over NCCL (tests/gpu/test_nccl_ranks.sh).
#define BOOST_TEST_MODULE nccl
#define BOOST_TEST_NO_MAIN
#define BOOST_TEST_ALTERNATIVE_INIT_API
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <numeric>
#include <vector>

#include "gpu_main.h"
#include "textscale/cuda/cuda_backend.h"
#include "textscale/cuda/nccl_communicator.h"
#include "textscale/engine/buffer.h"

using namespace textscale;

int main(int argc, char* argv[]) {
  return gpu_test_main(argc, argv);
}

BOOST_AUTO_TEST_CASE(allreduce_on_one_gpu) {
  dist::World& world = dist::init_world();
  auto backend = cuda::make_cuda_backend({0, cuda::Precision::fp32});
  auto nccl = cuda::make_nccl_communicator(*world.comm, *backend, 60);
  BOOST_CHECK_EQUAL(nccl->size(), 1);
  BOOST_CHECK_EQUAL(nccl->name(), "nccl");
  const engine::Memory& memory = backend->memory();
  std::vector<float> host(1000);
  std::iota(host.begin(), host.end(), -500.0f);
  engine::Buffer<float> data(host.size(), memory);
  memory.copy_to_device(data.data(), host.data(), host.size() * sizeof(float));
  // Queued behind backend work on the same data: the all-reduce must see the scaled values.
  backend->scale(static_cast<engine::Index>(host.size()), data.data(), 2.0);
  const dist::Handle h = nccl->allreduce_async(data.data(), host.size());
  nccl->wait(h);
  backend->scale(static_cast<engine::Index>(host.size()), data.data(), 0.5);  // after the reduction
  std::vector<float> got(host.size());
  memory.copy_to_host(got.data(), data.data(), got.size() * sizeof(float));
  BOOST_CHECK(got == host);
  // A handle that test() saw finish needs no wait (the reducer does not wait for such buckets).
  const dist::Handle polled = nccl->allreduce_async(data.data(), host.size());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!nccl->test(polled))
    if (std::chrono::steady_clock::now() > deadline) BOOST_FAIL("an all-reduce on one GPU did not finish in 30 s");
  BOOST_CHECK(nccl->test(polled));
  memory.copy_to_host(got.data(), data.data(), got.size() * sizeof(float));
  BOOST_CHECK(got == host);

  engine::Buffer<double> d(3, memory);
  const std::vector<double> values{1.5, -2.0, 7.0};
  memory.copy_to_device(d.data(), values.data(), 3 * sizeof(double));
  nccl->allreduce(d.data(), 3, dist::ReduceOp::max);
  std::vector<double> back(3);
  memory.copy_to_host(back.data(), d.data(), 3 * sizeof(double));
  BOOST_CHECK(back == values);
  nccl->broadcast(d.data(), 3 * sizeof(double), 0);
  BOOST_CHECK(nccl->test(dist::Handle{12345}));  // an unknown (finished) handle
}
