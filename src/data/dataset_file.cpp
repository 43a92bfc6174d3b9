#include "textscale/data/dataset_file.h"

#include <hdf5.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>

#include "textscale/common/checksum.h"
#include "textscale/common/error.h"
#include "textscale/common/hdf5.h"
#include "textscale/common/log.h"
#include "textscale/common/schema.h"

namespace textscale::data {

namespace {

std::vector<hsize_t> dims_of(hid_t dataset) {
  h5::Handle space(TS_CHECK_HDF5(H5Dget_space(dataset)));
  std::vector<hsize_t> dims(static_cast<std::size_t>(TS_CHECK_HDF5(H5Sget_simple_extent_ndims(space.get()))));
  TS_CHECK_HDF5(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr));
  return dims;
}

bool exists(hid_t file, const char* name) {
  return H5Lexists(file, name, H5P_DEFAULT) > 0;
}

bool has_fletcher32(hid_t dataset) {
  h5::Handle create(TS_CHECK_HDF5(H5Dget_create_plist(dataset)));
  const int filters = TS_CHECK_HDF5(H5Pget_nfilters(create.get()));
  for (int i = 0; i < filters; ++i) {
    unsigned flags = 0, config = 0;
    std::size_t values = 0;
    if (TS_CHECK_HDF5(H5Pget_filter2(create.get(), static_cast<unsigned>(i), &flags, &values, nullptr, 0, nullptr,
                                     &config)) == H5Z_FILTER_FLETCHER32)
      return true;
  }
  return false;
}

// Whether a failed read is HDF5's Fletcher-32 filter finding a chunk whose bytes changed.
bool is_checksum_error(const Hdf5Error& error) {
  return std::strstr(error.what(), "Fletcher32") != nullptr;
}

// Says once per file and process that a file without checksums is read unverified.
void warn_unverified(const std::string& name, std::int64_t version) {
  static std::mutex mutex;
  static std::set<std::string> warned;
  const std::lock_guard lock(mutex);
  if (!warned.insert(name).second) return;
  TS_LOG(warn, name << ": schema_version " << version
                    << " has no checksums; its data is read unverified (re-run preprocess to add them)");
}

// A count, then each string with its terminating NUL (docs/hdf5-schema.md, "Content digest").
void hash_strings(Sha256& sha, const std::vector<std::string>& strings) {
  const auto count = static_cast<std::int64_t>(strings.size());
  sha.update(&count, sizeof count);
  for (const std::string& text : strings) sha.update(text.c_str(), text.size() + 1);
}

// One row dataset: its handle and shape (width 0 for a 1-D dataset).
struct RowDataset {
  h5::Handle handle;
  std::int64_t rows = 0, width = 0;
};

}  // namespace

struct DatasetFile::Impl {
  std::string path, name;
  h5::Handle file;
  std::int64_t rows = 0, num_classes = 0, char_length = 0, word_length = 0, vocab_size = 0;
  std::vector<std::string> classes;
  std::string alphabet, char_order, source_sha256, content_sha256;
  RowDataset labels, chars, char_lengths, words, word_lengths;
  bool has_vocab = false, has_vocab_counts = false;

  [[nodiscard]] InputError error(const std::string& message) const { return InputError(name + ": " + message); }

  template <typename Fn>
  auto named(Fn fn) const {
    return naming_file(name, "", fn);
  }

  void require_attribute(const char* attribute, const std::string& why) const {
    if (!h5::has_attribute(file.get(), attribute))
      throw error("attribute '" + std::string(attribute) + "' missing" + why);
  }

