// `textscale models` (also `train --model help`): the registered models with their descriptions,
// published hyperparameters and parameter counts.
#include <boost/program_options.hpp>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "textscale/cli/commands.h"
#include "textscale/cli/options.h"
#include "textscale/engine/model_registry.h"

namespace po = boost::program_options;

namespace textscale::cli {

int models_command(const std::vector<std::string>& arguments) {
  bool json = false;
  po::options_description options(
      "textscale models: the models train and bench build (--model NAME), the ids each reads\n\nusage: textscale "
      "models [--json]");
  options.add_options()("help,h", "show this help")("json", po::bool_switch(&json),
                                                    "one JSON object a line: name, description, hyperparameters, "
                                                    "parameters");
  po::variables_map values;
  if (!parse_options(arguments, options, values)) return 0;
  if (!json)
    std::printf(
        "models (parameters: trained, for 4 classes and 1014 characters of the 69-symbol alphabet or a "
        "vocabulary of 50,000 words; "
        "hyperparameters: the published values)\n");
  for (const auto& entry : engine::model_registry().entries()) {
    const engine::Index parameters = engine::trained_parameter_count(engine::listing_config(entry.name));
    const bool words = engine::input_ids(entry.name) == engine::IdType::words;
    if (json) {
      const nlohmann::json line{{"name", entry.name},
                                {"input", words ? "words" : "characters"},
                                {"description", entry.description},
                                {"hyperparameters", entry.defaults},
                                {"parameters", parameters}};
      std::printf("%s\n", line.dump().c_str());
    } else {
      std::printf("\n%-12s %lld parameters, reads %s\n  %s\n  hyperparameters: %s\n", entry.name.c_str(),
                  static_cast<long long>(parameters), words ? "words" : "characters", entry.description.c_str(),
                  entry.defaults.dump().c_str());
    }
  }
  return 0;
}

}  // namespace textscale::cli
