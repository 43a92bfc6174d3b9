#include "textscale/engine/model_registry.h"

#include "textscale/common/error.h"

namespace textscale::engine {

// The model families, in the order `textscale models` lists them: each one's registration
// function, defined in src/engine/models/<family>.cpp.
void register_crepe(ModelRegistry& registry);
void register_vdcnn(ModelRegistry& registry);
void register_bilstm(ModelRegistry& registry);

const ModelRegistry& model_registry() {
  static const ModelRegistry registry = [] {
    ModelRegistry r;
    for (auto* register_family : {register_crepe, register_vdcnn, register_bilstm}) register_family(r);
    return r;
  }();
  return registry;
}

namespace {
std::string member_names(const nlohmann::json& object) {
  std::string names;
  for (const auto& [key, value] : object.items()) names += (names.empty() ? "" : ", ") + key;
  return names;
}
}  // namespace

std::string ModelEntry::hyperparameter_names() const {
  return member_names(defaults);
}

void ModelRegistry::add(ModelEntry entry) {
  if (find(entry.name)) throw Error("model '" + entry.name + "' registered twice");
  entries_.push_back(std::move(entry));
}

const ModelEntry* ModelRegistry::find(const std::string& name) const {
  for (const auto& entry : entries_)
    if (entry.name == name) return &entry;
  return nullptr;
}

const ModelEntry& ModelRegistry::at(const std::string& name) const {
  if (const ModelEntry* entry = find(name)) return *entry;
  std::string known;
  for (const auto& entry : entries_) known += (known.empty() ? "" : ", ") + entry.name;
  throw InputError("unknown model '" + name + "' (known: " + known + ")");
}

std::vector<std::string> ModelRegistry::names() const {
  std::vector<std::string> names;
  for (const auto& entry : entries_) names.push_back(entry.name);
  return names;
}

void ModelRegistry::check_members(const std::string& name, const nlohmann::json& defaults,
                                  const nlohmann::json& given) {
  if (!given.is_object())
    throw InputError("model " + name + ": hyperparameters must be a JSON object, not " + given.dump());
  for (const auto& [key, value] : given.items())
    if (!defaults.contains(key))
      throw InputError("model " + name + " has no hyperparameter '" + key +
                       "' (its hyperparameters: " + member_names(defaults) + ")");
}

void ModelRegistry::throw_bad_hyperparameters(const std::string& name, const nlohmann::json& json,
                                              const std::string& why) {
  throw InputError("model " + name + ": hyperparameters " + json.dump() + " do not fit: " + why);
}

ModelConfig complete_hyperparameters(const ModelConfig& config) {
  ModelConfig complete = config;
  complete.hyperparameters = model_registry().at(config.name).complete(config.hyperparameters);
  return complete;
}

Index trained_parameter_count(const ModelConfig& config) {
  const ModelConfig complete = complete_hyperparameters(config);
  ParamStore<float> params;
  Sequential<float> body;
  auto input = model_registry().at(complete.name).builder<float>()(complete, body);
  body.setup(params, "", input->setup(params, "input.", complete.length));
  return params.trained_count();
}

IdType input_ids(const std::string& name) {
  ModelConfig config = listing_config(name);
  config.hyperparameters = model_registry().at(name).defaults;
  Sequential<float> body;
  return model_registry().at(name).builder<float>()(config, body)->ids();
}

ModelConfig listing_config(const std::string& name) {
  ModelConfig config;
  config.name = name;
  config.classes = 4;
  config.length = 1014;
  config.alphabet = 69;
  config.vocab = 50000;
  return config;
}

}  // namespace textscale::engine