  // Opens dataset `dataset` and checks its rank, element type and (for row datasets) its rows.
  RowDataset open(const char* dataset, std::size_t rank, H5T_class_t type_class, std::size_t type_size,
                  const char* expected, bool row_dataset, hid_t access = H5P_DEFAULT) const {
    if (!exists(file.get(), dataset)) throw error("dataset '" + std::string(dataset) + "' missing");
    RowDataset d;
    d.handle = h5::Handle(TS_CHECK_HDF5(H5Dopen2(file.get(), dataset, access)));
    const auto dims = dims_of(d.handle.get());
    if (dims.size() != rank)
      throw error("dataset '" + std::string(dataset) + "' has rank " + std::to_string(dims.size()) + ", expected " +
                  std::to_string(rank));
    h5::Handle type(TS_CHECK_HDF5(H5Dget_type(d.handle.get())));
    if (H5Tget_class(type.get()) != type_class || (type_size != H5T_VARIABLE && H5Tget_size(type.get()) != type_size) ||
        (type_size == H5T_VARIABLE && H5Tis_variable_str(type.get()) <= 0))
      throw error("dataset '" + std::string(dataset) + "' has the wrong type, expected " + expected);
    if (checksums && (row_dataset || std::strcmp(dataset, "vocab_counts") == 0) && !has_fletcher32(d.handle.get()))
      throw error("dataset '" + std::string(dataset) + "' has no Fletcher-32 checksum (schema_version " +
                  std::to_string(kFirstChecksumSchemaVersion) +
                  " and later write one): damaged file, re-run preprocess");
    d.rows = static_cast<std::int64_t>(dims[0]);
    d.width = rank == 2 ? static_cast<std::int64_t>(dims[1]) : 0;
    if (row_dataset && d.rows != rows)
      throw error("dataset '" + std::string(dataset) + "' has " + std::to_string(d.rows) + " rows, 'labels' has " +
                  std::to_string(rows));
    return d;
  }

  void validate() {
    require_attribute("schema_version", "; not a textscale dataset (see docs/hdf5-schema.md)");
    const auto version = h5::read_int_attribute(file.get(), "schema_version");
    if (version < kOldestSchemaVersion || version > kSchemaVersion)
      throw error("schema_version " + std::to_string(version) + " is not supported (this build reads " +
                  std::to_string(kOldestSchemaVersion) + " to " + std::to_string(kSchemaVersion) + ")");
    checksums = version >= kFirstChecksumSchemaVersion;
    if (!checksums) warn_unverified(name, version);
    require_attribute("num_classes", "");
    num_classes = h5::read_int_attribute(file.get(), "num_classes");
    if (num_classes < 1 || num_classes > kMaxClasses)
      throw error("attribute num_classes is " + std::to_string(num_classes) + ", outside 1.." +
                  std::to_string(kMaxClasses));
    if (h5::has_attribute(file.get(), "classes")) classes = h5::read_string_list_attribute(file.get(), "classes");
    if (!classes.empty() && static_cast<std::int64_t>(classes.size()) != num_classes)
      throw error("attribute num_classes is " + std::to_string(num_classes) + " but 'classes' names " +
                  std::to_string(classes.size()));
    if (h5::has_attribute(file.get(), "source_sha256"))
      source_sha256 = h5::read_string_attribute(file.get(), "source_sha256");
    if (h5::has_attribute(file.get(), "content_sha256")) {
      content_sha256 = h5::read_string_attribute(file.get(), "content_sha256");
      if (content_sha256.size() != 64 || content_sha256.find_first_not_of("0123456789abcdef") != std::string::npos)
        throw error("attribute content_sha256 is '" + content_sha256.substr(0, 80) +
                    "', not a SHA-256 (64 hexadecimal digits)");
    }

    labels = open("labels", 1, H5T_INTEGER, 4, "int32", false);
    rows = labels.rows;
    if (h5::has_attribute(file.get(), "num_rows")) {
      const auto stored = h5::read_int_attribute(file.get(), "num_rows");
      if (stored != rows)
        throw error("attribute num_rows is " + std::to_string(stored) + " but dataset 'labels' has " +
                    std::to_string(rows) + " rows");
    }
    validate_chars();
    validate_words();
    if (checksums) verify_description();
  }

  // The attribute description_sha256 against the metadata it covers (docs/hdf5-schema.md,
  // "Checksums"): num_classes, classes, alphabet and vocab.
  void verify_description() const {
    require_attribute("description_sha256", " (schema_version 2 and later record it): damaged file");
    const std::string stored = h5::read_string_attribute(file.get(), "description_sha256");
    Sha256 sha;
    sha.update(&num_classes, sizeof num_classes);
    hash_strings(sha, classes);
    sha.update(alphabet.c_str(), alphabet.size() + 1);
    hash_strings(sha, has_vocab ? h5::read_string_dataset(file.get(), "vocab") : std::vector<std::string>());
    if (sha.hex() != stored)
      throw error(
          "the metadata (num_classes, classes, alphabet, vocab) does not match description_sha256: damaged file, "
          "re-run preprocess");
  }

