#include "textscale/train/dataset.h"

#include <hdf5.h>

#include <algorithm>
#include <filesystem>

#include "textscale/common/error.h"
#include "textscale/common/hash.h"
#include "textscale/common/hdf5.h"
#include "textscale/common/schema.h"

namespace textscale::train {

namespace {

constexpr std::size_t kChunkCacheBytes = std::size_t{256} << 20;  // per training file and rank

h5::Handle open_file(const std::string& path) {
  if (!std::filesystem::exists(path)) throw InputError(path + ": no such file");
  if (H5Fis_hdf5(path.c_str()) <= 0)
    throw InputError(path + ": not an HDF5 file (expected the output of `textscale preprocess`)");
  h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file.valid()) throw InputError(path + ": cannot open the HDF5 file (truncated or damaged?)");
  return file;
}

Encoding read_encoding_attributes(hid_t file, const std::string& path) {
  auto require = [&](const char* name) {
    if (!h5::has_attribute(file, name))
      throw InputError(path + ": attribute '" + name + "' missing; not a textscale dataset (see docs/hdf5-schema.md)");
  };
  require("schema_version");
  const auto version = h5::read_int_attribute(file, "schema_version");
  if (version != kSchemaVersion)
    throw InputError(path + ": schema_version " + std::to_string(version) + " is not supported (this build reads " +
                     std::to_string(kSchemaVersion) + ")");
  Encoding e;
  require("num_classes");
  e.num_classes = h5::read_int_attribute(file, "num_classes");
  if (e.num_classes < 1 || e.num_classes > kMaxClasses)
    throw InputError(path + ": attribute num_classes is " + std::to_string(e.num_classes) + ", outside 1.." +
                     std::to_string(kMaxClasses));
  if (h5::has_attribute(file, "classes")) e.classes = h5::read_string_list_attribute(file, "classes");
  if (!e.classes.empty() && static_cast<std::int64_t>(e.classes.size()) != e.num_classes)
    throw InputError(path + ": attribute num_classes is " + std::to_string(e.num_classes) + " but 'classes' names " +
                     std::to_string(e.classes.size()));
  if (!h5::has_attribute(file, "alphabet"))
    throw InputError(path + ": no character tensors (attribute 'alphabet' missing; was it made with --no-chars?)");
  e.alphabet = h5::read_string_attribute(file, "alphabet");
  require("char_length");
  e.char_length = h5::read_int_attribute(file, "char_length");
  require("char_order");
  e.char_order = h5::read_string_attribute(file, "char_order");
  return e;
}

Encoding read_encoding(hid_t file, const std::string& path) {
  return naming_file(path, "", [&] { return read_encoding_attributes(file, path); });
}

std::vector<hsize_t> dims_of(hid_t dataset) {
  h5::Handle space(TS_CHECK_HDF5(H5Dget_space(dataset)));
  std::vector<hsize_t> dims(static_cast<std::size_t>(TS_CHECK_HDF5(H5Sget_simple_extent_ndims(space.get()))));
  TS_CHECK_HDF5(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr));
  return dims;
}

h5::Handle open_dataset(hid_t file, const std::string& path, const char* name, std::size_t rank, H5T_class_t type_class,
                        std::size_t type_size, const char* expected, hid_t access = H5P_DEFAULT) {
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0) throw InputError(path + ": dataset '" + name + "' missing");
  h5::Handle dataset(TS_CHECK_HDF5(H5Dopen2(file, name, access)));
  if (dims_of(dataset.get()).size() != rank)
    throw InputError(path + ": dataset '" + name + "' has rank " + std::to_string(dims_of(dataset.get()).size()) +
                     ", expected " + std::to_string(rank));
  h5::Handle type(TS_CHECK_HDF5(H5Dget_type(dataset.get())));
  if (H5Tget_class(type.get()) != type_class || H5Tget_size(type.get()) != type_size)
    throw InputError(path + ": dataset '" + name + "' has the wrong type, expected " + expected);
  return dataset;
}

template <typename T>
void read_rows(hid_t dataset, hid_t memory_type, std::int64_t begin, std::int64_t count, std::int64_t width, T* out) {
  if (count == 0) return;
  h5::Handle space(TS_CHECK_HDF5(H5Dget_space(dataset)));
  const bool two_d = width > 0;
  const hsize_t start[2] = {static_cast<hsize_t>(begin), 0};
  const hsize_t size[2] = {static_cast<hsize_t>(count), static_cast<hsize_t>(std::max<std::int64_t>(width, 1))};
  TS_CHECK_HDF5(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start, nullptr, size, nullptr));
  h5::Handle memory(TS_CHECK_HDF5(H5Screate_simple(two_d ? 2 : 1, size, nullptr)));
  TS_CHECK_HDF5(H5Dread(dataset, memory_type, memory.get(), space.get(), H5P_DEFAULT, out));
}

}  // namespace

