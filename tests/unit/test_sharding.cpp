// Data-parallel sharding: over an epoch every training row is visited exactly once across all
// ranks, whatever the world size, batch size and dataset size (also when they do not divide
// evenly, and when a batch is smaller than the world); the order does not depend on the number
// of ranks; block shuffling keeps blocks contiguous. The gradient reducer's buckets cover the
// flat buffer exactly once, in order from its end. --balance's weighted shares tile a batch in
// proportion to the ranks' speeds, within their bounds.
#define BOOST_TEST_MODULE sharding
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include "textscale/common/error.h"
#include "textscale/dist/communicator.h"
#include "textscale/dist/reducer.h"
#include "textscale/train/sharding.h"

using namespace textscale;

BOOST_AUTO_TEST_CASE(every_row_once_per_epoch_for_any_world_size) {
  for (const std::int64_t rows : {1, 7, 100, 1001}) {
    for (const std::int64_t batch : {1, 5, 32, 128}) {
      for (const int size : {1, 2, 3, 4, 7, 8}) {
        for (const auto mode : {train::ShuffleMode::rows, train::ShuffleMode::blocks}) {
          const auto order = train::epoch_order(rows, 42, 3, mode, 16);
          BOOST_REQUIRE_EQUAL(order.size(), static_cast<std::size_t>(rows));
          std::vector<int> seen(static_cast<std::size_t>(rows), 0);
          for (std::int64_t begin = 0; begin < rows; begin += batch) {
            const std::int64_t n = std::min(batch, rows - begin);
            std::int64_t next = 0;  // the slices tile the batch in rank order
            for (int r = 0; r < size; ++r) {
              const auto share = train::rank_share(n, r, size);
              BOOST_REQUIRE_EQUAL(share.offset, next);
              BOOST_REQUIRE(share.count == n / size || share.count == n / size + 1);
              next += share.count;
              for (std::int64_t i = 0; i < share.count; ++i)
                ++seen[static_cast<std::size_t>(order[static_cast<std::size_t>(begin + share.offset + i)])];
            }
            BOOST_REQUIRE_EQUAL(next, n);
          }
          for (int count : seen) BOOST_REQUIRE_EQUAL(count, 1);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(weighted_shares_tile_the_batch_in_proportion) {
  // Proportional, contiguous, complete.
  auto s = train::weighted_shares(128, {3.0, 1.0}, 128);
  BOOST_TEST(s[0].offset == 0);
  BOOST_TEST(s[0].count == 96);
  BOOST_TEST(s[1].offset == 96);
  BOOST_TEST(s[1].count == 32);
  // Equal weights give rank_share's split; the remainder goes to the lower ranks.
  for (std::int64_t rows : {22, 7, 128})
    for (int size : {1, 2, 3, 5}) {
      const auto shares = train::weighted_shares(rows, std::vector<double>(static_cast<std::size_t>(size), 2.5), rows);
      for (int r = 0; r < size; ++r) {
        const train::Share even = train::rank_share(rows, r, size);
        BOOST_TEST(shares[static_cast<std::size_t>(r)].offset == even.offset);
        BOOST_TEST(shares[static_cast<std::size_t>(r)].count == even.count);
      }
    }
  // The cap holds and the rest moves to the others; every rank keeps a row when there are enough.
  s = train::weighted_shares(128, {100.0, 1.0, 1.0}, 64);
  BOOST_TEST(s[0].count == 64);
  BOOST_TEST(s[1].count + s[2].count == 64);
  s = train::weighted_shares(10, {1e9, 1.0, 0.0, std::nan("")}, 10);
  BOOST_TEST(s[0].count == 7);
  for (std::size_t r = 1; r < 4; ++r) BOOST_TEST(s[r].count == 1);
  // A batch smaller than the world: some ranks get nothing, the sum still holds.
  s = train::weighted_shares(2, {1.0, 1.0, 1.0}, 2);
  BOOST_TEST(s[0].count + s[1].count + s[2].count == 2);
  BOOST_TEST(s[2].offset + s[2].count == 2);
  BOOST_CHECK_THROW(train::weighted_shares(10, {1.0, 1.0}, 4), textscale::Error);
}

BOOST_AUTO_TEST_CASE(order_depends_on_seed_and_epoch_only) {
  const auto a = train::epoch_order(500, 1, 0);
  BOOST_TEST(a == train::epoch_order(500, 1, 0));
  BOOST_TEST(a != train::epoch_order(500, 1, 1));
  BOOST_TEST(a != train::epoch_order(500, 2, 0));
  // Blocks of 16 consecutive rows stay together and in order.
  const auto blocks = train::epoch_order(100, 1, 0, train::ShuffleMode::blocks, 16);
  for (std::size_t i = 0; i < blocks.size(); ++i)
    if (blocks[i] % 16 != 0) BOOST_REQUIRE_EQUAL(blocks[i], blocks[i - 1] + 1);
  BOOST_CHECK_THROW(train::parse_shuffle_mode("random"), OptionError);
}

// A communicator that records what it is asked to reduce.
class Recorder final : public dist::Communicator {
 public:
  std::vector<std::pair<const float*, std::size_t>> started;
  std::vector<std::int32_t> other;  // the rows the other rank touched (allgatherv)
  [[nodiscard]] int rank() const override { return 0; }
  [[nodiscard]] int size() const override { return 2; }
  [[nodiscard]] std::string name() const override { return "recorder"; }
  void allreduce(float*, std::size_t, dist::ReduceOp) override {}
  void allreduce(double*, std::size_t, dist::ReduceOp) override {}
  void allreduce(std::int64_t*, std::size_t, dist::ReduceOp) override {}
  dist::Handle allreduce_async(float* data, std::size_t count, dist::Wire) override {
    started.emplace_back(data, count);
    return {static_cast<std::int64_t>(started.size())};
  }
  bool test(dist::Handle) override { return false; }
  void wait(dist::Handle) override {}
  void broadcast(void*, std::size_t, int) override {}
  std::vector<std::uint64_t> allgather(std::uint64_t v) override { return {v, v}; }
  // Two ranks: this one and one that touched rows `other`.
  std::vector<std::int32_t> allgatherv(const std::vector<std::int32_t>& values) override {
    std::vector<std::int32_t> all = values;
    all.insert(all.end(), other.begin(), other.end());
    return all;
  }
  std::vector<std::string> gather(const std::string& bytes, int) override { return {bytes, bytes}; }
  void barrier() override {}
};

BOOST_AUTO_TEST_CASE(buckets_start_when_ready_and_cover_the_buffer) {
  std::vector<float> grads(1000);
  Recorder comm;
  dist::GradientReducer reducer(comm, grads.data(), 1000, 300);
  BOOST_TEST(reducer.buckets() == 4u);  // [700,1000) [400,700) [100,400) [0,100)
  reducer.begin();
  reducer.ready_from(800);  // nothing complete yet
  BOOST_TEST(comm.started.size() == 0u);
  reducer.ready_from(650);  // [700, 1000) is final
  BOOST_REQUIRE(comm.started.size() == 1u);
  BOOST_TEST(comm.started[0].first == grads.data() + 700);
  BOOST_TEST(comm.started[0].second == 300u);
  reducer.ready_from(100);  // two more
  BOOST_TEST(comm.started.size() == 3u);
  reducer.finish();  // the rest
  BOOST_REQUIRE(comm.started.size() == 4u);
  BOOST_TEST(comm.started[3].first == grads.data());
  BOOST_TEST(comm.started[3].second == 100u);
  // One bucket: nothing starts before finish().
  Recorder single;
  dist::GradientReducer whole(single, grads.data(), 1000, 0);
  whole.begin();
  whole.ready_from(0);
  BOOST_TEST(single.started.size() == 0u);
  whole.finish();
  BOOST_TEST(single.started.size() == 1u);
  // Each bucket is shown to on_start (where the trainer checks it for NaNs) before it is sent.
  Recorder checked;
  dist::GradientReducer reducer2(checked, grads.data(), 1000, 300);
  std::vector<std::tuple<std::size_t, const float*, engine::Index, std::size_t>> seen;  // + sends before
  reducer2.on_start(
      [&](std::size_t i, const float* d, engine::Index n) { seen.emplace_back(i, d, n, checked.started.size()); });
  for (int step = 0; step < 2; ++step) {
    seen.clear();
    reducer2.begin();
    reducer2.ready_from(400);
    BOOST_TEST(seen.size() == 2u);
    reducer2.finish();
    BOOST_REQUIRE(seen.size() == 4u);
    for (std::size_t i = 0; i < 4; ++i) {
      BOOST_TEST(std::get<0>(seen[i]) == i);
      BOOST_TEST(std::get<3>(seen[i]) == 4 * static_cast<std::size_t>(step) + i);  // checked, then sent
    }
    BOOST_TEST(std::get<1>(seen[1]) == grads.data() + 400);
    BOOST_TEST(std::get<2>(seen[1]) == 300);
    BOOST_TEST(std::get<1>(seen[3]) == grads.data());
    BOOST_TEST(std::get<2>(seen[3]) == 100);
  }
}

// A row-sparse range (an embedding table's gradient) is left out of the buckets; after backward
// the union of the ranks' rows is packed, sent as the last bucket, unpacked, and listed.
BOOST_AUTO_TEST_CASE(row_sparse_range_sends_the_union_of_the_rows) {
  // [0, 100) dense, a 50 x 4 table at [100, 300), [300, 1000) dense.
  std::vector<float> grads(1000, 0.0f);
  std::vector<std::int32_t> rows{3, 7, 49};
  for (const std::int32_t row : rows)
    for (int e = 0; e < 4; ++e) grads[static_cast<std::size_t>(100 + row * 4 + e)] = static_cast<float>(row + e);
  Recorder comm;
  comm.other = {0, 7, 12};
  dist::GradientReducer reducer(comm, grads.data(), 1000, 300, {{100, 50, 4, &rows}});
  BOOST_TEST(reducer.buckets() == 5u);  // [700,1000) [400,700) [300,400) [0,100), then the table
  std::vector<std::pair<std::size_t, std::vector<float>>> seen;
  reducer.on_start(
      [&](std::size_t i, const float* d, engine::Index n) { seen.emplace_back(i, std::vector(d, d + n)); });
  reducer.begin();
  reducer.ready_from(300);  // the dense buckets above the table
  BOOST_REQUIRE(comm.started.size() == 3u);
  BOOST_TEST(comm.started[2].first == grads.data() + 300);
  BOOST_TEST(comm.started[2].second == 100u);
  reducer.finish();
  BOOST_REQUIRE(comm.started.size() == 5u);
  BOOST_TEST(comm.started[3].first == grads.data());
  BOOST_TEST(comm.started[3].second == 100u);
  BOOST_TEST(comm.started[4].second == 20u);  // the union {0, 3, 7, 12, 49}, 4 elements each
  BOOST_TEST((rows == std::vector<std::int32_t>{0, 3, 7, 12, 49}));
  BOOST_REQUIRE(seen.size() == 5u);
  BOOST_TEST(seen[4].first == 4u);
  const std::vector<float> packed{0, 0, 0, 0, 3, 4, 5, 6, 7, 8, 9, 10, 0, 0, 0, 0, 49, 50, 51, 52};
  BOOST_TEST((seen[4].second == packed));
  BOOST_TEST(reducer.sparse_elements() == 20);
  // Unpacked where they came from (this recorder sums nothing): the table is unchanged.
  for (int row = 0; row < 50; ++row)
    for (int e = 0; e < 4; ++e) {
      const bool touched = row == 3 || row == 7 || row == 49;
      BOOST_TEST(grads[static_cast<std::size_t>(100 + row * 4 + e)] == (touched ? static_cast<float>(row + e) : 0.0f));
    }
}

// Bucketing keeps a permutation of the rows, makes batches of similar lengths, keeps the partial
// batch last, and depends on (seed, epoch) only.
BOOST_AUTO_TEST_CASE(bucket_by_length_groups_similar_rows) {
  const std::int64_t rows = 1003, batch = 10;
  std::vector<std::int32_t> lengths(rows);
  std::mt19937_64 rng(5);
  for (auto& l : lengths) l = static_cast<std::int32_t>(rng() % 300);
  const auto order = train::epoch_order(rows, 7, 2);
  const auto bucketed = train::bucket_by_length(order, lengths, batch, 7, 2, 20);
  BOOST_TEST(bucketed.size() == order.size());
  auto sorted = bucketed;
  std::sort(sorted.begin(), sorted.end());
  for (std::int64_t i = 0; i < rows; ++i) BOOST_TEST(sorted[static_cast<std::size_t>(i)] == i);
  // Within a batch the spread of lengths is far below the spread of a random batch.
  double bucketed_spread = 0, random_spread = 0;
  auto spread = [&](const std::vector<std::int64_t>& o, std::int64_t b) {
    std::int32_t lo = 1 << 30, hi = -1;
    for (std::int64_t i = b * batch; i < (b + 1) * batch; ++i) {
      lo = std::min(lo, lengths[static_cast<std::size_t>(o[static_cast<std::size_t>(i)])]);
      hi = std::max(hi, lengths[static_cast<std::size_t>(o[static_cast<std::size_t>(i)])]);
    }
    return static_cast<double>(hi - lo);
  };
  for (std::int64_t b = 0; b < rows / batch; ++b) {
    bucketed_spread += spread(bucketed, b);
    random_spread += spread(order, b);
  }
  BOOST_TEST(bucketed_spread * 5 < random_spread, "bucketed " << bucketed_spread << ", random " << random_spread);
  // The partial batch stays last: 1003 rows in pools of 200 leave a last pool of the order's last 3
  // rows, which are the partial batch. The batch order is shuffled (not ascending in length).
  std::vector<std::int64_t> tail(bucketed.end() - 3, bucketed.end());
  std::vector<std::int64_t> pooled_tail(order.end() - 3, order.end());
  std::sort(tail.begin(), tail.end());
  std::sort(pooled_tail.begin(), pooled_tail.end());
  BOOST_TEST(tail == pooled_tail);
  BOOST_TEST(bucketed != train::bucket_by_length(order, lengths, batch, 7, 3, 20));
  BOOST_TEST(bucketed == train::bucket_by_length(order, lengths, batch, 7, 2, 20));
  bool ascending = true;
  for (std::int64_t b = 1; b < rows / batch; ++b)
    ascending = ascending && lengths[static_cast<std::size_t>(bucketed[static_cast<std::size_t>(b * batch)])] >=
                                 lengths[static_cast<std::size_t>(bucketed[static_cast<std::size_t>((b - 1) * batch)])];
  BOOST_TEST(!ascending);
}

// --bucket-mb auto: sqrt(gradient x fixed cost / cost per element), a power of two of MiB within
// [1, 64] MiB, never more than the gradient.
BOOST_AUTO_TEST_CASE(bucket_size_from_the_measured_cost) {
  constexpr engine::Index mib = 1024 * 1024 / 4;  // elements of a MiB of floats
  // 11.3 M elements, 20 us + 1 ns an element: sqrt(2.26e11) = 475 k elements, 1.8 MiB -> 2 MiB.
  BOOST_TEST(dist::choose_bucket_elements(11'337'988, {20e-6, 1e-9}) == 2 * mib);
  // 400 us a message (a slow network's latency) and 0.1 ns an element: 213 MiB -> at most 64.
  BOOST_TEST(dist::choose_bucket_elements(100'000'000, {400e-6, 1e-10}) == 64 * mib);
  // 1 us and 1 ns: 0.4 MiB -> at least 1; a fixed cost measured negative (noise) -> 1 MiB.
  BOOST_TEST(dist::choose_bucket_elements(11'337'988, {1e-6, 1e-9}) == mib);
  BOOST_TEST(dist::choose_bucket_elements(11'337'988, {-5e-6, 1e-9}) == mib);
  // No cost per element measured: as large as allowed.
  BOOST_TEST(dist::choose_bucket_elements(100'000'000, {20e-6, 0}) == 64 * mib);
  // A gradient smaller than the bucket: one bucket of the gradient.
  BOOST_TEST(dist::choose_bucket_elements(1000, {20e-6, 1e-9}) == 1000);
}