  void validate_chars() {
    if (!exists(file.get(), "chars")) return;
    if (!h5::has_attribute(file.get(), "alphabet")) throw error("dataset 'chars' without attribute 'alphabet'");
    alphabet = h5::read_string_attribute(file.get(), "alphabet");
    if (alphabet.size() > 255)
      throw error("attribute alphabet has " + std::to_string(alphabet.size()) + " symbols, more than uint8 codes hold");
    require_attribute("char_length", "");
    char_length = h5::read_int_attribute(file.get(), "char_length");
    require_attribute("char_order", "");
    char_order = h5::read_string_attribute(file.get(), "char_order");
    h5::Handle access(TS_CHECK_HDF5(H5Pcreate(H5P_DATASET_ACCESS)));
    if (chunk_cache_bytes > 0) TS_CHECK_HDF5(H5Pset_chunk_cache(access.get(), 65521, chunk_cache_bytes, 1.0));
    chars = open("chars", 2, H5T_INTEGER, 1, "uint8", true, access.get());
    if (chars.width != char_length)
      throw error("dataset 'chars' has " + std::to_string(chars.width) + " columns but attribute char_length is " +
                  std::to_string(char_length));
    if (exists(file.get(), "char_lengths")) char_lengths = open("char_lengths", 1, H5T_INTEGER, 4, "int32", true);
  }

  void validate_words() {
    if (exists(file.get(), "vocab")) {
      const RowDataset vocab = open("vocab", 1, H5T_STRING, H5T_VARIABLE, "variable-length strings", false);
      vocab_size = vocab.rows;
      has_vocab = true;
      if (exists(file.get(), "vocab_counts")) {
        const RowDataset counts = open("vocab_counts", 1, H5T_INTEGER, 8, "int64", false);
        if (counts.rows != vocab_size)
          throw error("dataset 'vocab_counts' has " + std::to_string(counts.rows) + " entries, 'vocab' has " +
                      std::to_string(vocab_size));
        has_vocab_counts = true;
      }
    }
    if (!exists(file.get(), "words")) return;
    if (!exists(file.get(), "vocab")) throw error("dataset 'words' without dataset 'vocab'");
    require_attribute("word_length", "");
    word_length = h5::read_int_attribute(file.get(), "word_length");
    words = open("words", 2, H5T_INTEGER, 4, "int32", true);
    if (words.width != word_length)
      throw error("dataset 'words' has " + std::to_string(words.width) + " columns but attribute word_length is " +
                  std::to_string(word_length));
    if (exists(file.get(), "word_lengths")) word_lengths = open("word_lengths", 1, H5T_INTEGER, 4, "int32", true);
  }

  // Rows [begin, begin + count) of `d` into `out` (count, max(width, 1)) as `memory_type`.
  void read(const RowDataset& d, const char* dataset, hid_t memory_type, std::int64_t begin, std::int64_t count,
            void* out) const {
    if (!d.handle.valid()) throw error("dataset '" + std::string(dataset) + "' missing");
    if (begin < 0 || count < 0 || begin > rows || count > rows - begin)
      throw error("rows [" + std::to_string(begin) + ", " + std::to_string(begin + count) + ") of dataset '" + dataset +
                  "' requested, the file has " + std::to_string(rows));
    if (count == 0) return;
    named([&] {
      h5::Handle space(TS_CHECK_HDF5(H5Dget_space(d.handle.get())));
      const hsize_t start[2] = {static_cast<hsize_t>(begin), 0};
      const hsize_t size[2] = {static_cast<hsize_t>(count), static_cast<hsize_t>(std::max<std::int64_t>(d.width, 1))};
      TS_CHECK_HDF5(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start, nullptr, size, nullptr));
      h5::Handle memory(TS_CHECK_HDF5(H5Screate_simple(d.width > 0 ? 2 : 1, size, nullptr)));
      checked_read(dataset, [&] {
        TS_CHECK_HDF5(H5Dread(d.handle.get(), memory_type, memory.get(), space.get(), H5P_DEFAULT, out));
      });
    });
  }

  // Runs the read `fn`, turning a checksum failure into a message that names the dataset.
  template <typename Fn>
  void checked_read(const char* dataset, Fn fn) const {
    try {
      fn();
    } catch (const Hdf5Error& failure) {
      if (!is_checksum_error(failure)) throw;
      throw error("dataset '" + std::string(dataset) +
                  "' is damaged (checksum mismatch in a chunk) — re-run preprocess");
    }
  }

  // Stored lengths of rows [begin, begin + count) are within 0..width.
  void check_lengths(const char* dataset, const std::int32_t* lengths, std::int64_t begin, std::int64_t count,
                     std::int64_t width) const {
    for (std::int64_t i = 0; i < count; ++i)
      if (lengths[i] < 0 || lengths[i] > width)
        throw error("dataset '" + std::string(dataset) + "' row " + std::to_string(begin + i) + " holds " +
                    std::to_string(lengths[i]) + ", outside 0.." + std::to_string(width));
  }

  std::size_t chunk_cache_bytes = 0;
  bool checksums = false;  // schema_version 2 and later
};

