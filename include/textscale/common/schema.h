// Constants of the preprocessed file format (docs/hdf5-schema.md), shared by the writer
// (`textscale preprocess`) and its readers (training, evaluation, `textscale inspect`).
#pragma once

#include <cstdint>

namespace textscale {

// The schema_version attribute this build writes and reads.
inline constexpr std::int64_t kSchemaVersion = 1;

// The most classes a file may hold: far beyond any single-label corpus, and a bound on what a
// label or a num_classes attribute makes the programs allocate.
inline constexpr std::int64_t kMaxClasses = std::int64_t{1} << 20;

}  // namespace textscale
