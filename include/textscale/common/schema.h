// Constants of the preprocessed file format (docs/hdf5-schema.md), shared by the writer
// (`textscale preprocess`) and its readers (training, evaluation, `textscale inspect`).
#pragma once

#include <cstdint>

namespace textscale {

// The schema_version attribute this build writes, and the newest it reads. Version 2 adds
// checksums (Fletcher-32 on the row datasets and vocab_counts, the attribute description_sha256);
// version 1 files are read with a warning that nothing can be verified.
inline constexpr std::int64_t kSchemaVersion = 2;
inline constexpr std::int64_t kOldestSchemaVersion = 1;
// The first schema version with checksums.
inline constexpr std::int64_t kFirstChecksumSchemaVersion = 2;

// The most classes a file may hold: far beyond any single-label corpus, and a bound on what a
// label or a num_classes attribute makes the programs allocate.
inline constexpr std::int64_t kMaxClasses = std::int64_t{1} << 20;

}  // namespace textscale
