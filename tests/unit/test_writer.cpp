// HDF5 row files: contents, chunked extendible datasets, atomic commit, seeded shuffling.
#define BOOST_TEST_MODULE writer
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>
#include <set>

#include "textscale/common/error.h"
#include "textscale/common/hdf5.h"
#include "textscale/preprocess/hdf5_writer.h"
#include "textscale/preprocess/source.h"

using namespace textscale::preprocess;
namespace fs = std::filesystem;
namespace h5 = textscale::h5;

namespace {

fs::path temp_path(const std::string& name) {
  return fs::temp_directory_path() / ("textscale-writer-" + std::to_string(::getpid()) + "-" + name);
}

EncodedRows make_rows(int first, int count, const RowLayout& layout) {
  EncodedRows rows;
  for (int r = first; r < first + count; ++r) {
    rows.labels.push_back(r % 3);
    rows.char_lengths.push_back(r % layout.char_length);
    for (int j = 0; j < layout.char_length; ++j) rows.chars.push_back(static_cast<std::uint8_t>((r + j) % 70));
    rows.word_lengths.push_back(r % layout.word_length);
    for (int j = 0; j < layout.word_length; ++j) rows.words.push_back(r * 1000 + j);
  }
  return rows;
}

template <typename T>
std::vector<T> read_dataset(hid_t file, const char* name, hid_t type) {
  h5::Handle dataset(H5Dopen2(file, name, H5P_DEFAULT));
  BOOST_REQUIRE(dataset.valid());
  h5::Handle space(H5Dget_space(dataset.get()));
  std::vector<T> values(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.get())));
  BOOST_REQUIRE(H5Dread(dataset.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) >= 0);
  return values;
}

std::string stored_digest(const fs::path& path) {
  h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  BOOST_REQUIRE(file.valid());
  return h5::read_string_attribute(file.get(), "content_sha256");
}

// Writes rows [0, n) in appends of `batch` rows (shuffled with `seed` when shuffle), describes the
// content with `classes`, and returns the digest stored in the file; `changed_row` >= 0 gets
// another label.
std::string digest_of_written(const std::string& name, int n, int batch, bool shuffle, std::uint64_t seed,
                              const std::vector<std::string>& classes, int changed_row = -1) {
  const RowLayout layout{true, 9, true, 4, 0};
  const fs::path path = temp_path(name);
  fs::remove(path);
  std::string digest;
  {
    RowFileWriter writer(path.string(), layout, false, shuffle, seed);
    for (int first = 0; first < n; first += batch) {
      auto rows = make_rows(first, std::min(batch, n - first), layout);
      if (changed_row >= first && changed_row < first + batch)
        rows.labels[static_cast<std::size_t>(changed_row - first)] += 1;
      writer.append(rows);
    }
    const std::vector<std::string> vocabulary = {"<pad>", "<unk>", "a"};
    writer.describe_content({3, &classes, "abc", &vocabulary});
    writer.commit();
    digest = writer.content_sha256();
  }
  BOOST_TEST(stored_digest(path) == digest);
  fs::remove(path);
  return digest;
}

// The content digest recomputed from a file's datasets as docs/hdf5-schema.md describes it
// ("Content digest"), with the description's digest given.
std::string recomputed_digest(const fs::path& path, const std::array<unsigned char, 32>& description) {
  h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  Sha256 outer;
  const std::string magic = "textscale-content-1\n";
  outer.update(magic.data(), magic.size());
  for (const char* name : {"labels", "chars", "char_lengths", "words", "word_lengths"}) {
    if (H5Lexists(file.get(), name, H5P_DEFAULT) <= 0) continue;
    h5::Handle dataset(H5Dopen2(file.get(), name, H5P_DEFAULT));
    h5::Handle space(H5Dget_space(dataset.get()));
    hsize_t dims[2] = {0, 0};
    const int rank = H5Sget_simple_extent_dims(space.get(), dims, nullptr);
    Sha256 rows;
    if (std::string(name) == "chars") {
      const auto values = read_dataset<std::uint8_t>(file.get(), name, H5T_STD_U8LE);
      rows.update(values.data(), values.size());
    } else {
      const auto values = read_dataset<std::int32_t>(file.get(), name, H5T_STD_I32LE);
      rows.update(values.data(), values.size() * 4);
    }
    const std::int64_t shape[2] = {static_cast<std::int64_t>(dims[0]),
                                   rank == 2 ? static_cast<std::int64_t>(dims[1]) : 0};
    outer.update(name, std::strlen(name));
    outer.update("\n", 1);
    outer.update(shape, sizeof shape);
    const auto digest = rows.digest();
    outer.update(digest.data(), digest.size());
  }
  outer.update("description\n", 12);
  outer.update(description.data(), description.size());
  return outer.hex();
}

}  // namespace

