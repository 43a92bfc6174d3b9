// Reading one rank's shards of an epoch from a preprocessed HDF5 file: `--shuffle rows` (a
// permutation of rows: one small hyperslab read per row) against `--shuffle blocks` (a
// permutation of blocks of consecutive rows: a few contiguous reads per batch), as the trainer
// does it (ShardReader, epoch_order, rank_share). Prints rows/s and MB/s of character codes.
//
//   build/bench/shard_reads FILE [--ranks N] [--batch B] [--block ROWS] [--epochs E]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "textscale/train/dataset.h"
#include "textscale/train/sharding.h"

using namespace textscale::train;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: shard_reads FILE [--ranks N] [--batch B] [--block ROWS] [--epochs E]\n");
    return 2;
  }
  const std::string path = argv[1];
  int ranks = 2;
  std::int64_t batch = 128, block = 256, epochs = 2;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--ranks") == 0) ranks = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--batch") == 0) batch = std::atoll(argv[i + 1]);
    if (std::strcmp(argv[i], "--block") == 0) block = std::atoll(argv[i + 1]);
    if (std::strcmp(argv[i], "--epochs") == 0) epochs = std::atoll(argv[i + 1]);
  }
  ShardReader reader(path, textscale::engine::IdType::characters);
  const std::int64_t rows = reader.rows(), length = reader.encoding().char_length;
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(batch * length));
  std::vector<std::int32_t> labels(static_cast<std::size_t>(batch));
  for (const auto mode : {ShuffleMode::rows, ShuffleMode::blocks}) {
    std::int64_t read = 0;
    const auto start = std::chrono::steady_clock::now();
    for (std::int64_t epoch = 0; epoch < epochs; ++epoch) {
      const auto order = epoch_order(rows, 1, epoch, mode, block);
      for (std::int64_t begin = 0; begin < rows; begin += batch) {
        const Share share = rank_share(std::min(batch, rows - begin), 0, ranks);  // rank 0's share
        reader.read(order.data() + begin + share.offset, share.count, codes.data(), labels.data());
        read += share.count;
      }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf(
        "{\"shuffle\": \"%s\", \"block\": %lld, \"ranks\": %d, \"batch\": %lld, \"rows_read\": %lld, "
        "\"rows_per_second\": %.0f, \"mb_per_second\": %.1f}\n",
        mode == ShuffleMode::rows ? "rows" : "blocks", static_cast<long long>(block), ranks,
        static_cast<long long>(batch), static_cast<long long>(read), static_cast<double>(read) / seconds,
        static_cast<double>(read * length) / seconds / 1e6);
  }
  return 0;
}
