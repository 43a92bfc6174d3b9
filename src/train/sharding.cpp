#include "textscale/train/sharding.h"

#include <random>

#include "textscale/common/error.h"

namespace textscale::train {

ShuffleMode parse_shuffle_mode(const std::string& name) {
  if (name == "rows") return ShuffleMode::rows;
  if (name == "blocks") return ShuffleMode::blocks;
  throw InputError("--shuffle must be rows or blocks, not '" + name + "'");
}

Share rank_share(std::int64_t batch_rows, int rank, int size) {
  const std::int64_t base = batch_rows / size, extra = batch_rows % size;
  return Share{rank * base + std::min<std::int64_t>(rank, extra), base + (rank < extra ? 1 : 0)};
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

std::vector<std::int64_t> epoch_order(std::int64_t rows, std::uint64_t seed, std::int64_t epoch, ShuffleMode mode,
                                      std::int64_t block_rows) {
  if (mode == ShuffleMode::rows || block_rows <= 1) return permutation(rows, seed, epoch);
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
