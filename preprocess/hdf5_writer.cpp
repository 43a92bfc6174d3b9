#include "textscale/preprocess/hdf5_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>
#include <string_view>

#include "textscale/common/error.h"
#include "textscale/common/files.h"
#include "textscale/common/interrupt.h"
#include "textscale/preprocess/chunk_writer.h"
#include "textscale/preprocess/source.h"

namespace textscale::preprocess {

namespace {
constexpr hsize_t kChunkBytes = 1u << 20;
constexpr hsize_t kPage = 4096;                             // alignment of direct I/O
constexpr hsize_t kMaxPreallocatedChunk = 16u << 20;        // larger aligned chunks: write through HDF5
constexpr std::uint64_t kMinPreallocatedBytes = 64u << 20;  // smaller outputs: write through HDF5
constexpr std::size_t kChunkCacheBytes = 32u << 20;
constexpr std::size_t kCopyBatchRows = 4096;
constexpr hsize_t kChecksumBytes = 4;  // HDF5's Fletcher-32 filter: a little-endian uint32 after the chunk

// The content digest hashes integers as they lie in memory, which is its little-endian definition.
static_assert(std::endian::native == std::endian::little, "the content digest assumes a little-endian host");

constexpr std::string_view kContentDigestName = "textscale-content-1\n";

void hash_int64(Sha256& sha, std::int64_t value) {
  sha.update(&value, sizeof value);
}

// A count, then each string with its terminating NUL.
void hash_strings(Sha256& sha, const std::vector<std::string>* strings) {
  hash_int64(sha, strings ? static_cast<std::int64_t>(strings->size()) : 0);
  if (strings)
    for (const std::string& s : *strings) sha.update(s.c_str(), s.size() + 1);
}

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

struct RowFileWriter::Column {
  const char* name;
  hid_t file_type;
  hid_t memory_type;
  hsize_t width;          // 0 for a 1-D dataset
  std::size_t row_bytes;  // bytes of one row, in memory and in the file
  h5::Handle dataset;
  std::int64_t written = 0;  // rows stored or staged
  bool preallocated = false;
  // Preallocated chunks: their file addresses, and one chunk being filled.
  hsize_t chunk_rows = 0;
  std::int64_t rows = 0;  // the dataset's size
  std::vector<haddr_t> chunk_addresses;
  unsigned char* staging = nullptr;  // a buffer of chunks_' pool while a chunk is being filled
  int stream = 0;                    // this column's buffer pool in chunks_
  hsize_t staged = 0;
  std::size_t next_chunk = 0;
  std::vector<std::uint32_t> chunk_checksums;  // Fletcher-32 of each preallocated chunk
  Sha256 digest;                               // of the rows appended so far, in file order