BOOST_AUTO_TEST_CASE(content_digest_covers_the_rows_in_file_order) {
  const std::vector<std::string> classes = {"x", "y", "z"};
  const int n = 5000;
  const std::string plain = digest_of_written("digest-a.h5", n, n, false, 0, classes);
  BOOST_TEST(plain.size() == 64u);
  BOOST_TEST(plain.find_first_not_of("0123456789abcdef") == std::string::npos);
  // The same rows appended in other pieces (as other thread counts deliver them): the same digest.
  BOOST_TEST(digest_of_written("digest-b.h5", n, 777, false, 0, classes) == plain);
  // The order is part of the content: another seed, another digest; the same seed, the same one.
  const std::string seed1 = digest_of_written("digest-c.h5", n, 1000, true, 1, classes);
  BOOST_TEST(digest_of_written("digest-d.h5", n, 3333, true, 1, classes) == seed1);
  BOOST_TEST(digest_of_written("digest-e.h5", n, 1000, true, 2, classes) != seed1);
  BOOST_TEST(seed1 != plain);
  // One label, or the class names, changed: another digest.
  BOOST_TEST(digest_of_written("digest-f.h5", n, 1000, false, 0, classes, 4321) != plain);
  BOOST_TEST(digest_of_written("digest-g.h5", n, 1000, false, 0, {"x", "y", "w"}) != plain);
}

BOOST_AUTO_TEST_CASE(content_digest_is_what_the_documentation_describes) {
  // A shuffled file: the digest covers the rows in the file's order, not the order appended.
  const RowLayout layout{true, 5, true, 3, 0};
  const fs::path path = temp_path("digest-recomputed.h5");
  fs::remove(path);
  const std::vector<std::string> classes = {"neg", "pos", "other"};
  const std::vector<std::string> vocabulary = {"<pad>", "<unk>", "the", "cat"};
  {
    RowFileWriter writer(path.string(), layout, false, true, 7);
    writer.append(make_rows(0, 1234, layout));
    writer.describe_content({3, &classes, "abcde", &vocabulary});
    writer.commit();
  }
  Sha256 description;
  const std::int64_t num_classes = 3, class_count = 3, vocab_count = 4;
  description.update(&num_classes, 8);
  description.update(&class_count, 8);
  for (const auto& c : classes) description.update(c.c_str(), c.size() + 1);
  description.update("abcde", 6);
  description.update(&vocab_count, 8);
  for (const auto& w : vocabulary) description.update(w.c_str(), w.size() + 1);
  BOOST_TEST(recomputed_digest(path, description.digest()) == stored_digest(path));
  fs::remove(path);
}

BOOST_AUTO_TEST_CASE(permutation_is_seeded_and_complete) {
  const auto a = seeded_permutation(1000, 42);
  const auto b = seeded_permutation(1000, 42);
  const auto c = seeded_permutation(1000, 43);
  BOOST_TEST(a == b);
  BOOST_TEST(a != c);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (std::uint64_t i = 0; i < 1000; ++i) BOOST_TEST(sorted[i] == i);
  BOOST_TEST(seeded_permutation(0, 1).empty());
}