DatasetFile::DatasetFile(const std::string& path, const OpenOptions& options) : impl_(std::make_unique<Impl>()) {
  Impl& f = *impl_;
  f.path = path;
  f.name = options.name.empty() ? path : options.name;
  f.chunk_cache_bytes = options.chunk_cache_bytes;
  std::error_code status;
  if (!std::filesystem::exists(path, status)) throw f.error("no such file");
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    throw f.error("not an HDF5 file (expected the output of `textscale preprocess`)");
  }
  f.file = h5::Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!f.file.valid()) {
    H5Eclear2(H5E_DEFAULT);
    throw f.error("cannot open the HDF5 file (truncated or damaged?)");
  }
  f.named([&] { f.validate(); });
}

DatasetFile::DatasetFile(DatasetFile&&) noexcept = default;
DatasetFile& DatasetFile::operator=(DatasetFile&&) noexcept = default;
DatasetFile::~DatasetFile() = default;

const std::string& DatasetFile::path() const {
  return impl_->path;
}
const std::string& DatasetFile::name() const {
  return impl_->name;
}
std::int64_t DatasetFile::rows() const {
  return impl_->rows;
}
std::int64_t DatasetFile::num_classes() const {
  return impl_->num_classes;
}
const std::vector<std::string>& DatasetFile::classes() const {
  return impl_->classes;
}
bool DatasetFile::has_chars() const {
  return impl_->chars.handle.valid();
}
const std::string& DatasetFile::alphabet() const {
  return impl_->alphabet;
}
std::int64_t DatasetFile::char_length() const {
  return impl_->char_length;
}
const std::string& DatasetFile::char_order() const {
  return impl_->char_order;
}
bool DatasetFile::has_words() const {
  return impl_->words.handle.valid();
}
std::int64_t DatasetFile::word_length() const {
  return impl_->word_length;
}
bool DatasetFile::has_vocabulary() const {
  return impl_->has_vocab;
}
std::int64_t DatasetFile::vocab_size() const {
  return impl_->vocab_size;
}
const std::string& DatasetFile::source_sha256() const {
  return impl_->source_sha256;
}
const std::string& DatasetFile::content_sha256() const {
  return impl_->content_sha256;
}

std::vector<std::int64_t> DatasetFile::shape(const std::string& dataset) const {
  std::vector<std::int64_t> shape;
  if (!exists(impl_->file.get(), dataset.c_str())) return shape;
  impl_->named([&] {
    h5::Handle handle(TS_CHECK_HDF5(H5Dopen2(impl_->file.get(), dataset.c_str(), H5P_DEFAULT)));
    for (const hsize_t d : dims_of(handle.get())) shape.push_back(static_cast<std::int64_t>(d));
  });
  return shape;
}

std::optional<std::string> DatasetFile::text_attribute(const std::string& attribute) const {
  if (!h5::has_attribute(impl_->file.get(), attribute)) return std::nullopt;
  return impl_->named([&] { return h5::read_string_attribute(impl_->file.get(), attribute); });
}

