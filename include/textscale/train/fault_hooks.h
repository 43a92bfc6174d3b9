// Failures injected for the tests with `--fault KIND:RANK:STEP` (0-based global step):
//   throw  the rank throws an error before the step
//   kill   the rank sends itself SIGKILL before the step
//   term   the rank sends itself SIGTERM before the step (handled: training stops after it)
//   nan    the rank's loss and loss gradient become NaN in that step
//   slow   from that step on, the rank takes 5 ms longer for each of its rows (for --balance)
#pragma once

#include <cstdint>
#include <string>

#include "textscale/train/training_step.h"

namespace textscale::train {

class FaultHooks final : public StepHooks {
 public:
  // Throws InputError naming --fault for a malformed `spec`; an empty one injects nothing.
  FaultHooks(const std::string& spec, int rank);

  [[nodiscard]] bool any() const { return !kind_.empty(); }

  void before_step(std::int64_t step) override;
  void after_loss(std::int64_t step, const engine::Memory& memory, double* stats, float* diff_logits,
                  engine::Index count) override;
  void after_backward(std::int64_t step, engine::Index rows) override;

 private:
  [[nodiscard]] bool here(std::int64_t step) const { return rank_ == fault_rank_ && step == step_; }
  std::string kind_;
  int fault_rank_ = -1, rank_ = 0;
  std::int64_t step_ = -1;
};

}  // namespace textscale::train
