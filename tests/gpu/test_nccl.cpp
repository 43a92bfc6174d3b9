// The NCCL communicator (nccl_communicator.h) on one GPU per rank. Every rank contributes values
// that depend on its rank and on the element, chosen so that sums are exact in float: a sum
// checked element by element fails for an average, for a reduction that mixes up elements or
// ranks, and, with two or more ranks, for one that does nothing. One rank (ctest's test_nccl)
// cannot tell a sum from a no-op, but still checks what a one-rank communicator can get wrong:
// its rank and size, ordering with the backend's stream, every data type, odd counts at odd
// offsets with the elements around them untouched, broadcast sizes and roots, and polling.
// tests/gpu/test_nccl_ranks.sh runs this program on two ranks when two GPUs are visible.
#define BOOST_TEST_MODULE nccl
#define BOOST_TEST_NO_MAIN
#define BOOST_TEST_ALTERNATIVE_INIT_API
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "gpu_main.h"
#include "textscale/cuda/cuda_backend.h"
#include "textscale/cuda/nccl_communicator.h"
#include "textscale/engine/buffer.h"

using namespace textscale;

int main(int argc, char* argv[]) {
  return gpu_test_main(argc, argv);
}

namespace {

// This rank's GPU (its local rank, one GPU per rank), its backend and an NCCL communicator.
struct Ranks {
  dist::World& world = dist::init_world();
  std::unique_ptr<engine::Backend<float>> backend =
      cuda::make_cuda_backend({world.local_rank % cuda::device_count(), cuda::Precision::fp32});
  std::shared_ptr<dist::Communicator> nccl = cuda::make_nccl_communicator(*world.comm, *backend, 60);
  const engine::Memory& memory = backend->memory();
  int rank = nccl->rank(), size = nccl->size();

  template <typename T>
  engine::Buffer<T> upload(const std::vector<T>& host) {
    engine::Buffer<T> b(host.size(), memory);
    memory.copy_to_device(b.data(), host.data(), host.size() * sizeof(T));
    return b;
  }
  template <typename T>
  std::vector<T> download(const engine::Buffer<T>& b) {
    std::vector<T> host(b.size());
    memory.copy_to_host(host.data(), b.data(), host.size() * sizeof(T));
    return host;
  }
};

// Rank r's element i: an integer below 2^20 in magnitude, different for every (r, i) nearby, so
// that sums over up to 16 ranks are exact in float.
float contribution(int rank, std::size_t i) {
  return static_cast<float>((rank + 1) * 4096 + static_cast<int>(i % 4093)) * (i % 2 ? -1.0f : 1.0f);
}
float sum_over_ranks(int size, std::size_t i) {
  float sum = 0;
  for (int r = 0; r < size; ++r) sum += contribution(r, i);
  return sum;
}
constexpr float kGuard = -12345.0f;  // the elements around a reduced range keep it

}  // namespace

BOOST_AUTO_TEST_CASE(ranks_and_sizes) {
  Ranks r;
  BOOST_TEST(r.nccl->name() == "nccl");
  BOOST_TEST(r.size == r.world.size);
  BOOST_TEST(r.rank == r.world.rank);
  BOOST_TEST((r.rank >= 0 && r.rank < r.size));
  std::vector<std::uint64_t> ranks;
  for (int i = 0; i < r.size; ++i) ranks.push_back(static_cast<std::uint64_t>(i) * 1000 + 7);
  BOOST_TEST((r.nccl->allgather(static_cast<std::uint64_t>(r.rank) * 1000 + 7) == ranks), "every rank, in rank order");
  r.nccl->barrier();
}

