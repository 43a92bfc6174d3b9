#include "textscale/train/fault_hooks.h"

#include <chrono>
#include <cmath>
#include <csignal>
#include <stdexcept>
#include <thread>
#include <vector>

#include "textscale/common/error.h"

namespace textscale::train {

FaultHooks::FaultHooks(const std::string& spec, int rank) : rank_(rank) {
  if (spec.empty()) return;
  const auto first = spec.find(':'), second = spec.find(':', first + 1);
  try {
    if (first == std::string::npos || second == std::string::npos) throw std::invalid_argument(spec);
    kind_ = spec.substr(0, first);
    fault_rank_ = std::stoi(spec.substr(first + 1, second - first - 1));
    step_ = std::stoll(spec.substr(second + 1));
  } catch (const std::exception&) {
    throw OptionError("--fault expects KIND:RANK:STEP, not '" + spec + "'");
  }
  if (kind_ != "throw" && kind_ != "kill" && kind_ != "nan" && kind_ != "term" && kind_ != "slow")
    throw OptionError("--fault kind must be throw, kill, nan, term or slow, not '" + kind_ + "'");
}

void FaultHooks::before_step(std::int64_t step) {
  if (!here(step)) return;
  if (kind_ == "throw") throw Error("failure injected by --fault at step " + std::to_string(step));
  if (kind_ == "kill") std::raise(SIGKILL);
  if (kind_ == "term") std::raise(SIGTERM);  // handled: stops after this step
}

void FaultHooks::after_loss(std::int64_t step, const engine::Memory& memory, double* stats, float* diff_logits,
                            engine::Index count) {
  if (kind_ != "nan" || !here(step)) return;
  const double nan = std::nan("");
  memory.copy_to_device(stats, &nan, sizeof nan);  // the loss
  const std::vector<float> nans(static_cast<std::size_t>(count), std::nanf(""));
  memory.copy_to_device(diff_logits, nans.data(), nans.size() * sizeof(float));
}

void FaultHooks::after_backward(std::int64_t step, engine::Index rows) {
  if (kind_ == "slow" && rank_ == fault_rank_ && step >= step_)
    std::this_thread::sleep_for(std::chrono::milliseconds(5 * rows));
}

}  // namespace textscale::train
