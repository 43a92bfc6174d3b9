// The model registry: every model the program can build, by name.
//
// How to add a model (docs/extending.md has the whole recipe, layers included):
//
//   1. Write src/engine/models/<family>.cpp (src/engine/models/crepe.cpp is the example):
//        - the hyperparameters as a struct whose member initialisers are the published values,
//          serialised by NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Struct, member, ...);
//        - a builder, template <typename T> std::unique_ptr<InputLayer<T>> build(const ModelConfig&,
//          const Struct&, Sequential<T>& body), that checks the hyperparameters (InputError
//          naming the command-line option where there is one), appends the layers to `body`
//          and returns the input layer;
//        - void register_<family>(ModelRegistry& registry), which calls registry.add once per
//          name: the name, a one-line description, the defaults of that name (a family may
//          register several sizes) and the builder.
//   2. Add the file to textscale_engine in CMakeLists.txt and its register_<family> to the list
//      in src/engine/model_registry.cpp (one declaration, one entry).
//   3. Tests: the parameter count at the published sizes in tests/unit/test_models.cpp, a small
//      configuration in tests/unit/test_gradcheck.cpp (gradcheck_model), and the listing check
//      in tests/cli/test_models.sh. `textscale models` then lists it; `train --model NAME`
//      trains it; its checkpoints store its hyperparameters as JSON.
//
// A command-line option that sets a hyperparameter (--features, --fc, ...) is declared once in
// src/cli/options.cpp (ModelArguments) and applies to every model whose hyperparameters have a
// member of the same name; given to a model without one, it is refused.
//
// Registration is an explicit list rather than static registrar objects: the families live in a
// static library, and a linker leaves out an object file of a static library that nothing
// refers to, so a self-registering family would silently vanish from some programs (and the
// order of static initialisers across files is unspecified). The list refers to every family,
// so every program that builds a model links them all, in one order: the order of `textscale
// models`.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "textscale/engine/model.h"

namespace textscale::engine {

// Appends the layers of the model `config` names to `body` and returns its input layer; the
// hyperparameters `config` leaves out take the published values.
template <typename T>
using ModelBuilder = std::function<std::unique_ptr<InputLayer<T>>(const ModelConfig&, Sequential<T>& body)>;

// One registered name.
struct ModelEntry {
  std::string name;
  std::string description;  // one line
  // The published hyperparameters of this name: the JSON of the family's struct, every member.
  nlohmann::json defaults;
  // Hyperparameters that shape training but not the weights (dropout): weights alone may move to
  // a model that differs only in these.
  std::vector<std::string> training_only;
  // The hyperparameters given (any subset of `defaults`'s members) -> all of them, as the
  // family's struct writes them. Throws InputError for a member it does not have or a wrong type.
  std::function<nlohmann::json(const nlohmann::json& given)> complete;
  std::tuple<ModelBuilder<float>, ModelBuilder<double>> builders;

  [[nodiscard]] bool has(const std::string& hyperparameter) const { return defaults.contains(hyperparameter); }
  // Comma-separated names of the hyperparameters.
  [[nodiscard]] std::string hyperparameter_names() const;
  template <typename T>
  [[nodiscard]] const ModelBuilder<T>& builder() const {
    return std::get<ModelBuilder<T>>(builders);
  }
};

class ModelRegistry {
 public:
  // Registers `name` with the hyperparameters `defaults` (a struct with
  // NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT) and `build(config, hyperparameters, body)`,
  // a generic lambda over Sequential<T>& body for T = float and double.
  template <typename Hyperparameters, typename Build>
  void add(std::string name, std::string description, const Hyperparameters& defaults, Build build,
           std::vector<std::string> training_only = {}) {
    ModelEntry entry;
    entry.name = std::move(name);
    entry.description = std::move(description);
    entry.defaults = defaults;
    entry.training_only = std::move(training_only);
    // The given hyperparameters over the published ones, as the family's struct.
    auto resolve = [defaults = entry.defaults, name = entry.name](const nlohmann::json& given) {
      check_members(name, defaults, given);
      nlohmann::json merged = defaults;
      merged.update(given);
      return parse<Hyperparameters>(name, merged);
    };
    entry.complete = [resolve](const nlohmann::json& given) { return nlohmann::json(resolve(given)); };
    auto builder = [build, resolve]<typename T>(const ModelConfig& config, Sequential<T>& body) {
      return build(config, resolve(config.hyperparameters), body);
    };
    entry.builders = {[builder](const ModelConfig& c, Sequential<float>& body) { return builder(c, body); },
                      [builder](const ModelConfig& c, Sequential<double>& body) { return builder(c, body); }};
    add(std::move(entry));
  }
  void add(ModelEntry entry);  // refuses a name registered before

  // Throws InputError naming the known models.
  [[nodiscard]] const ModelEntry& at(const std::string& name) const;
  [[nodiscard]] const ModelEntry* find(const std::string& name) const;
  [[nodiscard]] const std::vector<ModelEntry>& entries() const { return entries_; }
  [[nodiscard]] std::vector<std::string> names() const;

 private:
  // Throws InputError for a member of `given` that `defaults` does not have.
  static void check_members(const std::string& name, const nlohmann::json& defaults, const nlohmann::json& given);
  // `json` as the family's struct; a wrong type becomes an InputError naming the model.
  template <typename Hyperparameters>
  static Hyperparameters parse(const std::string& name, const nlohmann::json& json) {
    try {
      return json.get<Hyperparameters>();
    } catch (const nlohmann::json::exception& error) {
      throw_bad_hyperparameters(name, json, error.what());
    }
  }
  [[noreturn]] static void throw_bad_hyperparameters(const std::string& name, const nlohmann::json& json,
                                                     const std::string& why);

  std::vector<ModelEntry> entries_;
};

// Every model of this build (src/engine/model_registry.cpp lists the families).
const ModelRegistry& model_registry();

// `config` with its hyperparameters completed: the published values of its name, updated with
// the ones it gives. Throws InputError for an unknown model, a hyperparameter the model does not
// have, or a value of the wrong type.
ModelConfig complete_hyperparameters(const ModelConfig& config);

// The trained parameters of `config`'s model, counted as the model declares them, without
// allocating them (`textscale models`; equal to Model<float>(config).params().trained_count()).
Index trained_parameter_count(const ModelConfig& config);

// The kind of ids model `name` reads (its input layer's); throws InputError for an unknown model.
IdType input_ids(const std::string& name);

// The configuration of `name` at the sizes `textscale models` lists: 4 classes, 1014 characters
// of Zhang's 69-symbol alphabet or a vocabulary of 50,000 words, the published hyperparameters.
ModelConfig listing_config(const std::string& name);

}  // namespace textscale::engine
