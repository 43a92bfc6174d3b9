#include "textscale/train/sharding.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "textscale/common/error.h"

namespace textscale::train {

ShuffleMode parse_shuffle_mode(const std::string& name) {
  if (name == "rows") return ShuffleMode::rows;
  if (name == "blocks") return ShuffleMode::blocks;
  throw OptionError("--shuffle must be rows or blocks, not '" + name + "'");
}

Share rank_share(std::int64_t batch_rows, int rank, int size) {
  const std::int64_t base = batch_rows / size, extra = batch_rows % size;
  return Share{rank * base + std::min<std::int64_t>(rank, extra), base + (rank < extra ? 1 : 0)};
}

std::vector<Share> weighted_shares(std::int64_t rows, const std::vector<double>& weights, std::int64_t cap) {
  const auto size = static_cast<std::int64_t>(weights.size());
  if (size == 0) throw Error("weighted_shares: no ranks");
  if (cap * size < rows)
    throw Error("weighted_shares: " + std::to_string(size) + " ranks of at most " + std::to_string(cap) +
                " rows cannot hold " + std::to_string(rows));
  double total = 0;
  for (double w : weights) total += w > 0 && std::isfinite(w) ? w : 0;
  const std::int64_t low = rows >= size ? 1 : 0;
  std::vector<double> target(weights.size());
  std::vector<std::int64_t> count(weights.size());
  std::int64_t assigned = 0;
  for (std::size_t r = 0; r < weights.size(); ++r) {
    const double w = weights[r] > 0 && std::isfinite(weights[r]) ? weights[r] : 0;
    target[r] =
        total > 0 ? static_cast<double>(rows) * w / total : static_cast<double>(rows) / static_cast<double>(size);
    count[r] = std::clamp(static_cast<std::int64_t>(std::floor(target[r])), low, cap);
    assigned += count[r];
  }
  // Rows left over (or too many, after raising ranks to `low`): one at a time to (from) the rank
  // furthest below (above) its target.
  while (assigned != rows) {
    const bool add = assigned < rows;
    std::size_t best = weights.size();
    for (std::size_t r = 0; r < weights.size(); ++r) {
      if (add ? count[r] >= cap : count[r] <= low) continue;
      const double gap = target[r] - static_cast<double>(count[r]);
      if (best == weights.size() || (add ? gap > target[best] - static_cast<double>(count[best])
                                         : gap < target[best] - static_cast<double>(count[best])))
        best = r;
    }
    if (best == weights.size()) throw Error("weighted_shares: no rank can take the rows left over");
    count[best] += add ? 1 : -1;
    assigned += add ? 1 : -1;
  }
  std::vector<Share> shares(weights.size());
  std::int64_t offset = 0;
  for (std::size_t r = 0; r < weights.size(); ++r) {
    shares[r] = Share{offset, count[r]};
    offset += count[r];
  }
  return shares;
}

namespace {

std::vector<std::int64_t> permutation(std::int64_t count, std::uint64_t seed, std::int64_t epoch) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) order[static_cast<std::size_t>(i)] = i;
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ULL + static_cast<std::uint64_t>(epoch) + 1);
  for (std::int64_t i = count - 1; i > 0; --i) {
    const std::uint64_t bound = static_cast<std::uint64_t>(i) + 1;
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    std::uint64_t draw;
    do draw = rng();
    while (draw >= limit);
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(draw % bound)]);
  }
  return order;
}

}  // namespace

std::vector<std::int64_t> bucket_by_length(std::vector<std::int64_t> order, const std::vector<std::int32_t>& lengths,
                                           std::int64_t batch, std::uint64_t seed, std::int64_t epoch,
                                           std::int64_t pool_batches) {
  const auto rows = static_cast<std::int64_t>(order.size());
  batch = std::max<std::int64_t>(batch, 1);
  const std::int64_t pool = batch * std::max<std::int64_t>(pool_batches, 1);
  for (std::int64_t begin = 0; begin < rows; begin += pool) {
    const auto first = order.begin() + begin, last = order.begin() + std::min(rows, begin + pool);
    std::stable_sort(first, last, [&](std::int64_t a, std::int64_t b) {
      return lengths[static_cast<std::size_t>(a)] < lengths[static_cast<std::size_t>(b)];
    });
  }
  // The full batches in a random order (a draw of its own: not the row permutation's), the
  // partial one last, where the trainer expects it.
  const std::int64_t full = rows / batch;
  const auto batch_order = permutation(full, ~seed, epoch);
  std::vector<std::int64_t> bucketed;
  bucketed.reserve(order.size());
  for (std::int64_t b : batch_order)
    bucketed.insert(bucketed.end(), order.begin() + b * batch, order.begin() + (b + 1) * batch);
  bucketed.insert(bucketed.end(), order.begin() + full * batch, order.end());
  return bucketed;
}

std::vector<std::int64_t> epoch_order(std::int64_t rows, std::uint64_t seed, std::int64_t epoch, ShuffleMode mode,
                                      std::int64_t block_rows) {
  if (mode == ShuffleMode::rows || block_rows <= 1) return permutation(rows, seed, epoch);
  block_rows = std::min(block_rows, std::max<std::int64_t>(rows, 1));  // one block at most: no overflow below
  const std::int64_t blocks = (rows + block_rows - 1) / block_rows;
  const auto block_order = permutation(blocks, seed, epoch);
  std::vector<std::int64_t> order;
  order.reserve(static_cast<std::size_t>(rows));
  for (std::int64_t block : block_order)
    for (std::int64_t row = block * block_rows; row < std::min(rows, (block + 1) * block_rows); ++row)
      order.push_back(row);
  return order;
}

}  // namespace textscale::train
