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
  explicit Interrupted(int signal) : signal_(signal) {}
  [[nodiscard]] int signal() const { return signal_; }

 private:
  int signal_;
};

// Throws Interrupted if a signal arrived.
void throw_if_interrupted();

}  // namespace textscale
