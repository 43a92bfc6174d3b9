// libFuzzer target: delimited records (preprocess's CSV/TSV reader) and the text rules applied to
// each field. The first byte chooses the layout (delimiter, quoting, header, a small row limit,
// tiny reads); the rest is the input. Checks what the reader promises: malformed records come back
// flagged, only a header it cannot read is an error (InputError, which the command reports), every
// field lies inside its block's arena, and ordinals count up from 0.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "textscale/common/error.h"
#include "textscale/preprocess/record_reader.h"
#include "textscale/preprocess/source.h"
#include "textscale/preprocess/text.h"

using namespace textscale::preprocess;

namespace {

void require(bool condition) {
  if (!condition) std::abort();  // a broken promise: libFuzzer reports the input
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t layout = data[0];
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  PreprocessOptions options;
  options.format = InputFormat::tsv;
  options.delimiter = (layout & 1) ? ',' : '\t';
  options.quoting = (layout & 2) != 0;
  options.header = (layout & 4) != 0;
  options.max_row_bytes = (layout & 8) ? 16 : 1u << 20;
  options.block_bytes = (layout & 16) ? 7 : 1u << 20;
  const std::size_t read_size = (layout & 32) ? 3 : 1u << 16;
  std::size_t position = 0;
  auto source = std::make_unique<ByteSource>(
      "fuzz",
      [&](char* destination, std::size_t capacity) {
        const std::size_t n = std::min({capacity, read_size, text.size() - position});
        std::copy_n(text.data() + position, n, destination);
        position += n;
        return n;
      },
      false);
  std::unique_ptr<RecordReader> reader;
  try {
    reader = make_delimited_reader(std::move(source), options);
  } catch (const textscale::InputError&) {
    require(options.header);  // only the header is read at construction
    return 0;
  }
  std::int64_t next_ordinal = 0;
  std::string unescaped;
  while (auto block = reader->next()) {
    for (const RawRecord& record : block->records) {
      require(record.ordinal == next_ordinal++);
      require(record.first_field + record.field_count <= block->fields.size());
      for (std::uint32_t f = record.first_field; f < record.first_field + record.field_count; ++f) {
        const FieldSpan span = block->fields[f];
        require(std::uint64_t{span.offset} + span.size <= block->arena.size());
        const std::string_view field(block->arena.data() + span.offset, span.size);
        unescaped.clear();
        append_unescaped(unescaped, field, (layout & 64) ? Unescape::backslash : Unescape::newline);
        (void)find_invalid_utf8(field);
        (void)is_blank(field);
      }
    }
  }
  return 0;
}
