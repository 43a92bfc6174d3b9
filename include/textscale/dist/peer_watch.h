// A failure detector beside MPI: which rank was lost, and on which host.
//
// MPI over TCP does not report a peer whose process ended: a collective just waits for it (until
// --comm-timeout), and a launcher that loses a whole node names the node and its daemon, not the
// ranks. A TCP connection does tell: when a process ends, killed or not, the kernel closes its
// sockets and the other end reads end-of-file at once. So every rank keeps one connection to rank
// 0 (rank 0 one to each rank), and each side writes a heartbeat byte on it every second.
//
// Contract:
// - PeerWatch(comm, host, reserved_fd): collective over `comm`, called by every rank once the
//   communicator exists. Rank 0 listens on an ephemeral port of all its IPv4 addresses and
//   broadcasts them with its pid and host; every other rank connects (2 s per address) and
//   introduces itself (rank, pid, host). A rank that cannot connect (a firewall) is left
//   unwatched: rank 0 warns, the run goes on. `reserved_fd` (a socket opened before MPI started,
//   or -1) is closed, or becomes the connection to rank 0: a process's files are closed in the
//   order of their numbers when it ends, so the connection's end then reaches rank 0 before
//   MPI's own sockets close, and the loss is reported before MPI notices it (Open MPI may abort
//   the surviving rank itself when a peer's TCP connection drops mid-message).
// - When a peer is lost, the watching thread writes at once to stderr "[rank r/N] failure
//   detector: lost rank ..." (the process may not live to report it otherwise).
// - lost(): "" while every watched peer is there or ended on purpose; otherwise a sentence naming
//   the lost rank(s) with host and pid. Cheap: called in every poll of a collective's wait.
// - silent(seconds): the watched peers not heard from for more than `seconds`, "" if none (for
//   the message of a collective that timed out: a cut link closes nothing).
// - farewell(): tells the peers that this rank ends on purpose (normal end, or an error it
//   reports itself), so that its closed connection is not reported as a loss. The destructor
//   says it too.
// One background thread per rank polls the sockets; it never calls MPI.
#pragma once

#include <atomic>
#include <memory>
#include <string>

namespace textscale::dist {

class Communicator;

class PeerWatch {
 public:
  PeerWatch(Communicator& comm, const std::string& host, int reserved_fd);
  ~PeerWatch();
  PeerWatch(const PeerWatch&) = delete;
  PeerWatch& operator=(const PeerWatch&) = delete;

  [[nodiscard]] std::string lost() const;
  [[nodiscard]] std::string silent(double seconds) const;
  void farewell();

 private:
  struct State;
  std::unique_ptr<State> state_;
  std::atomic<bool> any_lost_{false};
};

}  // namespace textscale::dist
