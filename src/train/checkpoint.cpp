#include "textscale/train/checkpoint.h"

#include <hdf5.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <type_traits>

#include "textscale/common/build_info.h"
#include "textscale/common/checksum.h"
#include "textscale/common/error.h"
#include "textscale/common/files.h"
#include "textscale/common/hdf5.h"
#include "textscale/common/log.h"
#include "textscale/engine/model_registry.h"

namespace textscale::train {

namespace {

constexpr const char* kFormat = "textscale-checkpoint";
// What builds that know only checkpoint_version require (checkpoint.h: format versions): version 3
// changed the model attribute, which they cannot read.
constexpr std::int64_t kLegacyVersion = 3;
// The first format version with the attribute tensor_sha256.
constexpr std::int64_t kFirstDigestVersion = 6;
// "group/name" of each tensor -> the SHA-256 (hex) of its stored bytes.
using TensorDigests = std::map<std::string, std::string>;

nlohmann::json position_json(const TrainingPosition& p) {
  return {{"epoch", p.epoch},
          {"batch", p.batch},
          {"step", p.step},
          {"epoch_loss_sum", p.epoch_loss_sum},
          {"epoch_correct", p.epoch_correct},
          {"epoch_samples", p.epoch_samples},
          {"epoch_seconds", p.epoch_seconds},
          {"best_valid_accuracy", p.best_valid_accuracy},
          {"best_epoch", p.best_epoch}};
}

TrainingPosition position_from_json(const nlohmann::json& j) {
  TrainingPosition p;
  p.epoch = j.at("epoch");
  p.batch = j.at("batch");
  p.step = j.at("step");
  p.epoch_loss_sum = j.at("epoch_loss_sum");
  p.epoch_correct = j.at("epoch_correct");
  p.epoch_samples = j.at("epoch_samples");
  p.epoch_seconds = j.at("epoch_seconds");
  p.best_valid_accuracy = j.at("best_valid_accuracy");
  p.best_epoch = j.at("best_epoch");
  return p;
}

template <typename T>
hid_t memory_type() {
  return std::is_same_v<T, double> ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
}

std::size_t element_count(const std::vector<engine::Index>& shape) {
  std::size_t count = 1;
  for (const auto d : shape) count *= static_cast<std::size_t>(d);
  return count;
}

// Writes one tensor; returns the SHA-256 (hex) of its stored bytes.
template <typename T>
std::string write_array(hid_t group, const std::string& name, const std::vector<engine::Index>& shape, const T* data) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  h5::Handle space(TS_CHECK_HDF5(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr)));
  h5::Handle dataset(
      TS_CHECK_HDF5(H5Dcreate2(group, name.c_str(), std::is_same_v<T, double> ? H5T_IEEE_F64LE : H5T_IEEE_F32LE,
                               space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
  TS_CHECK_HDF5(H5Dwrite(dataset.get(), memory_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
  TS_CHECK_HDF5(dataset.close());
  // The memory layout is the stored one (little-endian IEEE), so this is the digest of the stored bytes.
  return sha256_hex(data, element_count(shape) * sizeof(T));
}

// Whether the stored bytes of `dataset`, read into `data` as T, have the SHA-256 `stored`.
template <typename T>
bool matches_digest(hid_t dataset, const T* data, std::size_t count, const std::string& stored) {
  h5::Handle type(TS_CHECK_HDF5(H5Dget_type(dataset)));
  if (H5Tget_size(type.get()) == sizeof(T)) return sha256_hex(data, count * sizeof(T)) == stored;
  // Stored in another precision (float64 read as float32, or the reverse): digest the stored bytes.
  std::vector<unsigned char> bytes(count * H5Tget_size(type.get()));
  TS_CHECK_HDF5(H5Dread(dataset, type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()));
  return sha256_hex(bytes.data(), bytes.size()) == stored;
}

// Reads one tensor and verifies it against `digests` (null: a checkpoint without them).
template <typename T>
void read_array(hid_t group, const std::string& path, const std::string& group_name, const std::string& name,
                const std::vector<engine::Index>& shape, T* data, const TensorDigests* digests) {
  const std::string tensor = group_name + "/" + name, where = path + ": " + tensor;
  if (H5Lexists(group, name.c_str(), H5P_DEFAULT) <= 0)
    throw InputError(where + " missing: the checkpoint is of another model or architecture");
  h5::Handle dataset(TS_CHECK_HDF5(H5Dopen2(group, name.c_str(), H5P_DEFAULT)));
  h5::Handle space(TS_CHECK_HDF5(H5Dget_space(dataset.get())));
  std::vector<hsize_t> dims(static_cast<std::size_t>(TS_CHECK_HDF5(H5Sget_simple_extent_ndims(space.get()))));
  TS_CHECK_HDF5(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr));
  if (!std::equal(dims.begin(), dims.end(), shape.begin(), shape.end(),
                  [](hsize_t a, engine::Index b) { return static_cast<engine::Index>(a) == b; })) {
    std::string have, want;
    for (auto d : dims) have += (have.empty() ? "" : "x") + std::to_string(d);
    for (auto d : shape) want += (want.empty() ? "" : "x") + std::to_string(d);
    throw InputError(where + " has shape " + have + ", the model expects " + want);
  }
  if (H5Dread(dataset.get(), memory_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    throw InputError(where + ": cannot read (truncated or damaged file?)");
  if (!digests) return;
  const auto digest = digests->find(tensor);
  if (digest == digests->end())
    throw InputError(where + " has no SHA-256 in attribute tensor_sha256: damaged checkpoint");
  if (!matches_digest(dataset.get(), data, element_count(shape), digest->second))
    throw InputError(where + " is damaged: the SHA-256 of its data differs from the one recorded when it was saved");
}

// The attribute tensor_sha256; none in a checkpoint of format version 5 or older.
std::optional<TensorDigests> tensor_digests(hid_t file, const std::string& path, std::int64_t version) {
  if (version < kFirstDigestVersion) return std::nullopt;
  if (!h5::has_attribute(file, "tensor_sha256"))
    throw InputError(path + ": attribute tensor_sha256 missing (format version " + std::to_string(kFirstDigestVersion) +
                     " and later record one): damaged checkpoint");
  const auto json = nlohmann::json::parse(h5::read_string_attribute(file, "tensor_sha256"), nullptr, false);
  if (!json.is_object()) throw InputError(path + ": attribute tensor_sha256 is not a JSON object: damaged checkpoint");
  TensorDigests digests;
  for (const auto& [tensor, digest] : json.items())
    if (digest.is_string()) digests[tensor] = digest.get<std::string>();
  return digests;
}

// format_version; a checkpoint without it is version 1, or what checkpoint_version says.
std::int64_t format_version(hid_t file) {
  if (h5::has_attribute(file, "format_version")) return h5::read_int_attribute(file, "format_version");
  if (h5::has_attribute(file, "checkpoint_version")) return h5::read_int_attribute(file, "checkpoint_version");
  return 1;
}

h5::Handle open_checkpoint(const std::string& path) {
  if (!std::filesystem::exists(path)) throw InputError(path + ": no such checkpoint");
  if (H5Fis_hdf5(path.c_str()) <= 0) throw InputError(path + ": not a checkpoint (not an HDF5 file, or truncated)");
  h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file.valid()) throw InputError(path + ": cannot open the checkpoint (truncated or damaged?)");
  if (!h5::has_attribute(file.get(), "format") || h5::read_string_attribute(file.get(), "format") != kFormat)
    throw InputError(path + ": not a textscale checkpoint (attribute 'format' missing)");
  const std::int64_t version = format_version(file.get());
  if (version < 1)
    throw InputError(path + ": checkpoint format version " + std::to_string(version) + " is not a valid version");
  if (version > kCheckpointFormatVersion)
    throw InputError(path + ": checkpoint format version " + std::to_string(version) +
                     " is newer than this build reads (versions 1 to " + std::to_string(kCheckpointFormatVersion) +
                     "): use a newer textscale");
  return file;
}

}  // namespace

std::string model_config_json(const engine::ModelConfig& config) {
  return nlohmann::json(config).dump();
}

namespace {
// Format versions 1 and 2 stored the overrides of every model at the top level of the model
// attribute: features and fc (0 = the published value), embedding, kmax, dropout, shortcut.
nlohmann::json flat_layout_hyperparameters(const nlohmann::json& j, const engine::ModelEntry& model) {
  nlohmann::json hyperparameters = nlohmann::json::object();
  for (const std::string key : {"features", "fc", "embedding", "kmax", "dropout", "shortcut"}) {
    if (!model.has(key) || !j.contains(key)) continue;
    if ((key == "features" || key == "fc") && j[key] == 0) continue;
    hyperparameters[key] = j[key];
  }
  return hyperparameters;
}
}  // namespace

engine::ModelConfig model_config_from_json(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text);
  if (!j.contains("hyperparameters"))
    j["hyperparameters"] = flat_layout_hyperparameters(j, engine::model_registry().at(j.at("name")));
  return engine::complete_hyperparameters(j.get<engine::ModelConfig>());
}

template <typename T>
void save_checkpoint(const std::string& path, engine::Model<T>& model, Optimizer<T>* optimizer,
                     const CheckpointInfo& info) {
  model.memory().synchronize();  // the tensors are read from the host below
  const std::string temporary = temporary_path(path);
  try {
    h5::Handle file(TS_CHECK_HDF5(H5Fcreate(temporary.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)));
    const hid_t f = file.get();
    h5::write_attribute(f, "format", std::string(kFormat));
    h5::write_attribute(f, "format_version", kCheckpointFormatVersion);
    h5::write_attribute(f, "checkpoint_version", kLegacyVersion);
    h5::write_attribute(f, "model", model_config_json(model.config()));
    h5::write_attribute(f, "training", info.training_json);
    h5::write_attribute(f, "backend_options", engine::backend_options_json(info.backend_options));
    h5::write_attribute(f, "position", position_json(info.position).dump());
    h5::write_attribute(f, "alphabet", info.encoding.alphabet);
    h5::write_attribute(f, "char_length", info.encoding.char_length);
    h5::write_attribute(f, "char_order", info.encoding.char_order);
    h5::write_attribute(f, "num_classes", info.encoding.num_classes);
    h5::write_attribute(f, "classes", info.encoding.classes);
    if (info.encoding.ids == engine::IdType::words) {
      h5::write_attribute(f, "input_ids", std::string("words"));
      h5::write_attribute(f, "word_length", info.encoding.word_length);
      h5::write_attribute(f, "vocab_size", info.encoding.vocab_size);
      h5::write_attribute(f, "vocab_digest", info.encoding.vocab_digest);
    }
    h5::write_attribute(f, "created_by", version_line());
    h5::write_attribute(f, "libraries", build_info().libraries);
    h5::write_attribute(f, "created", utc_now_iso8601());
    if (!info.text.empty()) {
      h5::write_attribute(f, "text_options", info.text.options_json);
      if (info.encoding.ids == engine::IdType::words) {
        h5::write_attribute(f, "tokenizer", info.text.tokenizer);
        h5::write_string_dataset(f, "vocab", info.text.vocab);
      }
    }
    if (!info.train_content_sha256.empty()) h5::write_attribute(f, "train_content_sha256", info.train_content_sha256);
    if (!info.valid_content_sha256.empty()) h5::write_attribute(f, "valid_content_sha256", info.valid_content_sha256);
    auto& params = model.params();
    h5::Handle parameters(TS_CHECK_HDF5(H5Gcreate2(f, "parameters", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
    h5::Handle state(TS_CHECK_HDF5(H5Gcreate2(f, "state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
    TensorDigests digests;
    for (std::size_t i = 0; i < params.tensors().size(); ++i) {
      const auto& t = params.tensors()[i];
      digests[(t.trained ? "parameters/" : "state/") + t.name] =
          write_array(t.trained ? parameters.get() : state.get(), t.name, t.shape,
                      params.value(engine::ParamRef{static_cast<engine::Index>(i)}));
    }
    if (optimizer) {
      h5::Handle group(TS_CHECK_HDF5(H5Gcreate2(f, "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
      h5::write_attribute(group.get(), "kind", optimizer->config().kind);
      h5::write_attribute(group.get(), "steps", optimizer->steps());
      for (int s = 0; s < optimizer->slot_count(); ++s)
        digests["optimizer/slot" + std::to_string(s)] =
            write_array(group.get(), "slot" + std::to_string(s), {params.trained_count()}, optimizer->slot(s).data());
      TS_CHECK_HDF5(group.close());
    }
    h5::write_attribute(f, "tensor_sha256", nlohmann::json(digests).dump());
    TS_CHECK_HDF5(parameters.close());
    TS_CHECK_HDF5(state.close());
    TS_CHECK_HDF5(file.close());
  } catch (const std::exception& error) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    throw IoError("cannot write checkpoint '" + path + "': " + error.what());
  }
  try {
    commit_file(temporary, path);
  } catch (const Error& error) {
    std::error_code ignored;
    if (std::filesystem::exists(temporary, ignored)) std::filesystem::remove(temporary, ignored);
    throw IoError("checkpoint '" + path + "' may not be durable: " + error.what());
  }
}

namespace {
// The backend options of a checkpoint written before they were recorded: the defaults, with the
// device, backend and precision its training options name.
engine::BackendOptions legacy_backend_options(const std::string& training_json) {
  engine::BackendOptions options;
  const auto training = nlohmann::json::parse(training_json, nullptr, false);
  if (!training.is_object() || !training.contains("options") || !training["options"].is_object()) return options;
  const auto& given = training["options"];
  auto text = [&](const char* name, const std::string& fallback) {
    return given.contains(name) && given[name].is_string() ? given[name].get<std::string>() : fallback;
  };
  options.device = engine::parse_device(text("device", "auto"));
  options.cpu_backend = engine::parse_cpu_backend(text("backend", "onednn"));
  options.precision = engine::parse_precision(text("precision", "tf32"));
  return options;
}

CheckpointInfo read_info(const std::string& path) {
  h5::Handle file = open_checkpoint(path);
  const hid_t f = file.get();
  CheckpointInfo info;
  try {
    info.model = model_config_from_json(h5::read_string_attribute(f, "model"));
    info.position = position_from_json(nlohmann::json::parse(h5::read_string_attribute(f, "position")));
    info.training_json = h5::read_string_attribute(f, "training");
    info.backend_options = H5Aexists(f, "backend_options") > 0
                               ? engine::backend_options_from_json(h5::read_string_attribute(f, "backend_options"))
                               : legacy_backend_options(info.training_json);
  } catch (const nlohmann::json::exception& error) {
    throw InputError(path + ": damaged checkpoint attributes: " + error.what());
  }
  info.encoding.alphabet = h5::read_string_attribute(f, "alphabet");
  info.encoding.char_length = h5::read_int_attribute(f, "char_length");
  info.encoding.char_order = h5::read_string_attribute(f, "char_order");
  info.encoding.num_classes = h5::read_int_attribute(f, "num_classes");
  info.encoding.classes = h5::read_string_list_attribute(f, "classes");
  if (h5::has_attribute(f, "input_ids")) {
    const std::string ids = h5::read_string_attribute(f, "input_ids");
    if (ids != "words") throw InputError(path + ": unknown input_ids '" + ids + "'");
    info.encoding.ids = engine::IdType::words;
    info.encoding.word_length = h5::read_int_attribute(f, "word_length");
    info.encoding.vocab_size = h5::read_int_attribute(f, "vocab_size");
    info.encoding.vocab_digest = h5::read_string_attribute(f, "vocab_digest");
  }
  info.format_version = format_version(f);
  if (h5::has_attribute(f, "text_options")) {
    info.text.options_json = h5::read_string_attribute(f, "text_options");
    if (info.encoding.ids == engine::IdType::words) {
      info.text.tokenizer = h5::read_string_attribute(f, "tokenizer");
      info.text.vocab = h5::read_string_dataset(f, "vocab");
      if (static_cast<std::int64_t>(info.text.vocab.size()) != info.encoding.vocab_size ||
          vocabulary_digest(info.text.vocab) != info.encoding.vocab_digest)
        throw InputError(path + ": the vocab dataset does not match vocab_size and vocab_digest");
    }
  }
  for (auto [name, digest] : {std::pair{"train_content_sha256", &info.train_content_sha256},
                              std::pair{"valid_content_sha256", &info.valid_content_sha256}})
    if (h5::has_attribute(f, name)) *digest = h5::read_string_attribute(f, name);
  if (H5Lexists(f, "optimizer", H5P_DEFAULT) > 0) {
    h5::Handle group(TS_CHECK_HDF5(H5Gopen2(f, "optimizer", H5P_DEFAULT)));
    info.optimizer_kind = h5::read_string_attribute(group.get(), "kind");
  }
  return info;
}

constexpr const char* kDamaged = "damaged or incomplete checkpoint";
}  // namespace

CheckpointInfo read_checkpoint_info(const std::string& path) {
  return naming_file(path, kDamaged, [&] { return read_info(path); });
}

namespace {
template <typename T>
void load(const std::string& path, engine::Model<T>& model, Optimizer<T>* optimizer) {
  const CheckpointInfo info = read_info(path);
  model.memory().synchronize();  // the tensors are written from the host below
  const auto& want = model.config();
  // The dropout rate shapes training, not the weights: weights alone (--init-from, evaluation) may
  // go to a model with another rate; resuming training needs the same one.
  engine::ModelConfig have = info.model;
  if (!optimizer)
    for (const auto& key : engine::model_registry().at(want.name).training_only)
      if (have.hyperparameters.contains(key)) have.hyperparameters[key] = want.hyperparameters.at(key);
  if (model_config_json(have) != model_config_json(want))
    throw InputError(path + ": the checkpoint holds model " + model_config_json(info.model) + ", this run uses " +
                     model_config_json(want));
  h5::Handle file = open_checkpoint(path);
  const std::optional<TensorDigests> digests = tensor_digests(file.get(), path, info.format_version);
  if (!digests)
    TS_LOG(warn, path << ": checkpoint format version " << info.format_version
                      << " has no tensor checksums; its weights are loaded unverified");
  const TensorDigests* expected = digests ? &*digests : nullptr;
  h5::Handle parameters(TS_CHECK_HDF5(H5Gopen2(file.get(), "parameters", H5P_DEFAULT)));
  h5::Handle state(TS_CHECK_HDF5(H5Gopen2(file.get(), "state", H5P_DEFAULT)));
  auto& params = model.params();
  for (std::size_t i = 0; i < params.tensors().size(); ++i) {
    const auto& t = params.tensors()[i];
    read_array(t.trained ? parameters.get() : state.get(), path, t.trained ? "parameters" : "state", t.name, t.shape,
               params.value(engine::ParamRef{static_cast<engine::Index>(i)}), expected);
  }
  if (optimizer) {
    if (info.optimizer_kind.empty()) throw InputError(path + ": the checkpoint has no optimizer state to resume from");
    if (info.optimizer_kind != optimizer->config().kind)
      throw InputError(path + ": the checkpoint was trained with " + info.optimizer_kind + ", this run uses " +
                       optimizer->config().kind);
    h5::Handle group(TS_CHECK_HDF5(H5Gopen2(file.get(), "optimizer", H5P_DEFAULT)));
    optimizer->set_steps(h5::read_int_attribute(group.get(), "steps"));
    for (int s = 0; s < optimizer->slot_count(); ++s)
      read_array(group.get(), path, "optimizer", "slot" + std::to_string(s), {params.trained_count()},
                 optimizer->slot(s).data(), expected);
  }
}
}  // namespace

template <typename T>
void load_checkpoint(const std::string& path, engine::Model<T>& model, Optimizer<T>* optimizer) {
  naming_file(path, kDamaged, [&] { load(path, model, optimizer); });
}

template void save_checkpoint<float>(const std::string&, engine::Model<float>&, Optimizer<float>*,
                                     const CheckpointInfo&);
template void save_checkpoint<double>(const std::string&, engine::Model<double>&, Optimizer<double>*,
                                      const CheckpointInfo&);
template void load_checkpoint<float>(const std::string&, engine::Model<float>&, Optimizer<float>*);
template void load_checkpoint<double>(const std::string&, engine::Model<double>&, Optimizer<double>*);

}  // namespace textscale::train