  [[nodiscard]] std::size_t chunk_bytes() const { return static_cast<std::size_t>(chunk_rows) * row_bytes; }
};

RowFileWriter::RowFileWriter(std::string path, RowLayout layout, bool overwrite, bool shuffle, std::uint64_t seed,
                             std::optional<std::int64_t> expected_rows)
    : path_(std::move(path)),
      layout_(layout),
      overwrite_(overwrite),
      shuffle_(shuffle),
      seed_(seed),
      expected_rows_(expected_rows) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (!overwrite_ && fs::exists(path_, error))
    throw InputError("output '" + path_ + "' exists (use --overwrite to replace it)");
  temporary_path_ = path_ + ".tmp-" + process_tag();
  // Every object of 4 KiB or more starts on a page boundary, so preallocated chunks can take
  // direct I/O.
  h5::Handle access(TS_CHECK_HDF5(H5Pcreate(H5P_FILE_ACCESS)));
  TS_CHECK_HDF5(H5Pset_alignment(access.get(), kPage, kPage));
  file_ = h5::Handle(H5Fcreate(temporary_path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access.get()));
  if (!file_.valid()) {
    H5Eclear2(H5E_DEFAULT);
    throw IoError(errno_message("cannot create output '" + temporary_path_ + "'", errno));
  }
  // The destructor does not run for a constructor that throws: remove the temporary file here.
  try {
    describe_content({});
    set_up();
  } catch (...) {
    columns_.clear();
    file_.reset();
    std::remove(temporary_path_.c_str());
    throw;
  }
}

void RowFileWriter::set_up() {
  const auto add = [&](const char* name, hid_t file_type, hid_t memory_type, hsize_t width, std::size_t element) {
    auto column = std::make_unique<Column>();
    column->name = name;
    column->file_type = file_type;
    column->memory_type = memory_type;
    column->width = width;
    column->row_bytes = element * std::max<hsize_t>(width, 1);
    column->stream = static_cast<int>(columns_.size());
    columns_.push_back(std::move(column));
  };
  add("labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, 4);
  if (layout_.chars) {
    add("chars", H5T_STD_U8LE, H5T_NATIVE_UINT8, static_cast<hsize_t>(layout_.char_length), 1);
    add("char_lengths", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, 4);
  }
  if (layout_.words) {
    add("words", H5T_STD_I32LE, H5T_NATIVE_INT32, static_cast<hsize_t>(layout_.word_length), 4);
    add("word_lengths", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, 4);
  }
  if (shuffle_) {
    spool_path_ = path_ + ".spool-" + process_tag();
    spool_ = std::fopen(spool_path_.c_str(), "w+b");
    if (!spool_) throw IoError(errno_message("cannot create temporary file '" + spool_path_ + "'", errno));
    // Read and written through spool_ alone: unlinked now, it vanishes with the process however
    // that ends.
    std::remove(spool_path_.c_str());
  } else {
    create_columns();
  }
}

RowFileWriter::~RowFileWriter() {
  if (spool_) std::fclose(spool_);
  chunks_.reset();
  if (!committed_) {
    columns_.clear();
    file_.reset();
    std::remove(temporary_path_.c_str());
  }
}

namespace {
// Rows per chunk: about kChunkBytes, and a whole number of pages.
hsize_t aligned_chunk_rows(std::size_t row_bytes) {
  const hsize_t step = kPage / std::gcd<hsize_t>(kPage, row_bytes);
  const hsize_t target = std::max<hsize_t>(1, kChunkBytes / row_bytes);
  return std::max(step, target / step * step);
}
}  // namespace

void RowFileWriter::create_columns() {
  // The preallocated layout needs the final row count, unfiltered chunks of sensible size, and
  // pays off for large files only; small ones get chunks no longer than the file.
  std::optional<std::int64_t> known = shuffle_ ? std::optional<std::int64_t>(rows_) : expected_rows_;
  std::size_t row_bytes = 0;
  for (const auto& column : columns_) row_bytes += column->row_bytes;
  bool preallocate = known.has_value() && layout_.compression == 0 &&
                     static_cast<std::uint64_t>(*known) * row_bytes >= kMinPreallocatedBytes;
  for (const auto& column : columns_)
    preallocate = preallocate && aligned_chunk_rows(column->row_bytes) * column->row_bytes <= kMaxPreallocatedChunk;
  for (const auto& column : columns_) {
    if (preallocate)
      create_preallocated(*column, *known);
    else
      create_extendible(*column, known);
  }
  if (preallocate) open_raw_file();
}

void RowFileWriter::create_extendible(Column& column, std::optional<std::int64_t> rows) {
  const int rank = column.width == 0 ? 1 : 2;
  hsize_t chunk_rows = column.width == 0 ? hsize_t{1} << 16 : std::max<hsize_t>(1, kChunkBytes / column.row_bytes);
  if (rows) chunk_rows = std::min<hsize_t>(chunk_rows, static_cast<hsize_t>(std::max<std::int64_t>(*rows, 1)));
  const hsize_t dims[2] = {0, column.width};
  const hsize_t max_dims[2] = {H5S_UNLIMITED, column.width};
  const hsize_t chunk[2] = {chunk_rows, column.width};
  h5::Handle space(TS_CHECK_HDF5(H5Screate_simple(rank, dims, max_dims)));
  h5::Handle create(TS_CHECK_HDF5(H5Pcreate(H5P_DATASET_CREATE)));
  TS_CHECK_HDF5(H5Pset_chunk(create.get(), rank, chunk));
  if (layout_.compression > 0) {
    TS_CHECK_HDF5(H5Pset_shuffle(create.get()));
    TS_CHECK_HDF5(H5Pset_deflate(create.get(), static_cast<unsigned>(layout_.compression)));
  }
  TS_CHECK_HDF5(H5Pset_fletcher32(create.get()));  // last: the checksum covers the chunk as stored
  // Room for a few chunks of each dataset, so appends smaller than a chunk never read back.
  h5::Handle access(TS_CHECK_HDF5(H5Pcreate(H5P_DATASET_ACCESS)));
  TS_CHECK_HDF5(H5Pset_chunk_cache(access.get(), 521, kChunkCacheBytes, 1.0));
  column.dataset = h5::Handle(TS_CHECK_HDF5(
      H5Dcreate2(file_.get(), column.name, column.file_type, space.get(), H5P_DEFAULT, create.get(), access.get())));
}

void RowFileWriter::create_preallocated(Column& column, std::int64_t rows) {
  const int rank = column.width == 0 ? 1 : 2;
  column.preallocated = true;
  column.rows = rows;
  column.chunk_rows = aligned_chunk_rows(column.row_bytes);
  const hsize_t dims[2] = {static_cast<hsize_t>(rows), column.width};
  const hsize_t max_dims[2] = {H5S_UNLIMITED, column.width};
  const hsize_t chunk[2] = {column.chunk_rows, column.width};
  h5::Handle space(TS_CHECK_HDF5(H5Screate_simple(rank, dims, max_dims)));
  h5::Handle create(TS_CHECK_HDF5(H5Pcreate(H5P_DATASET_CREATE)));
  TS_CHECK_HDF5(H5Pset_chunk(create.get(), rank, chunk));
  TS_CHECK_HDF5(H5Pset_alloc_time(create.get(), H5D_ALLOC_TIME_EARLY));
  TS_CHECK_HDF5(H5Pset_fill_time(create.get(), H5D_FILL_TIME_NEVER));
  // HDF5 allocates each chunk with room for its Fletcher-32 checksum, which the chunk writer
  // computes and finish() writes after the chunk, as the filter would have.
  TS_CHECK_HDF5(H5Pset_fletcher32(create.get()));
  column.dataset = h5::Handle(TS_CHECK_HDF5(
      H5Dcreate2(file_.get(), column.name, column.file_type, space.get(), H5P_DEFAULT, create.get(), H5P_DEFAULT)));
  const hsize_t chunks = (static_cast<hsize_t>(rows) + column.chunk_rows - 1) / column.chunk_rows;
  column.chunk_addresses.resize(chunks);
  column.chunk_checksums.resize(chunks);
  for (hsize_t c = 0; c < chunks; ++c) {
    const hsize_t offset[2] = {c * column.chunk_rows, 0};
    unsigned filter_mask = 0;
    haddr_t address = HADDR_UNDEF;
    hsize_t size = 0;
    TS_CHECK_HDF5(H5Dget_chunk_info_by_coord(column.dataset.get(), offset, &filter_mask, &address, &size));
    if (address == HADDR_UNDEF || size != column.chunk_bytes() + kChecksumBytes)
      throw Hdf5Error(std::string("chunk ") + std::to_string(c) + " of '" + column.name + "' was not preallocated");
    column.chunk_addresses[c] = address;
  }
}

void RowFileWriter::open_raw_file() {
  // Direct I/O needs every chunk on a page boundary; otherwise (or where the file system refuses
  // O_DIRECT, e.g. tmpfs) the same writes go through the page cache.
  bool aligned = true;
  for (const auto& column : columns_)
    for (const haddr_t address : column->chunk_addresses) aligned = aligned && address % kPage == 0;
  chunks_ = std::make_unique<ChunkWriter>(temporary_path_, aligned);
}

void RowFileWriter::flush_chunk(Column& column) {
  const std::size_t bytes = column.chunk_bytes();
  const std::size_t used = static_cast<std::size_t>(column.staged) * column.row_bytes;
  std::memset(column.staging + used, 0, bytes - used);  // the tail of the last chunk
  chunks_->submit(column.stream, column.staging, bytes, column.chunk_addresses[column.next_chunk],
                  &column.chunk_checksums[column.next_chunk]);
  ++column.next_chunk;
  column.staging = nullptr;
  column.staged = 0;
}

void RowFileWriter::append_column(Column& column, const void* data, std::size_t count) {
  if (count == 0) return;
  column.digest.update(data, count * column.row_bytes);
  if (!column.preallocated) {
    try {
      const int rank = column.width == 0 ? 1 : 2;
      const hsize_t start[2] = {static_cast<hsize_t>(column.written), 0};
      const hsize_t size[2] = {static_cast<hsize_t>(count), column.width};
      const hsize_t new_dims[2] = {static_cast<hsize_t>(column.written) + count, column.width};
      TS_CHECK_HDF5(H5Dset_extent(column.dataset.get(), new_dims));
      h5::Handle file_space(TS_CHECK_HDF5(H5Dget_space(column.dataset.get())));
      TS_CHECK_HDF5(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, size, nullptr));
      h5::Handle memory_space(TS_CHECK_HDF5(H5Screate_simple(rank, size, nullptr)));
      TS_CHECK_HDF5(
          H5Dwrite(column.dataset.get(), column.memory_type, memory_space.get(), file_space.get(), H5P_DEFAULT, data));
    } catch (const Hdf5Error& error) {
      throw IoError("cannot write output '" + path_ + "': " + error.what());
    }
    column.written += static_cast<std::int64_t>(count);
    return;
  }
  if (column.written + static_cast<std::int64_t>(count) > column.rows)
    throw InputError("more rows than counted for '" + path_ + "': the input changed between passes");
  const auto* bytes = static_cast<const unsigned char*>(data);
  while (count > 0) {
    if (!column.staging) column.staging = chunks_->acquire(column.stream, column.chunk_bytes());
    const std::size_t n = std::min<std::size_t>(count, column.chunk_rows - column.staged);
    std::memcpy(column.staging + column.staged * column.row_bytes, bytes, n * column.row_bytes);
    column.staged += n;
    column.written += static_cast<std::int64_t>(n);
    bytes += n * column.row_bytes;
    count -= n;
    if (column.staged == column.chunk_rows) flush_chunk(column);
  }
}

void RowFileWriter::write_columns(const EncodedRows& rows) {
  const std::size_t n = rows.rows();
  std::size_t c = 0;
  append_column(*columns_[c++], rows.labels.data(), n);
  if (layout_.chars) {
    append_column(*columns_[c++], rows.chars.data(), n);
    append_column(*columns_[c++], rows.char_lengths.data(), n);
  }
  if (layout_.words) {
    append_column(*columns_[c++], rows.words.data(), n);
    append_column(*columns_[c++], rows.word_lengths.data(), n);
  }
}

std::size_t RowFileWriter::spool_row_bytes() const {
  std::size_t bytes = 0;
  for (const auto& column : columns_) bytes += column->row_bytes;
  return bytes;
}

void RowFileWriter::spool(const EncodedRows& rows) {
  // One fixed-size record per row: the row of each column, in column order.
  std::vector<unsigned char> record(spool_row_bytes());
  const std::vector<const unsigned char*> sources = {reinterpret_cast<const unsigned char*>(rows.labels.data()),
                                                     reinterpret_cast<const unsigned char*>(rows.chars.data()),
                                                     reinterpret_cast<const unsigned char*>(rows.char_lengths.data()),
                                                     reinterpret_cast<const unsigned char*>(rows.words.data()),
                                                     reinterpret_cast<const unsigned char*>(rows.word_lengths.data())};
  std::vector<const unsigned char*> columns = {sources[0]};
  if (layout_.chars) columns.insert(columns.end(), {sources[1], sources[2]});
  if (layout_.words) columns.insert(columns.end(), {sources[3], sources[4]});
  for (std::size_t i = 0; i < rows.rows(); ++i) {
    unsigned char* p = record.data();
    for (std::size_t c = 0; c < columns.size(); ++c) {
      const std::size_t bytes = columns_[c]->row_bytes;
      std::memcpy(p, columns[c] + i * bytes, bytes);
      p += bytes;
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
    write_columns(rows);
}

void RowFileWriter::copy_spool_permuted() {
  if (std::fflush(spool_) != 0)
    throw IoError(errno_message("cannot write temporary file '" + spool_path_ + "'", errno));
  const int fd = ::fileno(spool_);
  const std::size_t row_bytes = spool_row_bytes();
  const std::vector<std::uint64_t> order = seeded_permutation(static_cast<std::uint64_t>(rows_), seed_);
  std::vector<unsigned char> record(row_bytes);
  std::vector<std::vector<unsigned char>> batch(columns_.size());
  for (std::size_t begin = 0; begin < order.size(); begin += kCopyBatchRows) {
    throw_if_interrupted();
    const std::size_t end = std::min(order.size(), begin + kCopyBatchRows);
    for (auto& column : batch) column.clear();
    for (std::size_t i = begin; i < end; ++i) {
      const auto offset = static_cast<off_t>(order[i] * row_bytes);
      if (::pread(fd, record.data(), row_bytes, offset) != static_cast<ssize_t>(row_bytes))
        throw IoError(errno_message("cannot read temporary file '" + spool_path_ + "'", errno));
      const unsigned char* p = record.data();
      for (std::size_t c = 0; c < columns_.size(); ++c) {
        batch[c].insert(batch[c].end(), p, p + columns_[c]->row_bytes);
        p += columns_[c]->row_bytes;
      }
    }
    for (std::size_t c = 0; c < columns_.size(); ++c) append_column(*columns_[c], batch[c].data(), end - begin);
  }
}

void RowFileWriter::finish() {
  if (shuffle_) {
    create_columns();
    copy_spool_permuted();
  }
  for (const auto& column : columns_)
    if (column->preallocated && column->staged > 0) flush_chunk(*column);
  if (chunks_) {
    chunks_->finish();
    direct_ = chunks_->direct();
    chunks_.reset();
    write_chunk_checksums();
  }
  if (expected_rows_ && !shuffle_ && rows_ != *expected_rows_)
    throw InputError("'" + path_ + "': " + std::to_string(rows_) + " rows written, " + std::to_string(*expected_rows_) +
                     " counted: the input changed between passes");
  store_content_digest();
  // Closing flushes HDF5's caches: this is where a full disk shows up for rows written through
  // HDF5, with its error stack (which carries the system's message) in the exception.
  try {
    for (const auto& column : columns_) TS_CHECK_HDF5(column->dataset.close());
    TS_CHECK_HDF5(file_.close());
  } catch (const Hdf5Error& error) {
    throw IoError("cannot write output '" + path_ + "': " + error.what());
  }
  // Make the bytes durable before the name points at them.
  sync_file(temporary_path_);
  finished_ = true;
}

void RowFileWriter::write_chunk_checksums() {
  const int fd = ::open(temporary_path_.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(errno_message("cannot open output '" + temporary_path_ + "'", errno));
  for (const auto& column : columns_)
    for (std::size_t c = 0; c < column->chunk_checksums.size(); ++c) {
      const std::uint32_t value = column->chunk_checksums[c];
      const unsigned char bytes[kChecksumBytes] = {
          static_cast<unsigned char>(value), static_cast<unsigned char>(value >> 8),
          static_cast<unsigned char>(value >> 16), static_cast<unsigned char>(value >> 24)};
      const auto offset = static_cast<off_t>(column->chunk_addresses[c] + column->chunk_bytes());
      if (::pwrite(fd, bytes, sizeof bytes, offset) != static_cast<ssize_t>(sizeof bytes)) {
        const int error = errno;
        ::close(fd);
        throw IoError(errno_message("cannot write output '" + temporary_path_ + "'", error));
      }
    }
  if (::close(fd) != 0) throw IoError(errno_message("cannot write output '" + temporary_path_ + "'", errno));
}

void RowFileWriter::describe_content(const ContentDescription& description) {
  Sha256 sha;
  hash_int64(sha, description.num_classes);
  hash_strings(sha, description.classes);
  sha.update(description.alphabet.c_str(), description.alphabet.size() + 1);
  hash_strings(sha, description.vocabulary);
  description_digest_ = sha.digest();
}

void RowFileWriter::store_content_digest() {
  // docs/hdf5-schema.md, "Content digest".
  Sha256 sha;
  sha.update(kContentDigestName.data(), kContentDigestName.size());
  for (const auto& column : columns_) {
    sha.update(column->name, std::strlen(column->name));
    sha.update("\n", 1);
    hash_int64(sha, column->written);
    hash_int64(sha, static_cast<std::int64_t>(column->width));
    const auto rows = column->digest.digest();
    sha.update(rows.data(), rows.size());
  }
  const std::string_view description = "description\n";
  sha.update(description.data(), description.size());
  sha.update(description_digest_.data(), description_digest_.size());
  content_sha256_ = sha.hex();
  try {
    h5::write_attribute(file_.get(), "content_sha256", content_sha256_);
    h5::write_attribute(file_.get(), "description_sha256", hex_string(description_digest_));
  } catch (const Hdf5Error& error) {
    throw IoError("cannot write output '" + path_ + "': " + error.what());
  }
}

void RowFileWriter::publish() {
  if (!finished_) throw Error("RowFileWriter::publish before finish");
  std::error_code error;
  if (!overwrite_ && std::filesystem::exists(path_, error))
    throw InputError("output '" + path_ + "' appeared while writing (use --overwrite to replace it)");
  if (std::rename(temporary_path_.c_str(), path_.c_str()) != 0)
    throw IoError(errno_message("cannot rename '" + temporary_path_ + "' to '" + path_ + "'", errno));
  committed_ = true;
}

void RowFileWriter::commit() {
  finish();
  publish();
}

}  // namespace textscale::preprocess
