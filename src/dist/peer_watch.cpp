#include "textscale/dist/peer_watch.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "textscale/common/log.h"
#include "textscale/dist/communicator.h"

namespace textscale::dist {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kHeartbeat = std::chrono::seconds(1);
constexpr int kConnectMilliseconds = 2000;  // per address of rank 0
constexpr int kPollMilliseconds = 200;
constexpr char kBeat = '.';
constexpr char kGoodbye = 'B';

// The other end of one watched connection.
struct Peer {
  int fd = -1;
  int rank = -1;  // -1 until its introduction ("rank pid host\n") has arrived (on rank 0)
  long pid = 0;
  std::string host;
  std::string introduction;  // read so far
  Clock::time_point heard = Clock::now();
  enum class Status { watching, ended, lost } status = Status::watching;
};

std::string describe(const Peer& peer) {
  return "rank " + std::to_string(peer.rank) + " on " + peer.host + " (pid " + std::to_string(peer.pid) + ")";
}

// This machine's IPv4 addresses: those of up, non-loopback interfaces first, loopback last.
std::vector<std::string> ipv4_addresses() {
  std::vector<std::string> outside, loopback;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return {"127.0.0.1"};
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET || !(a->ifa_flags & IFF_UP)) continue;
    char text[INET_ADDRSTRLEN] = {0};
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, text, sizeof text);
    ((a->ifa_flags & IFF_LOOPBACK) ? loopback : outside).emplace_back(text);
  }
  ::freeifaddrs(list);
  outside.insert(outside.end(), loopback.begin(), loopback.end());
  return outside;
}

// A connected, non-blocking socket to address:port, or -1 after `timeout_ms`.
int connect_to(const std::string& address, int port, int timeout_ms) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, address.c_str(), &to.sin_addr) == 1) {
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0) return fd;
    pollfd p{fd, POLLOUT, 0};
    int error = 0;
    socklen_t length = sizeof error;
    if (errno == EINPROGRESS && ::poll(&p, 1, timeout_ms) == 1 &&
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0)
      return fd;
  }
  ::close(fd);
  return -1;
}

// Rank 0's listening socket on every address, and its port (-1: none).
int listen_anywhere(int backlog, int& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t length = sizeof at;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&at), sizeof at) != 0 || ::listen(fd, backlog) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&at), &length) != 0) {
    ::close(fd);
    return -1;
  }
  port = ntohs(at.sin_port);
  return fd;
}

bool send_byte(int fd, char byte) {
  return ::send(fd, &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1 || errno == EAGAIN;
}

}  // namespace

struct PeerWatch::State {
  int listen_fd = -1;
  std::deque<Peer> peers;    // rank 0: one per rank that connected; elsewhere: rank 0
  mutable std::mutex mutex;  // guards peers (the thread reads and writes, callers read)
  std::atomic<bool>* any_lost = nullptr;
  std::string tag;  // "[rank r/N] "
  std::atomic<bool> stop{false};
  bool said_goodbye = false;  // with mutex held
  std::thread thread;

  void run();
  void receive(Peer& peer);
  // With mutex held: the connection is over; a peer still watched is lost.
  void close(Peer& peer) {
    if (peer.status == Peer::Status::watching && peer.rank >= 0) {
      peer.status = Peer::Status::lost;
      any_lost->store(true);
      std::fprintf(stderr,
                   "%sfailure detector: lost %s: its connection closed before the end of the run (the "
                   "process was killed, or its node failed)\n",
                   tag.c_str(), describe(peer).c_str());
      std::fflush(stderr);
    } else if (peer.status == Peer::Status::watching) {
      peer.status = Peer::Status::ended;  // never introduced itself: not a rank
    }
    if (peer.fd >= 0) ::close(peer.fd);
    peer.fd = -1;
  }
};

PeerWatch::PeerWatch(Communicator& comm, const std::string& host, int reserved_fd) : state_(std::make_unique<State>()) {
  state_->any_lost = &any_lost_;
  state_->tag = "[rank " + std::to_string(comm.rank()) + "/" + std::to_string(comm.size()) + "] ";
  // Rank 0's endpoint: "port pid host address...", broadcast to every rank.
  std::string endpoint;
  if (comm.rank() == 0) {
    int port = -1;
    state_->listen_fd = listen_anywhere(comm.size(), port);
    endpoint = std::to_string(port) + " " + std::to_string(::getpid()) + " " + host;
    for (const auto& address : ipv4_addresses()) endpoint += " " + address;
  }
  std::uint64_t length = endpoint.size();
  comm.broadcast(&length, sizeof length, 0);
  endpoint.resize(length);
  comm.broadcast(endpoint.data(), length, 0);
  std::uint64_t connected = 1;
  if (comm.rank() != 0) {
    std::istringstream in(endpoint);
    Peer root;
    int port = -1;
    root.rank = 0;
    in >> port >> root.pid >> root.host;
    connected = 0;
    for (std::string address; port > 0 && root.fd < 0 && in >> address;)
      root.fd = connect_to(address, port, kConnectMilliseconds);
    const std::string introduction = std::to_string(comm.rank()) + " " + std::to_string(::getpid()) + " " + host + "\n";
    if (root.fd >= 0 && reserved_fd >= 0 && ::dup3(root.fd, reserved_fd, O_CLOEXEC) == reserved_fd) {
      ::close(root.fd);  // the reserved, lower number now holds the connection
      root.fd = reserved_fd;
      reserved_fd = -1;
    }
    if (root.fd >= 0 && ::send(root.fd, introduction.data(), introduction.size(), MSG_NOSIGNAL) ==
                            static_cast<ssize_t>(introduction.size())) {
      connected = 1;
      state_->peers.push_back(root);
    } else if (root.fd >= 0) {
      ::close(root.fd);
    }
  }
  if (reserved_fd >= 0) ::close(reserved_fd);
  // Rank 0 names the ranks it cannot watch (their loss is then noticed by --comm-timeout only).
  const std::vector<std::uint64_t> all = comm.allgather(connected);
  std::string unwatched;
  for (std::size_t r = 0; r < all.size(); ++r)
    if (!all[r]) unwatched += (unwatched.empty() ? "" : ", ") + std::to_string(r);
  if (comm.rank() == 0 && !unwatched.empty())
    TS_LOG(warn, "rank(s) " << unwatched << " could not connect to rank 0's failure detector (" << endpoint
                            << "): a lost rank is then noticed only by --comm-timeout");
  state_->thread = std::thread([state = state_.get()] { state->run(); });
}