BOOST_AUTO_TEST_CASE(rows_arrive_in_order_and_file_appears_only_on_commit) {
  const RowLayout layout{true, 7, true, 5, 0};
  const fs::path path = temp_path("plain.h5");
  fs::remove(path);
  {
    RowFileWriter writer(path.string(), layout, false, false, 1);
    writer.append(make_rows(0, 10, layout));
    writer.append(make_rows(10, 2500, layout));  // crosses chunk boundaries
    BOOST_TEST(!fs::exists(path));
    BOOST_TEST(writer.rows() == 2510);
    writer.commit();
  }
  BOOST_REQUIRE(fs::exists(path));
  h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  const auto labels = read_dataset<std::int32_t>(file.get(), "labels", H5T_NATIVE_INT32);
  const auto chars = read_dataset<std::uint8_t>(file.get(), "chars", H5T_NATIVE_UINT8);
  const auto words = read_dataset<std::int32_t>(file.get(), "words", H5T_NATIVE_INT32);
  BOOST_REQUIRE(labels.size() == 2510u);
  const auto expected = make_rows(0, 2510, layout);
  BOOST_TEST(labels == expected.labels);
  BOOST_TEST(chars == expected.chars);
  BOOST_TEST(words == expected.words);
  fs::remove(path);
}

BOOST_AUTO_TEST_CASE(uncommitted_writer_leaves_nothing_behind) {
  const RowLayout layout{true, 4, false, 1, 0};
  const fs::path path = temp_path("aborted.h5");
  fs::remove(path);
  {
    RowFileWriter writer(path.string(), layout, false, true, 1);
    writer.append(make_rows(0, 100, layout));
  }
  BOOST_TEST(!fs::exists(path));
  for (const auto& entry : fs::directory_iterator(fs::temp_directory_path()))
    BOOST_TEST(entry.path().filename().string().find("textscale-writer-" + std::to_string(::getpid()) + "-aborted") ==
               std::string::npos);
}

BOOST_AUTO_TEST_CASE(existing_output_needs_overwrite) {
  const RowLayout layout{true, 4, false, 1, 0};
  const fs::path path = temp_path("exists.h5");
  std::ofstream(path) << "keep me";
  BOOST_CHECK_THROW(RowFileWriter(path.string(), layout, false, false, 1), textscale::InputError);
  BOOST_TEST(fs::file_size(path) == 7u);
  {
    RowFileWriter writer(path.string(), layout, true, false, 1);
    writer.append(make_rows(0, 3, layout));
    writer.commit();
  }
  BOOST_TEST(fs::file_size(path) > 7u);
  fs::remove(path);
}

BOOST_AUTO_TEST_CASE(shuffled_rows_follow_the_seeded_permutation) {
  const RowLayout layout{true, 6, true, 3, 0};
  const fs::path path = temp_path("shuffled.h5");
  fs::remove(path);
  const int n = 9000;
  {
    RowFileWriter writer(path.string(), layout, false, true, 99);
    writer.append(make_rows(0, 5000, layout));
    writer.append(make_rows(5000, n - 5000, layout));
    writer.commit();
  }
  h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  const auto words = read_dataset<std::int32_t>(file.get(), "words", H5T_NATIVE_INT32);
  const auto chars = read_dataset<std::uint8_t>(file.get(), "chars", H5T_NATIVE_UINT8);
  const auto order = seeded_permutation(n, 99);
  const auto source = make_rows(0, n, layout);
  for (int i = 0; i < n; ++i) {
    const auto r = static_cast<int>(order[static_cast<std::size_t>(i)]);
    BOOST_TEST(words[static_cast<std::size_t>(i) * 3] == r * 1000);
    BOOST_TEST(chars[static_cast<std::size_t>(i) * 6 + 1] == source.chars[static_cast<std::size_t>(r) * 6 + 1]);
  }
  fs::remove(path);
}

BOOST_AUTO_TEST_CASE(validation_membership_is_deterministic_and_near_the_fraction) {
  int in = 0;
  for (int i = 0; i < 100000; ++i) {
    const bool a = in_validation(5, i, 0.1);
    BOOST_TEST(a == in_validation(5, i, 0.1));
    in += a;
  }
  BOOST_TEST(in > 9500);
  BOOST_TEST(in < 10500);
  BOOST_TEST(!in_validation(5, 3, 0.0));
}

