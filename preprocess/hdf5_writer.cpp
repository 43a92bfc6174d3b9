#include "textscale/preprocess/hdf5_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "textscale/common/error.h"

namespace textscale::preprocess {

namespace {
constexpr hsize_t kChunkBytes = 1u << 20;
constexpr std::size_t kChunkCacheBytes = 32u << 20;
constexpr std::size_t kCopyBatchRows = 4096;

std::uint64_t bounded(std::mt19937_64& engine, std::uint64_t bound) {
  // Rejection sampling: uniform on [0, bound).
  const std::uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  std::uint64_t x;
  do x = engine();
  while (x >= limit);
  return x % bound;
}
}  // namespace

std::vector<std::uint64_t> seeded_permutation(std::uint64_t n, std::uint64_t seed) {
  std::vector<std::uint64_t> order(n);
  for (std::uint64_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 engine(seed);
  for (std::uint64_t i = n; i > 1; --i) std::swap(order[i - 1], order[bounded(engine, i)]);
  return order;
}

RowFileWriter::RowFileWriter(std::string path, RowLayout layout, bool overwrite, bool shuffle, std::uint64_t seed)
    : path_(std::move(path)), layout_(layout), overwrite_(overwrite), shuffle_(shuffle), seed_(seed) {
  namespace fs = std::filesystem;
  if (!overwrite_ && fs::exists(path_))
    throw InputError("output '" + path_ + "' exists (use --overwrite to replace it)");
  const std::string suffix = ".tmp-" + std::to_string(::getpid());
  temporary_path_ = path_ + suffix;
  file_ = h5::Handle(H5Fcreate(temporary_path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  if (!file_.valid()) {
    H5Eclear2(H5E_DEFAULT);
    throw IoError(errno_message("cannot create output '" + temporary_path_ + "'", errno));
  }
  const hsize_t row_chunk = 1u << 16;
  labels_ = create("labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, row_chunk);
  if (layout_.chars) {
    const auto L = static_cast<hsize_t>(layout_.char_length);
    chars_ = create("chars", H5T_STD_U8LE, H5T_NATIVE_UINT8, L, std::max<hsize_t>(1, kChunkBytes / L));
    char_lengths_ = create("char_lengths", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, row_chunk);
  }
  if (layout_.words) {
    const auto W = static_cast<hsize_t>(layout_.word_length);
    words_ = create("words", H5T_STD_I32LE, H5T_NATIVE_INT32, W, std::max<hsize_t>(1, kChunkBytes / (4 * W)));
    word_lengths_ = create("word_lengths", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, row_chunk);
  }
  if (shuffle_) {
    spool_path_ = path_ + ".spool-" + std::to_string(::getpid());
    spool_ = std::fopen(spool_path_.c_str(), "w+b");
    if (!spool_) throw IoError(errno_message("cannot create temporary file '" + spool_path_ + "'", errno));
  }
}

RowFileWriter::~RowFileWriter() {
  if (spool_) std::fclose(spool_);
  if (!spool_path_.empty()) std::remove(spool_path_.c_str());
  if (!committed_) {
    labels_.handle.reset();
    chars_.handle.reset();
    char_lengths_.handle.reset();
    words_.handle.reset();
    word_lengths_.handle.reset();
    file_.reset();
    std::remove(temporary_path_.c_str());
  }
}

RowFileWriter::Dataset RowFileWriter::create(const char* name, hid_t file_type, hid_t memory_type, hsize_t width,
                                             hsize_t chunk_rows) {
  const int rank = width == 0 ? 1 : 2;
  const hsize_t dims[2] = {0, width};
  const hsize_t max_dims[2] = {H5S_UNLIMITED, width};
  const hsize_t chunk[2] = {chunk_rows, width};
  h5::Handle space(TS_CHECK_HDF5(H5Screate_simple(rank, dims, max_dims)));
  h5::Handle create_properties(TS_CHECK_HDF5(H5Pcreate(H5P_DATASET_CREATE)));
  TS_CHECK_HDF5(H5Pset_chunk(create_properties.get(), rank, chunk));
  if (layout_.compression > 0) {
    TS_CHECK_HDF5(H5Pset_shuffle(create_properties.get()));
    TS_CHECK_HDF5(H5Pset_deflate(create_properties.get(), static_cast<unsigned>(layout_.compression)));
  }
  // Room for a few chunks of each dataset, so appends smaller than a chunk never read back.
  h5::Handle access_properties(TS_CHECK_HDF5(H5Pcreate(H5P_DATASET_ACCESS)));
  TS_CHECK_HDF5(H5Pset_chunk_cache(access_properties.get(), 521, kChunkCacheBytes, 1.0));
  Dataset dataset;
  dataset.handle = h5::Handle(TS_CHECK_HDF5(H5Dcreate2(file_.get(), name, file_type, space.get(), H5P_DEFAULT,
                                                       create_properties.get(), access_properties.get())));
  dataset.memory_type = memory_type;
  dataset.width = width;
  return dataset;
}

void RowFileWriter::write_rows(Dataset& dataset, const void* data, std::size_t count) {
  if (count == 0) return;
  const int rank = dataset.width == 0 ? 1 : 2;
  const hsize_t start[2] = {static_cast<hsize_t>(written_), 0};
  const hsize_t size[2] = {static_cast<hsize_t>(count), dataset.width};
  const hsize_t new_dims[2] = {static_cast<hsize_t>(written_) + count, dataset.width};
  TS_CHECK_HDF5(H5Dset_extent(dataset.handle.get(), new_dims));
  h5::Handle file_space(TS_CHECK_HDF5(H5Dget_space(dataset.handle.get())));
  TS_CHECK_HDF5(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, size, nullptr));
  h5::Handle memory_space(TS_CHECK_HDF5(H5Screate_simple(rank, size, nullptr)));
  TS_CHECK_HDF5(
      H5Dwrite(dataset.handle.get(), dataset.memory_type, memory_space.get(), file_space.get(), H5P_DEFAULT, data));
}

void RowFileWriter::write_to_file(const EncodedRows& rows) {
  try {
    write_columns(rows);
  } catch (const Hdf5Error& error) {
    throw IoError("cannot write output '" + path_ + "': " + error.what());
  }
}

void RowFileWriter::write_columns(const EncodedRows& rows) {
  const std::size_t n = rows.rows();
  write_rows(labels_, rows.labels.data(), n);
  if (layout_.chars) {
    write_rows(chars_, rows.chars.data(), n);
    write_rows(char_lengths_, rows.char_lengths.data(), n);
  }
  if (layout_.words) {
    write_rows(words_, rows.words.data(), n);
    write_rows(word_lengths_, rows.word_lengths.data(), n);
  }
  written_ += static_cast<std::int64_t>(n);
}

std::size_t RowFileWriter::spool_row_bytes() const {
  return 4 + (layout_.chars ? 4 + static_cast<std::size_t>(layout_.char_length) : 0) +
         (layout_.words ? 4 + 4 * static_cast<std::size_t>(layout_.word_length) : 0);
}

void RowFileWriter::spool(const EncodedRows& rows) {
  const auto L = static_cast<std::size_t>(layout_.char_length);
  const auto W = static_cast<std::size_t>(layout_.word_length);
  std::vector<char> record(spool_row_bytes());
  for (std::size_t i = 0; i < rows.rows(); ++i) {
    char* p = record.data();
    std::memcpy(p, &rows.labels[i], 4), p += 4;
    if (layout_.chars) {
      std::memcpy(p, &rows.char_lengths[i], 4), p += 4;
      std::memcpy(p, rows.chars.data() + i * L, L), p += L;
    }
    if (layout_.words) {
      std::memcpy(p, &rows.word_lengths[i], 4), p += 4;
      std::memcpy(p, rows.words.data() + i * W, 4 * W);
    }
    if (std::fwrite(record.data(), record.size(), 1, spool_) != 1)
      throw IoError(errno_message("cannot write temporary file '" + spool_path_ + "'", errno));
  }
}

void RowFileWriter::append(const EncodedRows& rows) {
  for (const std::int32_t label : rows.labels) {
    if (static_cast<std::size_t>(label) >= class_counts_.size())
      class_counts_.resize(static_cast<std::size_t>(label) + 1);
    ++class_counts_[static_cast<std::size_t>(label)];
  }
  rows_ += static_cast<std::int64_t>(rows.rows());
  if (shuffle_)
    spool(rows);
  else
    write_to_file(rows);
}

void RowFileWriter::copy_spool_permuted() {
  if (std::fflush(spool_) != 0)
    throw IoError(errno_message("cannot write temporary file '" + spool_path_ + "'", errno));
  const int fd = ::fileno(spool_);
  const std::size_t row_bytes = spool_row_bytes();
  const auto L = static_cast<std::size_t>(layout_.char_length);
  const auto W = static_cast<std::size_t>(layout_.word_length);
  const std::vector<std::uint64_t> order = seeded_permutation(static_cast<std::uint64_t>(rows_), seed_);
  std::vector<char> record(row_bytes);
  EncodedRows batch;
  for (std::size_t begin = 0; begin < order.size(); begin += kCopyBatchRows) {
    const std::size_t end = std::min(order.size(), begin + kCopyBatchRows);
    batch = EncodedRows{};
    for (std::size_t i = begin; i < end; ++i) {
      const auto offset = static_cast<off_t>(order[i] * row_bytes);
      if (::pread(fd, record.data(), row_bytes, offset) != static_cast<ssize_t>(row_bytes))
        throw IoError(errno_message("cannot read temporary file '" + spool_path_ + "'", errno));
      const char* p = record.data();
      std::int32_t value;
      std::memcpy(&value, p, 4), p += 4;
      batch.labels.push_back(value);
      if (layout_.chars) {
        std::memcpy(&value, p, 4), p += 4;
        batch.char_lengths.push_back(value);
        batch.chars.insert(batch.chars.end(), p, p + L), p += L;
      }
      if (layout_.words) {
        std::memcpy(&value, p, 4), p += 4;
        batch.word_lengths.push_back(value);
        const std::size_t at = batch.words.size();
        batch.words.resize(at + W);
        std::memcpy(batch.words.data() + at, p, 4 * W);
      }
    }
    write_to_file(batch);
  }
}

void RowFileWriter::commit() {
  if (shuffle_) copy_spool_permuted();
  // Closing flushes cached chunks: this is where a full disk shows up, with HDF5's error stack
  // (which carries the system's message) in the exception.
  try {
    for (Dataset* dataset : {&labels_, &chars_, &char_lengths_, &words_, &word_lengths_})
      TS_CHECK_HDF5(dataset->handle.close());
    TS_CHECK_HDF5(file_.close());
  } catch (const Hdf5Error& error) {
    throw IoError("cannot write output '" + path_ + "': " + error.what());
  }
  // Make the bytes durable before the name points at them.
  const int fd = ::open(temporary_path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int error = errno;
    if (fd >= 0) ::close(fd);
    throw IoError(errno_message("cannot sync '" + temporary_path_ + "'", error));
  }
  ::close(fd);
  if (!overwrite_ && std::filesystem::exists(path_))
    throw InputError("output '" + path_ + "' appeared while writing (use --overwrite to replace it)");
  if (std::rename(temporary_path_.c_str(), path_.c_str()) != 0)
    throw IoError(errno_message("cannot rename '" + temporary_path_ + "' to '" + path_ + "'", errno));
  committed_ = true;
}

}  // namespace textscale::preprocess