// Sums of `count` floats starting `offset` elements into a buffer, for counts below, at and past
// the sizes NCCL splits its work at, odd ones included; the guard elements around the range stay.
BOOST_AUTO_TEST_CASE(sums_of_odd_sizes_at_odd_offsets) {
  Ranks r;
  for (const std::size_t count : {std::size_t{1}, std::size_t{7}, std::size_t{4097}, std::size_t{(1 << 20) + 3}})
    for (const std::size_t offset : {std::size_t{0}, std::size_t{1}, std::size_t{33}}) {
      BOOST_TEST_CONTEXT("count " << count << ", offset " << offset) {
        std::vector<float> host(offset + count + 5, kGuard);
        for (std::size_t i = 0; i < count; ++i) host[offset + i] = contribution(r.rank, i);
        auto data = r.upload(host);
        r.nccl->allreduce(data.data() + offset, count, dist::ReduceOp::sum);
        const auto got = r.download(data);
        std::size_t wrong = 0, first_wrong = count;
        for (std::size_t i = 0; i < count; ++i)
          if (got[offset + i] != sum_over_ranks(r.size, i) && wrong++ == 0) first_wrong = i;
        BOOST_TEST(wrong == 0u, wrong << " wrong sums, the first at " << first_wrong << ": "
                                      << (first_wrong < count ? got[offset + first_wrong] : 0.0f) << " instead of "
                                      << (first_wrong < count ? sum_over_ranks(r.size, first_wrong) : 0.0f));
        for (std::size_t i = 0; i < offset; ++i) BOOST_TEST(got[i] == kGuard, "element " << i << " before the range");
        for (std::size_t i = offset + count; i < got.size(); ++i)
          BOOST_TEST(got[i] == kGuard, "element " << i << " after the range");
      }
    }
}

// The collectives run on a stream of their own, ordered after the backend's queued work, and the
// backend's later work follows them.
BOOST_AUTO_TEST_CASE(ordered_with_the_backend) {
  Ranks r;
  const std::size_t count = 1000;
  std::vector<float> host(count);
  for (std::size_t i = 0; i < count; ++i) host[i] = contribution(r.rank, i);
  auto data = r.upload(host);
  // Queued behind backend work on the same data: the all-reduce must see the doubled values.
  r.backend->scale(static_cast<engine::Index>(count), data.data(), 2.0);
  const dist::Handle h = r.nccl->allreduce_async(data.data(), count, dist::Wire::fp32);
  r.nccl->wait(h);
  r.backend->scale(static_cast<engine::Index>(count), data.data(), 0.5);  // after the reduction
  std::vector<float> want(count);
  for (std::size_t i = 0; i < count; ++i) want[i] = sum_over_ranks(r.size, i);
  BOOST_TEST((r.download(data) == want), "2 x each contribution summed, then halved");

  // A handle that test() saw finish needs no wait (the reducer does not wait for such buckets).
  r.memory.copy_to_device(data.data(), host.data(), count * sizeof(float));
  const dist::Handle polled = r.nccl->allreduce_async(data.data(), count, dist::Wire::fp32);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!r.nccl->test(polled))
    if (std::chrono::steady_clock::now() > deadline) BOOST_FAIL("an all-reduce did not finish in 30 s");
  BOOST_TEST(r.nccl->test(polled));
  BOOST_TEST((r.download(data) == want));
  BOOST_TEST(r.nccl->test(dist::Handle{12345}));  // an unknown (finished) handle
  r.nccl->wait(dist::Handle{12345});
}

// bf16 buckets (--allreduce-precision bf16): the values come back rounded to bf16, within one
// rounding of 2^-8 per rank of the sum of the ranks' magnitudes, and two buckets in flight at
// once (staging memory taken in turn) do not disturb each other.
BOOST_AUTO_TEST_CASE(bf16_wire) {
  Ranks r;
  const std::size_t count = 100003;
  std::vector<float> host(2 * count);
  for (std::size_t i = 0; i < host.size(); ++i) host[i] = contribution(r.rank, i) / 4096.0f;
  auto data = r.upload(host);
  const dist::Handle first = r.nccl->allreduce_async(data.data(), count, dist::Wire::bf16);
  const dist::Handle second = r.nccl->allreduce_async(data.data() + count, count, dist::Wire::bf16);
  r.nccl->wait(second);
  r.nccl->wait(first);
  const std::vector<float> got = r.download(data);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    double magnitude = 0;
    for (int k = 0; k < r.size; ++k) magnitude += std::fabs(contribution(k, i) / 4096.0);
    const double exact = sum_over_ranks(r.size, i) / 4096.0;
    const bool is_bf16 = dist::from_bf16(dist::to_bf16(got[i])) == got[i];
    bad += !is_bf16 || std::fabs(got[i] - exact) > r.size * std::ldexp(magnitude, -8);
  }
  BOOST_TEST(bad == 0u, bad << " of " << got.size() << " elements not bf16 or too far from the sum");
}