std::optional<std::int64_t> DatasetFile::int_attribute(const std::string& attribute) const {
  if (!h5::has_attribute(impl_->file.get(), attribute)) return std::nullopt;
  return impl_->named([&] { return h5::read_int_attribute(impl_->file.get(), attribute); });
}

void DatasetFile::require_chars() const {
  if (!has_chars()) throw impl_->error("no character tensors (dataset 'chars' missing; was it made with --no-chars?)");
}

void DatasetFile::require_words() const {
  if (!has_words()) throw impl_->error("no word tensors (dataset 'words' missing; was it made with --no-words?)");
}

void DatasetFile::require_vocabulary() const {
  if (!has_vocabulary()) throw impl_->error("no vocabulary (dataset 'vocab' missing; was it made with --no-words?)");
}

std::vector<std::string> DatasetFile::read_vocabulary() const {
  require_vocabulary();
  return impl_->named([&] { return h5::read_string_dataset(impl_->file.get(), "vocab"); });
}

std::vector<std::int64_t> DatasetFile::read_vocab_counts() const {
  std::vector<std::int64_t> counts;
  if (!impl_->has_vocab_counts) return counts;
  counts.resize(static_cast<std::size_t>(impl_->vocab_size));
  impl_->named([&] {
    h5::Handle dataset(TS_CHECK_HDF5(H5Dopen2(impl_->file.get(), "vocab_counts", H5P_DEFAULT)));
    if (!counts.empty())
      impl_->checked_read("vocab_counts", [&] {
        TS_CHECK_HDF5(H5Dread(dataset.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, counts.data()));
      });
  });
  return counts;
}

void DatasetFile::read_labels(std::int64_t begin, std::int64_t count, std::int32_t* out) const {
  const Impl& f = *impl_;
  f.read(f.labels, "labels", H5T_NATIVE_INT32, begin, count, out);
  for (std::int64_t i = 0; i < count; ++i)
    if (out[i] < 0 || out[i] >= f.num_classes)
      throw f.error("dataset 'labels' row " + std::to_string(begin + i) + " holds " + std::to_string(out[i]) +
                    ", outside [0, num_classes = " + std::to_string(f.num_classes) + ")");
}

void DatasetFile::read_chars(std::int64_t begin, std::int64_t count, std::uint8_t* out) const {
  const Impl& f = *impl_;
  require_chars();
  f.read(f.chars, "chars", H5T_NATIVE_UINT8, begin, count, out);
  const auto symbols = static_cast<std::uint8_t>(f.alphabet.size());
  const std::int64_t length = f.char_length;
  for (std::int64_t i = 0; i < count * length; ++i)
    if (out[i] > symbols)
      throw f.error("dataset 'chars' row " + std::to_string(begin + i / length) + " holds code " +
                    std::to_string(out[i]) + ", outside the alphabet of " + std::to_string(symbols) + " symbols");
}

void DatasetFile::read_char_lengths(std::int64_t begin, std::int64_t count, std::int32_t* out) const {
  const Impl& f = *impl_;
  require_chars();
  f.read(f.char_lengths, "char_lengths", H5T_NATIVE_INT32, begin, count, out);
  f.check_lengths("char_lengths", out, begin, count, f.char_length);
}

void DatasetFile::read_words(std::int64_t begin, std::int64_t count, std::int32_t* out) const {
  const Impl& f = *impl_;
  require_words();
  f.read(f.words, "words", H5T_NATIVE_INT32, begin, count, out);
  const std::int64_t length = f.word_length;
  for (std::int64_t i = 0; i < count * length; ++i)
    if (out[i] < 0 || out[i] >= f.vocab_size)
      throw f.error("dataset 'words' row " + std::to_string(begin + i / length) + " holds id " +
                    std::to_string(out[i]) + ", outside the vocabulary of " + std::to_string(f.vocab_size) + " ids");
}

void DatasetFile::read_word_lengths(std::int64_t begin, std::int64_t count, std::int32_t* out) const {
  const Impl& f = *impl_;
  require_words();
  f.read(f.word_lengths, "word_lengths", H5T_NATIVE_INT32, begin, count, out);
  f.check_lengths("word_lengths", out, begin, count, f.word_length);
}

}  // namespace textscale::data