BOOST_AUTO_TEST_CASE(preallocated_file_equals_the_appended_one) {
  // With the row count known up front, chunks are preallocated on page boundaries and written
  // directly (O_DIRECT where the file system allows it); the content must be the same as
  // appending through HDF5, including a last, partial chunk.
  const RowLayout layout{true, 1014, true, 300, 0};
  const int n = 41000;  // 89 MB (large enough to preallocate); 20 chunks of chars and a partial one
  const fs::path a = temp_path("appended.h5"), b = temp_path("preallocated.h5");
  fs::remove(a);
  fs::remove(b);
  {
    RowFileWriter appended(a.string(), layout, false, false, 1);
    RowFileWriter preallocated(b.string(), layout, false, false, 1, n);
    BOOST_TEST(!appended.direct());
    for (int first = 0; first < n; first += 3000) {
      const auto rows = make_rows(first, std::min(3000, n - first), layout);
      appended.append(rows);
      preallocated.append(rows);
    }
    appended.commit();
    preallocated.commit();
    // Where the file system takes O_DIRECT (ext4, xfs; not tmpfs), the chunks went that way.
    const int probe =
        ::open((b.parent_path() / "textscale-odirect-probe").c_str(), O_WRONLY | O_CREAT | O_DIRECT, 0600);
    if (probe >= 0) {
      ::close(probe);
      fs::remove(b.parent_path() / "textscale-odirect-probe");
      BOOST_TEST(preallocated.direct());
    } else {
      BOOST_TEST_MESSAGE("no O_DIRECT in " << b.parent_path() << ": the page-cache fallback was tested");
    }
  }
  BOOST_TEST(stored_digest(a) == stored_digest(b));
  h5::Handle fa(H5Fopen(a.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT)), fb(H5Fopen(b.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  BOOST_TEST(read_dataset<std::uint8_t>(fa.get(), "chars", H5T_NATIVE_UINT8) ==
             read_dataset<std::uint8_t>(fb.get(), "chars", H5T_NATIVE_UINT8));
  BOOST_TEST(read_dataset<std::int32_t>(fa.get(), "words", H5T_NATIVE_INT32) ==
             read_dataset<std::int32_t>(fb.get(), "words", H5T_NATIVE_INT32));
  const auto labels = read_dataset<std::int32_t>(fb.get(), "labels", H5T_NATIVE_INT32);
  BOOST_TEST(labels == make_rows(0, n, layout).labels);
  BOOST_TEST(read_dataset<std::int32_t>(fb.get(), "word_lengths", H5T_NATIVE_INT32) ==
             make_rows(0, n, layout).word_lengths);
  // Preallocated chunks are whole pages.
  h5::Handle chars(H5Dopen2(fb.get(), "chars", H5P_DEFAULT));
  h5::Handle create(H5Dget_create_plist(chars.get()));
  hsize_t chunk[2] = {0, 0};
  BOOST_REQUIRE(H5Pget_chunk(create.get(), 2, chunk) == 2);
  BOOST_TEST(chunk[0] * chunk[1] % 4096 == 0u);
  fs::remove(a);
  fs::remove(b);
}

BOOST_AUTO_TEST_CASE(fewer_rows_than_counted_is_an_error_and_leaves_nothing) {
  const RowLayout layout{true, 16, false, 1, 0};
  const fs::path path = temp_path("short.h5");
  fs::remove(path);
  {
    RowFileWriter writer(path.string(), layout, false, false, 1, 100);
    writer.append(make_rows(0, 60, layout));
    BOOST_CHECK_THROW(writer.commit(), textscale::InputError);
  }
  BOOST_TEST(!fs::exists(path));
  {
    RowFileWriter writer(path.string(), layout, false, false, 1, 10);
    BOOST_CHECK_THROW(
        {
          writer.append(make_rows(0, 5000, layout));
          writer.commit();
        },
        textscale::InputError);
  }
  BOOST_TEST(!fs::exists(path));
}
