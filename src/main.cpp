// textscale: text classification from corpus to trained model.
// This is the single place where errors are caught and turned into a message and an exit code.

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
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

int dispatch(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string command = argv[1];
  const std::vector<std::string> arguments(argv + 2, argv + argc);
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
    std::fprintf(stderr, "%stextscale: %s\n(see textscale %s --help)\n", rank_tag().c_str(), error.message.c_str(),
                 argc > 1 ? argv[1] : "");
    return 2;
  } catch (const textscale::Error& error) {
    std::fprintf(stderr, "%serror: %s\n", rank_tag().c_str(), error.what());
    return 1;
  } catch (const std::filesystem::filesystem_error& error) {  // the system refused: not a bug
    std::fprintf(stderr, "%serror: %s\n", rank_tag().c_str(), error.what());
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
