// textscale: text classification from corpus to trained model.
// This is the single place where errors are caught and turned into a message and an exit code.

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "textscale/cli/commands.h"
#include "textscale/common/build_info.h"
#include "textscale/common/error.h"
#include "textscale/common/hdf5.h"
#include "textscale/common/interrupt.h"
#include "textscale/common/log.h"
#include "textscale/dist/communicator.h"
#include "textscale/engine/cpu/dnnl_backend.h"

namespace {

constexpr const char* kUsage =
    "usage: textscale <command> [options]\n"
    "\n"
    "commands:\n"
    "  preprocess   CSV/TSV/IMDB corpora -> HDF5 tensors (characters, words, labels)\n"
    "  inspect      print the summary of a preprocessed HDF5 file\n"
    "  train        train a model (BiLSTM, Crepe, VDCNN) on preprocessed files\n"
    "  evaluate     accuracy and per-class metrics of a checkpoint on a preprocessed file\n"
    "  predict      classify raw text (CSV/TSV, lines, JSON Lines) with a checkpoint\n"
    "  bench        training/inference throughput on synthetic batches, and the SGEMM peak\n"
    "  models       the models train and bench build: descriptions, hyperparameters, sizes\n"
    "  tokens       a training file's words as text (to learn word vectors), and a vectors file's coverage\n"
    "  serve        a checkpoint behind an HTTP classification service (JSON API, a page, metrics)\n"
    "\n"
    "  textscale <command> --help   options of a command\n"
    "  textscale <command> ... --log-level debug   also what lies behind an error (library calls, source lines)\n"
    "  textscale --version          version, git revision and library versions\n";

// "cpu: <model name> (family F, model M), N cores; oneDNN <instruction set>": oneDNN picks its
// kernels, and so their rounding order, by the instruction set, which DNNL_MAX_CPU_ISA can cap.
std::string cpu_line() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, name = "unknown", family = "?", model = "?";
  auto value = [&] { return line.substr(std::min(line.size(), line.find(':') + 2)); };
  while (std::getline(in, line) && !line.empty()) {  // the first processor's block
    if (line.rfind("model name", 0) == 0) name = value();
    if (line.rfind("cpu family", 0) == 0) family = value();
    if (line.rfind("model\t", 0) == 0) model = value();
  }
  return "cpu: " + name + " (family " + family + ", model " + model + "), " +
         std::to_string(std::thread::hardware_concurrency()) + " cores; oneDNN " +
         textscale::engine::DnnlBackend::cpu_isa();
}

