// The data order of an epoch and how a global batch is split across ranks.
//
// The order depends only on (seed, epoch, rows, mode), never on the number of ranks, and global
// batch b is order[b * B, (b + 1) * B) for every world size: a run's sample order and optimisation
// are those of one process with the same global batch B, and a checkpoint resumes on any number of
// ranks at the same place. Rank r takes a contiguous slice of each batch (rank_share), so the
// slices of all ranks tile the batch exactly; a last, partial batch is split the same way (a rank
// may get no rows when the batch is smaller than the world).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace textscale::train {

// rows: a permutation of all rows (reads are scattered: one small read per row);
// blocks: a permutation of blocks of `block_rows` consecutive rows (reads are contiguous runs,
// cheaper on large or compressed files; samples from one block train together).
enum class ShuffleMode { rows, blocks };
ShuffleMode parse_shuffle_mode(const std::string& name);

struct Share {
  std::int64_t offset = 0;  // first row of the batch this rank takes
  std::int64_t count = 0;
};

// Rank `rank`'s slice of a batch of `batch_rows`: batch_rows / size rows each, and one more for
// the first batch_rows % size ranks.
Share rank_share(std::int64_t batch_rows, int rank, int size);

// --balance: shares of a batch of `rows` in proportion to `weights` (one per rank, e.g. each
// rank's measured samples/s), each between min(1, rows / size) and `cap` rows (cap * size >=
// rows), contiguous in rank order. Rank r's target is rows * w_r / sum(w); each rank takes the
// target rounded down, and the remaining rows go one at a time to the rank furthest below its
// target (the lowest rank on ties). Every rank computes the same split from the same weights.
std::vector<Share> weighted_shares(std::int64_t rows, const std::vector<double>& weights, std::int64_t cap);

// The visiting order of epoch `epoch` (0-based) of `rows` rows. Fisher-Yates over mt19937_64 with
// rejection sampling: the same on every platform and standard library.
std::vector<std::int64_t> epoch_order(std::int64_t rows, std::uint64_t seed, std::int64_t epoch,
                                      ShuffleMode mode = ShuffleMode::rows, std::int64_t block_rows = 1);

// --bucket-by-length: `order` (an epoch_order) regrouped so that each global batch of `batch`
// rows holds rows of similar length: consecutive pools of `pool_batches` batches are each sorted
// by length (stable: ties keep their random order) and cut into batches, and the full batches
// are then visited in a random order drawn from (seed, epoch); the partial batch stays last. The
// result is a permutation of `order`, the same for every number of ranks. `lengths[row]`: the
// row's real words.
inline constexpr std::int64_t kBucketPoolBatches = 50;
std::vector<std::int64_t> bucket_by_length(std::vector<std::int64_t> order, const std::vector<std::int32_t>& lengths,
                                           std::int64_t batch, std::uint64_t seed, std::int64_t epoch,
                                           std::int64_t pool_batches = kBucketPoolBatches);

}  // namespace textscale::train