void Encoding::check_compatible(const Encoding& other, const std::string& this_source,
                                const std::string& other_source) const {
  auto fail = [&](const std::string& what, const std::string& a, const std::string& b) {
    throw InputError(other_source + " does not match " + this_source + ": " + what + " " + b + " vs " + a);
  };
  if (alphabet != other.alphabet) fail("alphabet", "'" + alphabet + "'", "'" + other.alphabet + "'");
  if (char_length != other.char_length)
    fail("character length", std::to_string(char_length), std::to_string(other.char_length));
  if (char_order != other.char_order) fail("character order", char_order, other.char_order);
  if (num_classes != other.num_classes)
    fail("number of classes", std::to_string(num_classes), std::to_string(other.num_classes));
  if (!classes.empty() && !other.classes.empty() && classes != other.classes) {
    std::string a, b;
    for (const auto& c : classes) a += (a.empty() ? "" : ",") + c;
    for (const auto& c : other.classes) b += (b.empty() ? "" : ",") + c;
    fail("class names", a, b);
  }
}

Encoding read_encoding(const std::string& path) {
  h5::Handle file = open_file(path);
  return read_encoding(file.get(), path);
}

CharDataset load_char_dataset(const std::string& path, std::int64_t begin, std::int64_t end) {
  h5::Handle file = open_file(path);
  CharDataset d;
  d.path = path;
  d.encoding = read_encoding(file.get(), path);
  const auto length = d.encoding.char_length;
  h5::Handle chars = open_dataset(file.get(), path, "chars", 2, H5T_INTEGER, 1, "uint8");
  h5::Handle labels = open_dataset(file.get(), path, "labels", 1, H5T_INTEGER, 4, "int32");
  const auto char_dims = dims_of(chars.get());
  const auto total = static_cast<std::int64_t>(char_dims[0]);
  if (static_cast<std::int64_t>(char_dims[1]) != length)
    throw InputError(path + ": dataset 'chars' has " + std::to_string(char_dims[1]) +
                     " columns but attribute char_length is " + std::to_string(length));
  if (static_cast<std::int64_t>(dims_of(labels.get())[0]) != total)
    throw InputError(path + ": datasets 'labels' and 'chars' have different numbers of rows");
  if (end < 0 || end > total) end = total;
  if (begin < 0 || begin > end)
    throw InputError(path + ": row range [" + std::to_string(begin) + ", " + std::to_string(end) +
                     ") outside the file's " + std::to_string(total) + " rows");
  d.total_rows = total;
  d.first_row = begin;
  d.rows = end - begin;
  d.chars.resize(static_cast<std::size_t>(d.rows * length));
  d.labels.resize(static_cast<std::size_t>(d.rows));
  read_rows(chars.get(), H5T_NATIVE_UINT8, begin, d.rows, length, d.chars.data());
  read_rows(labels.get(), H5T_NATIVE_INT32, begin, d.rows, 0, d.labels.data());
  const auto alphabet = static_cast<std::uint8_t>(std::min<std::size_t>(d.encoding.alphabet.size(), 255));
  for (std::int64_t i = 0; i < d.rows; ++i) {
    if (d.labels[static_cast<std::size_t>(i)] < 0 || d.labels[static_cast<std::size_t>(i)] >= d.encoding.num_classes)
      throw InputError(path + ": dataset 'labels' row " + std::to_string(begin + i) + " holds " +
                       std::to_string(d.labels[static_cast<std::size_t>(i)]) +
                       ", outside [0, num_classes = " + std::to_string(d.encoding.num_classes) + ")");
  }
  for (std::size_t i = 0; i < d.chars.size(); ++i)
    if (d.chars[i] > alphabet)
      throw InputError(path + ": dataset 'chars' row " + std::to_string(begin + static_cast<std::int64_t>(i) / length) +
                       " holds code " + std::to_string(d.chars[i]) + ", outside the alphabet of " +
                       std::to_string(alphabet) + " symbols");
  return d;
}

namespace {

// A hash of what identifies a file's content: rows, encoding, the source's SHA-256, and how
// `textscale preprocess` read it (format, unescaping, split). Not the paths or creation time:
// two copies of one file on two nodes are the same data.
std::uint64_t fingerprint_of(hid_t file, const Encoding& encoding, std::int64_t rows) {
  std::string identity = std::to_string(rows) + "|" + encoding.alphabet + "|" + std::to_string(encoding.char_length) +
                         "|" + std::to_string(encoding.num_classes) + "|" + encoding.char_order + "|";
  for (const char* name : {"source_sha256", "input_format", "unescape", "split"})
    if (h5::has_attribute(file, name)) identity += h5::read_string_attribute(file, name) + "|";
  return fnv1a(identity);
}

}  // namespace

struct ShardReader::Impl {
  h5::Handle file, chars;
};

