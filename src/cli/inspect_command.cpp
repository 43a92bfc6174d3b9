#include <boost/program_options.hpp>

#include <hdf5.h>

#include <cstdio>
#include <iostream>
#include <vector>

#include "textscale/cli/commands.h"
#include "textscale/cli/options.h"
#include "textscale/common/error.h"
#include "textscale/common/hdf5.h"
#include "textscale/common/schema.h"

namespace po = boost::program_options;

namespace textscale::cli {

namespace {

struct DatasetShape {
  bool present = false;
  std::vector<hsize_t> dims;
};

DatasetShape shape_of(hid_t file, const char* name) {
  DatasetShape shape;
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0) return shape;
  h5::Handle dataset(TS_CHECK_HDF5(H5Dopen2(file, name, H5P_DEFAULT)));
  h5::Handle space(TS_CHECK_HDF5(H5Dget_space(dataset.get())));
  shape.dims.resize(static_cast<std::size_t>(TS_CHECK_HDF5(H5Sget_simple_extent_ndims(space.get()))));
  TS_CHECK_HDF5(H5Sget_simple_extent_dims(space.get(), shape.dims.data(), nullptr));
  shape.present = true;
  return shape;
}

// Refuses a dataset whose rank or number of rows is not what textscale preprocess writes, before
// anything is read through its shape.
void require_shape(const std::string& path, const char* name, const DatasetShape& shape, std::size_t rank,
                   hsize_t rows) {
  if (shape.dims.size() != rank)
    throw InputError("'" + path + "': dataset '" + name + "' has rank " + std::to_string(shape.dims.size()) +
                     ", expected " + std::to_string(rank));
  if (shape.dims[0] != rows)
    throw InputError("'" + path + "': dataset '" + name + "' has " + std::to_string(shape.dims[0]) +
                     " rows, 'labels' has " + std::to_string(rows));
}

// A stored length, checked against the width of its row.
int stored_length(const std::string& path, const char* name, std::int32_t length, hsize_t width, long long row) {
  if (length < 0 || static_cast<hsize_t>(length) > width)
    throw InputError("'" + path + "': dataset '" + name + "' row " + std::to_string(row) + " holds " +
                     std::to_string(length) + ", outside 0.." + std::to_string(width));
  return length;
}

// Reads `count` elements of row `row` of a 1-D or 2-D dataset.
template <typename T>
std::vector<T> read_row(hid_t file, const char* name, hid_t memory_type, hsize_t row, hsize_t width) {
  h5::Handle dataset(TS_CHECK_HDF5(H5Dopen2(file, name, H5P_DEFAULT)));
  h5::Handle space(TS_CHECK_HDF5(H5Dget_space(dataset.get())));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  const hsize_t start[2] = {row, 0};
  const hsize_t count[2] = {1, width};
  TS_CHECK_HDF5(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr));
  const hsize_t n = rank == 1 ? 1 : width;
  h5::Handle memory(TS_CHECK_HDF5(H5Screate_simple(1, &n, nullptr)));
  std::vector<T> values(n);
  TS_CHECK_HDF5(H5Dread(dataset.get(), memory_type, memory.get(), space.get(), H5P_DEFAULT, values.data()));
  return values;
}

}  // namespace

