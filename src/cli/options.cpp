#include "textscale/cli/options.h"

#include <iostream>
#include <sstream>

#include "textscale/cli/commands.h"
#include "textscale/common/error.h"
#include "textscale/engine/model_registry.h"

namespace po = boost::program_options;

namespace textscale::cli {

namespace {

template <typename T>
bool holds(const po::option_description& option) {
  return dynamic_cast<const po::typed_value<T>*>(option.semantic().get()) != nullptr;
}

std::string bound(std::int64_t value) {
  if (value == std::numeric_limits<std::int64_t>::max()) return "";
  return std::to_string(value);
}

}  // namespace

void store_checked(const po::parsed_options& parsed, const po::options_description& options,
                   po::variables_map& values) {
  for (const auto& option : parsed.options) {
    const po::option_description* description = options.find_nothrow(option.string_key, false);
    if (!description || !(holds<unsigned long>(*description) || holds<unsigned>(*description))) continue;
    for (const auto& token : option.value)
      if (!token.empty() && token[0] == '-')
        throw UsageError{"--" + option.string_key + " must not be negative, not '" + token + "'"};
  }
  po::store(parsed, values);
}

void require_range(const std::string& name, std::int64_t value, std::int64_t low, std::int64_t high,
                   const std::string& note) {
  if (value >= low && value <= high) return;
  const std::string range = high == std::numeric_limits<std::int64_t>::max() ? "at least " + bound(low)
                                                                             : "in " + bound(low) + ".." + bound(high);
  throw OptionError("--" + name + " must be " + range + (note.empty() ? "" : " (" + note + ")") + ", not " +
                    std::to_string(value));
}

bool parse_options(const std::vector<std::string>& arguments, const po::options_description& options,
                   po::variables_map& values, const po::positional_options_description* positional) {
  try {
    po::command_line_parser parser(arguments);
    parser.options(options);
    if (positional) parser.positional(*positional);
    store_checked(parser.run(), options, values);
    if (values.count("help")) {
      std::cout << options << "\n";
      return false;
    }
    po::notify(values);
  } catch (const po::error& error) {
    throw UsageError{error.what()};
  }
  return true;
}

void BackendArguments::add(po::options_description& options, const char* threads_help) {
  options.add_options()                                                 //
      ("threads", po::value(&threads)->default_value(0), threads_help)  //
      ("backend", po::value(&backend)->default_value("onednn"),
       "CPU backend: onednn | reference (slow, for checks)")  //
      ("device", po::value(&device)->default_value("auto"),
       "auto (cuda when a GPU is visible) | cpu | cuda; one GPU per rank: the local rank's")  //
      ("precision", po::value(&precision)->default_value("tf32"),
       "products: fp32 | tf32 (GPU; fp32 on a CPU) | bf16 (fp32 storage and reductions in every case)")  //
      ("winograd", po::value(&winograd)->default_value("on"),
       "CPU (oneDNN): stride-1 convolutions of kernel >= 3 as 1-D Winograd F(4, 3): on | off")  //
      ("winograd-min-channels", po::value(&winograd_min_channels)->default_value(64),
       "CPU (oneDNN): Winograd from this many input and output channels (twice that for the weight gradient)")  //
      ("onehot-fusion", po::value(&onehot_fusion)->default_value("on"),
       "Crepe's one-hot convolution, ReLU and first max pooling as one operation: on | off")  //
      ("cudnn-search", po::value(&cudnn_search)->default_value("heuristic"),
       "GPU: convolution algorithms by cuDNN's heuristic (reproducible) | measure (timed; may differ between "
       "processes)")  //
      ("bf16-conv", po::value(&bf16_conv)->default_value("on"),
       "GPU, --precision bf16: the convolutions in bf16 too: on | off (TF32)");
}

engine::BackendOptions BackendArguments::options() const {
  try {
    engine::BackendOptions o;
    o.device = engine::parse_device(device);
    o.cpu_backend = engine::parse_cpu_backend(backend);
    o.precision = engine::parse_precision(precision);
    o.threads = threads;
    o.winograd = engine::parse_switch("winograd", winograd);
    if (winograd_min_channels < 1 || winograd_min_channels > (std::int64_t{1} << 20))
      throw OptionError("--winograd-min-channels must be in 1..1048576, not " + std::to_string(winograd_min_channels));
    o.winograd_min_channels = winograd_min_channels;
    o.onehot_fusion = engine::parse_switch("onehot-fusion", onehot_fusion);
    o.cudnn_search = engine::parse_algorithm_search(cudnn_search);
    o.bf16_convolutions = engine::parse_switch("bf16-conv", bf16_conv);
    engine::validate(o);
    return o;
  } catch (const InputError& error) {
    throw UsageError{error.what()};
  }
}

void ModelArguments::add(po::options_description& options) {
  options.add_options()                                                                               //
      ("model", po::value(&name)->default_value("crepe-small"), "model name; help: list the models")  //
      ("features", po::value(&features)->default_value(0),
       "override: convolution features (Crepe) / first stage width (VDCNN); 0 = published")              //
      ("fc", po::value(&fc)->default_value(0), "override: hidden fully connected width; 0 = published")  //
      ("shortcut", po::value(&shortcut)->default_value(false), "VDCNN residual shortcuts")               //
      ("dropout", po::value(&dropout)->default_value(0.5), "dropout probability (Crepe, bilstm)")        //
      ("embed-dim", po::value(&embed_dim)->default_value(0),
       "override: embedding size (bilstm: word vectors; VDCNN: characters); 0 = published")                //
      ("hidden", po::value(&hidden)->default_value(0), "override: LSTM units a direction; 0 = published")  //
      ("pooling", po::value(&pooling)->default_value(""),
       "override: the LSTM states a row is classified from: last, max or mean over its words")                //
      ("bidirectional", po::value(&bidirectional)->default_value(true), "bilstm: an LSTM in each direction")  //
      ("freeze-embeddings", po::value(&freeze_embeddings)->default_value(false),
       "bilstm: keep the word vectors as initialised (from --embeddings) instead of training them");
}

engine::ModelConfig ModelArguments::config(const po::variables_map& values, const std::set<std::string>& typed) const {
  if (!engine::model_registry().find(name)) try {
      (void)engine::model_registry().at(name);  // names the known models
    } catch (const InputError& error) {
      throw OptionError(std::string("--model: ") + error.what());
    }
  const engine::ModelEntry& model = engine::model_registry().at(name);
  for (const auto& [option, value] :
       {std::pair{"features", features}, {"fc", fc}, {"embed-dim", embed_dim}, {"hidden", hidden}})
    require_range(option, value, 0, std::numeric_limits<std::int64_t>::max(), "0: the published value");
  if (!(dropout >= 0 && dropout < 1)) throw OptionError("--dropout must be in [0, 1), not " + std::to_string(dropout));
  engine::ModelConfig config;
  config.name = name;
  // `set`: whether the value is one to store (--features 0 and --fc 0 mean the published value).
  // `member`: the hyperparameter the option sets (its own name unless given).
  auto take = [&](const std::string& option, const nlohmann::json& value, bool set, std::string member = "") {
    if (member.empty()) member = option;
    const bool given = typed.count(option) > 0;
    if (!given && (!values.count(option) || values[option].defaulted())) return;
    if (!model.has(member)) {
      if (!given) return;  // saved by a run of another model, or before this refusal existed
      throw UsageError{"--" + option + " is not an option of model " + name +
                       " (its hyperparameters: " + model.hyperparameter_names() + "; textscale models lists them)"};
    }
    if (set) config.hyperparameters[member] = value;
  };
  take("features", features, features != 0);
  take("fc", fc, fc != 0);
  take("shortcut", shortcut, true);
  take("dropout", dropout, true);
  take("embed-dim", embed_dim, embed_dim != 0, "embedding");
  take("hidden", hidden, hidden != 0);
  take("pooling", pooling, !pooling.empty());
  take("bidirectional", bidirectional, true);
  take("freeze-embeddings", freeze_embeddings, true, "freeze_embeddings");
  return config;
}

std::set<std::string> given_options(const po::variables_map& values) {
  std::set<std::string> given;
  for (const auto& [name, value] : values)
    if (!value.defaulted()) given.insert(name);
  return given;
}

preprocess::InputFormat parse_format(const std::string& value) {
  if (value == "zhang") return preprocess::InputFormat::zhang;
  if (value == "tsv" || value == "csv") return preprocess::InputFormat::tsv;
  if (value == "imdb") return preprocess::InputFormat::imdb;
  throw UsageError{"--format must be zhang, tsv or imdb, not '" + value + "'"};
}

preprocess::Unescape parse_unescape(const std::string& value) {
  if (value == "none") return preprocess::Unescape::none;
  if (value == "newline") return preprocess::Unescape::newline;
  if (value == "backslash") return preprocess::Unescape::backslash;
  throw UsageError{"--unescape must be none, newline or backslash, not '" + value + "'"};
}

preprocess::LabelKind parse_labels(const std::string& value) {
  if (value == "index0") return preprocess::LabelKind::index0;
  if (value == "index1") return preprocess::LabelKind::index1;
  if (value == "names") return preprocess::LabelKind::names;
  throw UsageError{"--labels must be index0, index1 or names, not '" + value + "'"};
}

char parse_delimiter(const std::string& value) {
  if (value == "tab" || value == "\\t" || value == "\t") return '\t';
  if (value == "comma") return ',';
  if (value.size() == 1 && value != "\"" && value != "\n") return value[0];
  throw UsageError{"--delimiter must be one character (or 'tab'), not '" + value + "'"};
}

std::vector<int> parse_columns(const std::string& value) {
  std::vector<int> columns;
  std::stringstream in(value);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      std::size_t used = 0;
      const int column = std::stoi(item, &used);
      if (used != item.size()) throw std::invalid_argument(item);
      columns.push_back(column);
    } catch (const std::exception&) {
      throw UsageError{"--text-columns must be comma-separated 0-based column numbers, not '" + value + "'"};
    }
  }
  return columns;
}

}  // namespace textscale::cli
