// SIGINT/SIGTERM turned into a flag that long-running loops poll, so that they unwind normally:
// temporary files are removed by their owners' destructors (and, in the trainer, a checkpoint is
// written) instead of the process dying mid-write.
#pragma once

namespace textscale {

// Installs the handlers (without SA_RESTART, so blocking reads return EINTR).
void install_interrupt_handlers();
// The signal received so far, or 0.
[[nodiscard]] int interrupt_signal();

// Thrown by loops that noticed an interrupt; main exits with 128 + signal.
class Interrupted {
 public:
  // `everywhere`: every rank of a data-parallel run agreed to stop at this point (so the job can
  // end cleanly instead of being aborted).
  explicit Interrupted(int signal, bool everywhere = false) : signal_(signal), everywhere_(everywhere) {}
  [[nodiscard]] int signal() const { return signal_; }
  [[nodiscard]] bool everywhere() const { return everywhere_; }

 private:
  int signal_;
  bool everywhere_;
};

// Throws Interrupted if a signal arrived.
void throw_if_interrupted();

}  // namespace textscale