// Removes --log-level LEVEL (or --log-level=LEVEL), given before or after the command, and sets
// the level: debug adds what lies behind an error (the library call and source line, HDF5's stack).
std::vector<std::string> take_log_level(std::vector<std::string> words) {
  namespace log = textscale::log;
  for (std::size_t i = 0; i < words.size(); ++i) {
    std::string level;
    if (words[i] == "--log-level" && i + 1 < words.size()) {
      level = words[i + 1];
      words.erase(words.begin() + static_cast<std::ptrdiff_t>(i), words.begin() + static_cast<std::ptrdiff_t>(i) + 2);
    } else if (words[i].rfind("--log-level=", 0) == 0) {
      level = words[i].substr(12);
      words.erase(words.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      continue;
    }
    if (level == "debug")
      log::set_level(log::Level::debug);
    else if (level == "info")
      log::set_level(log::Level::info);
    else if (level == "warning")
      log::set_level(log::Level::warn);
    else if (level == "error")
      log::set_level(log::Level::error);
    else
      throw textscale::OptionError("--log-level must be debug, info, warning or error, not '" + level + "'");
    --i;
  }
  return words;
}

int dispatch(int argc, char** argv) {
  std::vector<std::string> words = take_log_level(std::vector<std::string>(argv + 1, argv + argc));
  if (words.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string command = words.front();
  const std::vector<std::string> arguments(words.begin() + 1, words.end());
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (command == "--version") {
    const textscale::BuildInfo info = textscale::build_info();
    std::printf("%s\n%s\n%s\n%s\n", textscale::version_line().c_str(), info.libraries.c_str(), cpu_line().c_str(),
                textscale::device_summary().c_str());
    return 0;
  }
  if (command == "preprocess") return textscale::cli::preprocess_command(arguments);
  if (command == "inspect") return textscale::cli::inspect_command(arguments);
  if (command == "train") return textscale::cli::train_command(arguments);
  if (command == "evaluate") return textscale::cli::evaluate_command(arguments);
  if (command == "predict") return textscale::cli::predict_command(arguments);
  if (command == "bench") return textscale::cli::bench_command(arguments);
  if (command == "models") return textscale::cli::models_command(arguments);
  if (command == "tokens") return textscale::cli::tokens_command(arguments);
  if (command == "serve") return textscale::cli::serve_command(arguments);
  std::fprintf(stderr, "textscale: unknown command '%s'\n\n%s", command.c_str(), kUsage);
  return 2;
}

}  // namespace

// "[rank r/N] " in a data-parallel run, so that a failure names the rank it happened on.
std::string rank_tag() {
  const auto* world = textscale::dist::current_world();
  return world ? world->tag() : std::string();
}

// A mistake in the command line: exit status 2, with where to read the command's options.
int usage_error(const std::string& message, int argc, char** argv) {
  std::string command;  // the first word that is not --log-level's
  for (int i = 1; i < argc && command.empty(); ++i) {
    const std::string word = argv[i];
    if (word == "--log-level")
      ++i;
    else if (word.rfind("--log-level=", 0) != 0)
      command = word;
  }
  std::fprintf(stderr, "%stextscale: %s\n(see textscale %s --help)\n", rank_tag().c_str(), message.c_str(),
               command.c_str());
  return 2;
}

// Set when every rank of a data-parallel run stopped together after a signal.
bool stopped_everywhere = false;

int run(int argc, char** argv) {
  try {
    return dispatch(argc, argv);
  } catch (const textscale::Interrupted& interrupted) {
    if (interrupted.everywhere()) {
      stopped_everywhere = true;  // the command said what it saved
    } else {
      std::fprintf(stderr, "%sinterrupted by signal %d: stopped, partial outputs removed\n", rank_tag().c_str(),
                   interrupted.signal());
    }
    return 128 + interrupted.signal();
  } catch (const textscale::cli::UsageError& error) {
    return usage_error(error.message, argc, argv);
  } catch (const textscale::OptionError& error) {
    return usage_error(error.what(), argc, argv);
  } catch (const textscale::Error& error) {
    std::fprintf(stderr, "%serror: %s\n", rank_tag().c_str(), error.what());
    return 1;
  } catch (const std::filesystem::filesystem_error& error) {  // the system refused: not a bug
    std::fprintf(stderr, "%serror: %s\n", rank_tag().c_str(), error.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr,
                 "%serror: out of memory: an allocation was refused (the model, its optimizer state and the "
                 "activations of a batch need more than this process may use: the machine's free memory, ulimit -v "
                 "or the job's memory limit); try a smaller --batch-size (or --accumulate N), a smaller model, or "
                 "fewer ranks a node\n",
                 rank_tag().c_str());
    return 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%sinternal error: %s\n", rank_tag().c_str(), error.what());
    return 3;
  }
}

int main(int argc, char** argv) {
  // A write past a file-size limit then fails with EFBIG and is reported, instead of killing us.
  std::signal(SIGXFSZ, SIG_IGN);
  textscale::h5::skip_library_teardown_at_exit();
  // HDF5's own stack dumps would precede every reported error; the errors carry that stack.
  textscale::h5::silence_automatic_error_printing();
  textscale::install_interrupt_handlers();
  const int code = run(argc, argv);
  // In a data-parallel run a rank that fails ends the whole job at once (MPI_Abort): the other
  // ranks would otherwise wait for it in the next collective. Ranks that stopped together after
  // a signal end MPI normally.
  const auto* world = textscale::dist::current_world();
  if (code != 0 && world && world->size > 1 && !stopped_everywhere) textscale::dist::abort_world(code);
  textscale::dist::finalize_world();
  return code;
}