PeerWatch::~PeerWatch() {
  farewell();
  state_->stop = true;
  if (state_->thread.joinable()) state_->thread.join();
  for (auto& peer : state_->peers)
    if (peer.fd >= 0) ::close(peer.fd);
  if (state_->listen_fd >= 0) ::close(state_->listen_fd);
}

void PeerWatch::farewell() {
  std::lock_guard<std::mutex> lock(state_->mutex);
  if (state_->said_goodbye) return;
  state_->said_goodbye = true;
  for (const auto& peer : state_->peers)
    if (peer.fd >= 0 && peer.status == Peer::Status::watching) send_byte(peer.fd, kGoodbye);
}

std::string PeerWatch::lost() const {
  if (!any_lost_.load(std::memory_order_relaxed)) return "";
  std::lock_guard<std::mutex> lock(state_->mutex);
  std::string names;
  int count = 0;
  for (const auto& peer : state_->peers)
    if (peer.status == Peer::Status::lost && peer.rank >= 0) {
      names += (count++ ? ", " : "") + describe(peer);
    }
  return "lost " + names + ": " + (count > 1 ? "their connections" : "its connection") +
         " to this rank closed before the end of the run (the process was killed, or its node failed)";
}

std::string PeerWatch::silent(double seconds) const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  std::string names;
  const auto now = Clock::now();
  for (const auto& peer : state_->peers)
    if (peer.status == Peer::Status::watching && peer.rank >= 0 &&
        std::chrono::duration<double>(now - peer.heard).count() > seconds)
      names += (names.empty() ? "" : ", ") + describe(peer) + " for " +
               std::to_string(static_cast<int>(std::chrono::duration<double>(now - peer.heard).count())) + " s";
  return names;
}

// The thread: accept introductions (rank 0), read heartbeats and goodbyes, notice closed
// connections, write a heartbeat to every peer each second.
void PeerWatch::State::run() {
  auto next_beat = Clock::now();
  std::vector<pollfd> fds;
  while (!stop) {
    fds.clear();
    if (listen_fd >= 0) fds.push_back({listen_fd, POLLIN, 0});
    {
      std::lock_guard<std::mutex> lock(mutex);
      for (const auto& peer : peers)
        if (peer.fd >= 0) fds.push_back({peer.fd, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), kPollMilliseconds) < 0 && errno != EINTR) return;
    std::lock_guard<std::mutex> lock(mutex);
    for (const auto& p : fds) {
      if (!p.revents) continue;
      if (p.fd == listen_fd) {
        const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
          peers.emplace_back();
          peers.back().fd = fd;
        }
        continue;
      }
      for (auto& peer : peers)
        if (peer.fd == p.fd) receive(peer);
    }
    if (Clock::now() >= next_beat && !said_goodbye) {
      next_beat = Clock::now() + kHeartbeat;
      for (auto& peer : peers)
        if (peer.fd >= 0 && peer.status == Peer::Status::watching && peer.rank >= 0 && !send_byte(peer.fd, kBeat))
          close(peer);
    }
  }
}

// With mutex held: what the peer sent, or its end.
void PeerWatch::State::receive(Peer& peer) {
  char buffer[256];
  const ssize_t n = ::recv(peer.fd, buffer, sizeof buffer, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {  // end of file, or reset: the process is gone
    close(peer);
    return;
  }
  peer.heard = Clock::now();
  for (ssize_t i = 0; i < n; ++i) {
    if (peer.rank < 0) {  // the introduction, on rank 0
      if (buffer[i] != '\n') {
        peer.introduction += buffer[i];
        if (peer.introduction.size() > 512) {  // no introduction of ours is this long: not a rank
          peer.status = Peer::Status::ended;
          close(peer);
          return;
        }
        continue;
      }
      std::istringstream in(peer.introduction);
      in >> peer.rank >> peer.pid >> peer.host;
      if (!in) {  // not one of ours: drop the connection
        peer.rank = -1;
        peer.status = Peer::Status::ended;
        close(peer);
        return;
      }
    } else if (buffer[i] == kGoodbye) {
      peer.status = Peer::Status::ended;
    }
  }
}

}  // namespace textscale::dist
