// Command-line parsing shared by the subcommands.
#pragma once

#include <boost/program_options.hpp>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "textscale/engine/backend_options.h"
#include "textscale/engine/model.h"
#include "textscale/preprocess/options.h"

namespace textscale::cli {

// Parses `arguments` into `values` (parse errors become UsageError) and runs the notifiers.
// Returns false when --help was asked for: the help has been printed and the command should
// return 0.
bool parse_options(const std::vector<std::string>& arguments,
                   const boost::program_options::options_description& options,
                   boost::program_options::variables_map& values,
                   const boost::program_options::positional_options_description* positional = nullptr);

// Stores one parser's result in `values`, refusing a negative number for an option of an unsigned
// type (which the parser would wrap around to a huge value) with a UsageError naming the option.
void store_checked(const boost::program_options::parsed_options& parsed,
                   const boost::program_options::options_description& options,
                   boost::program_options::variables_map& values);

// Throws OptionError "--NAME must be in LOW..HIGH (NOTE), not VALUE" (or "at least LOW" without
// HIGH) unless LOW <= value <= HIGH.
void require_range(const std::string& name, std::int64_t value, std::int64_t low,
                   std::int64_t high = std::numeric_limits<std::int64_t>::max(), const std::string& note = "");

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

// --model and the options that set a model's hyperparameters (engine::ModelConfig), as `train`
// and `bench` spell them. Each option sets the hyperparameter of its name, for every model that
// has one (model_registry.h); --features and --fc 0 leave the published value.
struct ModelArguments {
  std::string name = "crepe-small";
  std::int64_t features = 0, fc = 0;
  bool shortcut = false;
  double dropout = 0.5;
  std::int64_t embed_dim = 0, hidden = 0;
  std::string pooling;
  bool bidirectional = true, freeze_embeddings = false;

  void add(boost::program_options::options_description& options);
  // The model's configuration. `typed`: the options given on the command line; one of them that
  // the model has no hyperparameter for is refused (UsageError naming the option and the model).
  // The other options (a repeated or resumed run's saved ones) apply where the model has them.
  [[nodiscard]] engine::ModelConfig config(const boost::program_options::variables_map& values,
                                           const std::set<std::string>& typed) const;
};

// The options of `values` given other than by their default.
std::set<std::string> given_options(const boost::program_options::variables_map& values);

// The text layout options of `preprocess` (and `predict`), as the command line spells them; each
// throws UsageError naming the option for a value it does not accept.
preprocess::InputFormat parse_format(const std::string& value);
preprocess::Unescape parse_unescape(const std::string& value);
preprocess::LabelKind parse_labels(const std::string& value);
char parse_delimiter(const std::string& value);
std::vector<int> parse_columns(const std::string& value);

}  // namespace textscale::cli