ShardReader::ShardReader(const std::string& path, std::int64_t limit_rows)
    : path_(path), impl_(std::make_shared<Impl>()) {
  impl_->file = open_file(path);
  encoding_ = read_encoding(impl_->file.get(), path);
  // Rows are read in random order: a chunk cache of kChunkCacheBytes keeps the chunks read so far
  // (HDF5's default, 1 MiB, holds a few chunks, so nearly every row would read its chunk again).
  h5::Handle access(TS_CHECK_HDF5(H5Pcreate(H5P_DATASET_ACCESS)));
  TS_CHECK_HDF5(H5Pset_chunk_cache(access.get(), 65521, kChunkCacheBytes, 1.0));
  impl_->chars = open_dataset(impl_->file.get(), path, "chars", 2, H5T_INTEGER, 1, "uint8", access.get());
  h5::Handle labels = open_dataset(impl_->file.get(), path, "labels", 1, H5T_INTEGER, 4, "int32");
  const auto char_dims = dims_of(impl_->chars.get());
  const auto total = static_cast<std::int64_t>(char_dims[0]);
  if (static_cast<std::int64_t>(char_dims[1]) != encoding_.char_length)
    throw InputError(path + ": dataset 'chars' has " + std::to_string(char_dims[1]) +
                     " columns but attribute char_length is " + std::to_string(encoding_.char_length));
  if (static_cast<std::int64_t>(dims_of(labels.get())[0]) != total)
    throw InputError(path + ": datasets 'labels' and 'chars' have different numbers of rows");
  rows_ = limit_rows >= 0 ? std::min(limit_rows, total) : total;
  labels_.resize(static_cast<std::size_t>(rows_));
  read_rows(labels.get(), H5T_NATIVE_INT32, 0, rows_, 0, labels_.data());
  for (std::int64_t i = 0; i < rows_; ++i)
    if (labels_[static_cast<std::size_t>(i)] < 0 || labels_[static_cast<std::size_t>(i)] >= encoding_.num_classes)
      throw InputError(path + ": dataset 'labels' row " + std::to_string(i) + " holds " +
                       std::to_string(labels_[static_cast<std::size_t>(i)]) +
                       ", outside [0, num_classes = " + std::to_string(encoding_.num_classes) + ")");
  fingerprint_ = fingerprint_of(impl_->file.get(), encoding_, rows_);
}

std::uint64_t file_fingerprint(const std::string& path) {
  h5::Handle file = open_file(path);
  const Encoding encoding = read_encoding(file.get(), path);
  h5::Handle labels = open_dataset(file.get(), path, "labels", 1, H5T_INTEGER, 4, "int32");
  return fingerprint_of(file.get(), encoding, static_cast<std::int64_t>(dims_of(labels.get())[0]));
}

void ShardReader::read(const std::int64_t* rows, std::int64_t count, std::uint8_t* codes, std::int32_t* labels) {
  const std::int64_t length = encoding_.char_length;
  sorted_.clear();
  for (std::int64_t i = 0; i < count; ++i) {
    if (rows[i] < 0 || rows[i] >= rows_)
      throw Error(path_ + ": row " + std::to_string(rows[i]) + " requested, the file has " + std::to_string(rows_));
    sorted_.emplace_back(rows[i], i);
    labels[i] = labels_[static_cast<std::size_t>(rows[i])];
  }
  std::sort(sorted_.begin(), sorted_.end());
  const auto alphabet = static_cast<std::uint8_t>(std::min<std::size_t>(encoding_.alphabet.size(), 255));
  for (std::size_t a = 0; a < sorted_.size();) {
    std::size_t b = a + 1;  // [a, b): consecutive distinct rows, one read
    while (b < sorted_.size() && sorted_[b].first == sorted_[b - 1].first + 1) ++b;
    const std::int64_t first = sorted_[a].first, run = static_cast<std::int64_t>(b - a);
    staging_.resize(static_cast<std::size_t>(run * length));
    read_rows(impl_->chars.get(), H5T_NATIVE_UINT8, first, run, length, staging_.data());
    for (std::size_t k = a; k < b; ++k) {
      const std::uint8_t* row = staging_.data() + (sorted_[k].first - first) * length;
      for (std::int64_t j = 0; j < length; ++j)
        if (row[j] > alphabet)
          throw InputError(path_ + ": dataset 'chars' row " + std::to_string(sorted_[k].first) + " holds code " +
                           std::to_string(row[j]) + ", outside the alphabet of " + std::to_string(alphabet) +
                           " symbols");
      std::copy(row, row + length, codes + sorted_[k].second * length);
    }
    // A repeated row (same index twice) is copied from the first copy.
    while (b < sorted_.size() && sorted_[b].first == sorted_[b - 1].first) {
      std::copy(codes + sorted_[b - 1].second * length, codes + sorted_[b - 1].second * length + length,
                codes + sorted_[b].second * length);
      ++b;
    }
    a = b;
  }
}

}  // namespace textscale::train