// Doubles and 64-bit integers, sum, max and min: values a float reduction would round (2^40 + k,
// 1 + 2^-40), and per-rank extremes at different elements.
BOOST_AUTO_TEST_CASE(every_type_and_operation) {
  Ranks r;
  const auto rank = static_cast<std::int64_t>(r.rank), size = static_cast<std::int64_t>(r.size);
  const std::size_t count = 9;
  std::vector<std::int64_t> ints(count);
  for (std::size_t i = 0; i < count; ++i) ints[i] = (std::int64_t{1} << 40) + rank * 100 + static_cast<std::int64_t>(i);
  auto int_data = r.upload(ints);
  r.nccl->allreduce(int_data.data(), count, dist::ReduceOp::sum);
  std::vector<std::int64_t> int_sums(count);
  for (std::size_t i = 0; i < count; ++i)
    int_sums[i] = size * ((std::int64_t{1} << 40) + static_cast<std::int64_t>(i)) + 100 * size * (size - 1) / 2;
  BOOST_TEST((r.download(int_data) == int_sums), "int64 sums, exact");

  std::vector<double> doubles(count);
  for (std::size_t i = 0; i < count; ++i)
    doubles[i] = (1.0 + std::ldexp(1.0, -40)) * static_cast<double>((rank + 1) * (i % 2 ? -1 : 1)) +
                 static_cast<double>(i) * 0.25;
  for (const auto op : {dist::ReduceOp::sum, dist::ReduceOp::max, dist::ReduceOp::min}) {
    auto d = r.upload(doubles);
    r.nccl->allreduce(d.data(), count, op);
    std::vector<double> want(count);
    for (std::size_t i = 0; i < count; ++i) {
      double sum = 0, max = -std::numeric_limits<double>::infinity(), min = std::numeric_limits<double>::infinity();
      for (int k = 0; k < r.size; ++k) {
        const double v = (1.0 + std::ldexp(1.0, -40)) * static_cast<double>((k + 1) * (i % 2 ? -1 : 1)) +
                         static_cast<double>(i) * 0.25;
        sum += v;
        max = std::max(max, v);
        min = std::min(min, v);
      }
      want[i] = op == dist::ReduceOp::sum ? sum : op == dist::ReduceOp::max ? max : min;
    }
    BOOST_TEST((r.download(d) == want), "double " << (op == dist::ReduceOp::sum   ? "sum"
                                                      : op == dist::ReduceOp::max ? "max"
                                                                                  : "min"));
  }
  // Float max and min.
  std::vector<float> floats(count);
  for (std::size_t i = 0; i < count; ++i) floats[i] = contribution(r.rank, i);
  for (const auto op : {dist::ReduceOp::max, dist::ReduceOp::min}) {
    auto f = r.upload(floats);
    r.nccl->allreduce(f.data(), count, op);
    const auto got = r.download(f);
    for (std::size_t i = 0; i < count; ++i) {
      float want = contribution(0, i);
      for (int k = 1; k < r.size; ++k)
        want = op == dist::ReduceOp::max ? std::max(want, contribution(k, i)) : std::min(want, contribution(k, i));
      BOOST_TEST(got[i] == want, "float " << (op == dist::ReduceOp::max ? "max" : "min") << " at " << i);
    }
  }
}

// Broadcast from the first and from the last rank, of an odd number of bytes inside a larger
// buffer: the root's bytes arrive on every rank, replacing theirs; the bytes after them stay.
BOOST_AUTO_TEST_CASE(broadcast) {
  Ranks r;
  const std::size_t bytes = 1001, total = 1024;
  for (const int root : {0, r.size - 1}) {
    BOOST_TEST_CONTEXT("root " << root) {
      auto pattern = [](int rank, std::size_t i) { return static_cast<std::uint8_t>((rank * 37 + 11 * i + 5) % 251); };
      std::vector<std::uint8_t> host(total);
      for (std::size_t i = 0; i < total; ++i) host[i] = pattern(r.rank, i);
      auto data = r.upload(host);
      r.nccl->broadcast(data.data(), bytes, root);
      const auto got = r.download(data);
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < bytes; ++i) wrong += got[i] != pattern(root, i);
      BOOST_TEST(wrong == 0u, wrong << " bytes are not the root's");
      BOOST_TEST(std::equal(got.begin() + bytes, got.end(), host.begin() + bytes), "the bytes after are untouched");
    }
  }
}