int inspect_command(const std::vector<std::string>& arguments) {
  std::string path;
  std::vector<long long> rows;
  po::options_description options(
      "textscale inspect: summary of a preprocessed file\n\nusage: textscale inspect FILE.h5 [--row K ...]");
  options.add_options()("help,h", "show this help")("file", po::value(&path), "the HDF5 file")(
      "row", po::value(&rows)->multitoken(), "also decode these rows (0-based) back to text");
  po::positional_options_description positional;
  positional.add("file", 1);
  po::variables_map values;
  if (!parse_options(arguments, options, values, &positional)) return 0;
  if (path.empty()) throw UsageError{"a file to inspect is required"};

  h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file.valid()) throw InputError("'" + path + "' is not a readable HDF5 file");
  const hid_t f = file.get();
  const auto text = [&](const char* name) {
    return h5::has_attribute(f, name) ? h5::read_string_attribute(f, name) : std::string("-");
  };
  const auto number = [&](const char* name) {
    return h5::has_attribute(f, name) ? std::to_string(h5::read_int_attribute(f, name)) : std::string("-");
  };
  if (!h5::has_attribute(f, "schema_version"))
    throw InputError("'" + path + "' has no schema_version attribute: not written by textscale preprocess");
  if (const auto version = h5::read_int_attribute(f, "schema_version"); version != kSchemaVersion)
    throw InputError("'" + path + "': schema_version " + std::to_string(version) +
                     " is not supported (this build reads " + std::to_string(kSchemaVersion) + ")");
  std::cout << path << ": schema " << number("schema_version") << ", split " << text("split") << ", "
            << number("num_rows") << " rows (" << number("num_bad_rows") << " bad rows skipped)\n";
  std::cout << "source " << text("source_file") << " (" << text("input_format") << ", sha256 " << text("source_sha256")
            << ")\ncreated " << text("created") << " by " << text("created_by") << "\n";
  const std::vector<std::string> classes = h5::read_string_list_attribute(f, "classes");
  const DatasetShape labels = shape_of(f, "labels");
  if (!labels.present) throw InputError("'" + path + "': dataset 'labels' is missing");
  if (labels.dims.size() != 1)
    throw InputError("'" + path + "': dataset 'labels' has rank " + std::to_string(labels.dims.size()) +
                     ", expected 1");
  const hsize_t num_rows = labels.dims[0];
  std::vector<std::int32_t> all_labels(num_rows);
  if (!all_labels.empty()) {
    h5::Handle dataset(TS_CHECK_HDF5(H5Dopen2(f, "labels", H5P_DEFAULT)));
    TS_CHECK_HDF5(H5Dread(dataset.get(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, all_labels.data()));
  }
  std::size_t num_classes = classes.size();
  if (h5::has_attribute(f, "num_classes")) {
    const std::int64_t stored = h5::read_int_attribute(f, "num_classes");
    if (stored < 0 || stored > kMaxClasses)
      throw InputError("'" + path + "': attribute num_classes is " + std::to_string(stored) + ", outside 0.." +
                       std::to_string(kMaxClasses));
    num_classes = static_cast<std::size_t>(stored);
  }
  std::vector<long long> counts(num_classes, 0);
  for (const std::int32_t label : all_labels) {
    if (label >= 0 && static_cast<std::size_t>(label) < counts.size()) ++counts[static_cast<std::size_t>(label)];
  }
  std::cout << "classes " << counts.size() << ":";
  for (std::size_t c = 0; c < counts.size(); ++c)
    std::cout << (c ? ", " : " ") << (c < classes.size() ? classes[c] : std::to_string(c)) << " " << counts[c];
  std::cout << "\n";
  for (const char* name : {"labels", "chars", "char_lengths", "words", "word_lengths", "vocab", "vocab_counts"}) {
    const DatasetShape shape = shape_of(f, name);
    if (!shape.present) continue;
    std::cout << "  " << name << " [";
    for (std::size_t d = 0; d < shape.dims.size(); ++d) std::cout << (d ? ", " : "") << shape.dims[d];
    std::cout << "]\n";
  }
  if (h5::has_attribute(f, "tokenizer"))
    std::cout << "words: tokenizer " << text("tokenizer") << ", vocabulary " << number("vocab_size") << " ids (from "
              << text("vocab_source") << ")\n";

  const DatasetShape chars = shape_of(f, "chars");
  const DatasetShape words = shape_of(f, "words");
  std::vector<std::string> vocab;
  std::string alphabet;
  if (!rows.empty()) {
    if (chars.present) {
      if (!h5::has_attribute(f, "alphabet"))
        throw InputError("'" + path + "': dataset 'chars' without attribute 'alphabet'");
      alphabet = text("alphabet");
      require_shape(path, "chars", chars, 2, num_rows);
      require_shape(path, "char_lengths", shape_of(f, "char_lengths"), 1, num_rows);
    }
    if (words.present) {
      require_shape(path, "words", words, 2, num_rows);
      require_shape(path, "word_lengths", shape_of(f, "word_lengths"), 1, num_rows);
      vocab = h5::read_string_dataset(f, "vocab");
    }
  }
  for (const long long row : rows) {
    if (num_rows == 0) throw InputError("--row " + std::to_string(row) + ": '" + path + "' has no rows");
    if (row < 0 || static_cast<std::size_t>(row) >= all_labels.size())
      throw InputError("--row " + std::to_string(row) + " is outside 0.." + std::to_string(all_labels.size() - 1));
    const std::int32_t label = all_labels[static_cast<std::size_t>(row)];
    std::cout << "row " << row << ": label " << label;
    if (label >= 0 && static_cast<std::size_t>(label) < classes.size())
      std::cout << " (" << classes[static_cast<std::size_t>(label)] << ")";
    std::cout << "\n";
    if (chars.present) {
      // Stored reversed; print in reading order, '_' for symbol 0 and a pilcrow for a newline.
      const auto codes = read_row<std::uint8_t>(f, "chars", H5T_NATIVE_UINT8, static_cast<hsize_t>(row), chars.dims[1]);
      const int length =
          stored_length(path, "char_lengths",
                        read_row<std::int32_t>(f, "char_lengths", H5T_NATIVE_INT32, static_cast<hsize_t>(row), 1)[0],
                        chars.dims[1], row);
      std::string decoded;
      for (int j = length - 1; j >= 0; --j) {
        const std::uint8_t code = codes[static_cast<std::size_t>(j)];
        if (code > alphabet.size())
          throw InputError("'" + path + "': dataset 'chars' row " + std::to_string(row) + " holds code " +
                           std::to_string(code) + ", outside the alphabet's " + std::to_string(alphabet.size()));
        if (code == 0)
          decoded += '_';
        else if (alphabet[code - 1u] == '\n')
          decoded += "\u00b6";  // pilcrow for a newline
        else
          decoded += alphabet[code - 1u];
      }
      std::cout << "  chars (" << length << "): " << decoded << "\n";
    }
    if (words.present) {
      const auto ids = read_row<std::int32_t>(f, "words", H5T_NATIVE_INT32, static_cast<hsize_t>(row), words.dims[1]);
      const int length =
          stored_length(path, "word_lengths",
                        read_row<std::int32_t>(f, "word_lengths", H5T_NATIVE_INT32, static_cast<hsize_t>(row), 1)[0],
                        words.dims[1], row);
      std::cout << "  words (" << length << "):";
      for (int j = 0; j < length; ++j) {
        const auto id = static_cast<std::size_t>(ids[static_cast<std::size_t>(j)]);
        std::cout << " " << (id < vocab.size() ? vocab[id] : "?");
      }
      std::cout << "\n";
    }
  }
  return 0;
}

}  // namespace textscale::cli
