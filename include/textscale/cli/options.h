// Command-line parsing shared by the subcommands.
#pragma once

#include <boost/program_options.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "textscale/engine/backend_options.h"

namespace textscale::cli {

// Parses `arguments` into `values` (parse errors become UsageError) and runs the notifiers.
// Returns false when --help was asked for: the help has been printed and the command should
// return 0.
bool parse_options(const std::vector<std::string>& arguments,
                   const boost::program_options::options_description& options,
                   boost::program_options::variables_map& values,
                   const boost::program_options::positional_options_description* positional = nullptr);

// The backend options of `train`, `bench` and `evaluate` (engine::BackendOptions) as the command
// line spells them: add() declares them, options() converts them.
struct BackendArguments {
  std::string device = "auto", backend = "onednn", precision = "tf32";
  int threads = 0;
  std::string winograd = "on";
  std::int64_t winograd_min_channels = 64;
  std::string onehot_fusion = "on", cudnn_search = "heuristic", bf16_conv = "on";

  // `threads_help` describes --threads (what 0 means differs between the commands).
  void add(boost::program_options::options_description& options, const char* threads_help);
  // Throws UsageError naming the option for a value it does not accept. The thread count is
  // checked by engine::validate (InputError), where it is resolved.
  [[nodiscard]] engine::BackendOptions options() const;
};

}  // namespace textscale::cli
