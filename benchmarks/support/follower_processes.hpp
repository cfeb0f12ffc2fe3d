// benchmarks/support/follower_processes.hpp - the child processes of --transport tcp-procs, seen
// from the parent: fork and exec, the control pipes, reaping, and killing what does not exit.
// What travels over the pipes is in follower_protocol.hpp.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <asio/posix/stream_descriptor.hpp>
#include <asio/read_until.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include <raft/raft.hpp>

namespace raft_bench {

/// Writes all of `text` to `fd`; false if the other end is gone.
inline bool write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    text.remove_prefix(std::size_t(n));
  }
  return true;
}

/// Reads one line (without the newline) from `fd`, a byte at a time (so nothing after the line
/// is consumed), waiting at most `timeout`. Nullopt on end of file, error or timeout.
inline std::optional<std::string> read_line_blocking(int fd, std::chrono::milliseconds timeout) {
  using clock = std::chrono::steady_clock;
  const auto until = clock::now() + timeout;
  std::string line;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, int(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return std::nullopt;
    char c = 0;
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    if (c == '\n') return line;
    line += c;
  }
}

/// The follower processes of one run. Each is this program re-executed with `--role follower`,
/// its stdin and stdout connected to pipes: requests go down stdin one line each, answers come
/// back on stdout one line each. A follower exits when told to stop or when its stdin reaches end
/// of file, and is killed by the kernel if this process dies first (PR_SET_PDEATHSIG). The
/// destructor reaps every follower, killing those that do not exit within a few seconds.
class follower_group {
 public:
  struct follower {
    raft::node_id id;
    pid_t pid = -1;
    int to = -1;    // its stdin
    int from = -1;  // its stdout
    std::uint16_t port = 0;
    std::unique_ptr<asio::posix::stream_descriptor> reader;  // `from`, once the run starts
    std::string buffer;
    int exit_status = -1;  // after reaping
  };

  follower_group() = default;
  follower_group(const follower_group&) = delete;
  follower_group& operator=(const follower_group&) = delete;
  ~follower_group() { reap(std::chrono::seconds(5)); }

  /// Forks and executes /proc/self/exe with `args` (argv[0] first). Call from the main thread:
  /// PR_SET_PDEATHSIG fires when the thread that forked exits.
  void spawn(raft::node_id id, const std::vector<std::string>& args) {
    int down[2], up[2];
    if (::pipe2(down, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
    if (::pipe2(up, O_CLOEXEC) != 0) {
      const int err = errno;
      ::close(down[0]);
      ::close(down[1]);
      throw std::system_error(err, std::generic_category(), "pipe2");
    }
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
      const int err = errno;
      for (int fd : {down[0], down[1], up[0], up[1]}) ::close(fd);
      throw std::system_error(err, std::generic_category(), "fork");
    }
    if (pid == 0) exec_child(parent, down[0], up[1], argv.data());
    ::close(down[0]);
    ::close(up[1]);
    auto f = std::make_unique<follower>();
    f->id = id;
    f->pid = pid;
    f->to = down[1];
    f->from = up[0];
    followers_.push_back(std::move(f));
  }

  [[nodiscard]] std::vector<std::unique_ptr<follower>>& followers() noexcept { return followers_; }
  [[nodiscard]] bool empty() const noexcept { return followers_.empty(); }

  /// Sends `request` to every follower, then awaits one answer line from each (same order).
  asio::awaitable<std::vector<std::string>> ask_all(std::string_view request) {
    std::vector<std::string> answers;
    for (auto& f : followers_)
      if (!write_all(f->to, std::string(request) + "\n"))
        throw std::runtime_error("follower process " + std::to_string(f->id.value) + " is gone");
    for (auto& f : followers_) {
      std::error_code ec;
      const std::size_t n = co_await asio::async_read_until(
          *f->reader, asio::dynamic_buffer(f->buffer), '\n', asio::redirect_error(asio::use_awaitable, ec));
      if (ec)
        throw std::runtime_error("follower process " + std::to_string(f->id.value) +
                                 " did not answer '" + std::string(request) + "': " + ec.message());
      answers.push_back(f->buffer.substr(0, n - 1));
      f->buffer.erase(0, n);
    }
    co_return answers;
  }

  /// Tells every follower to stop (it stops its node and exits).
  void stop_all() {
    for (auto& f : followers_) {
      if (f->to >= 0) {
        (void)write_all(f->to, "stop\n");
        ::close(f->to);
        f->to = -1;
      }
      if (f->reader) {
        std::error_code ignored;
        f->reader->close(ignored);
      }
    }
  }

  /// Closes the pipes and waits up to `grace` for every follower to exit, then kills the rest.
  /// True if every follower exited by itself with status 0.
  bool reap(std::chrono::milliseconds grace) {
    for (auto& f : followers_) close_pipes(*f);
    bool clean = true;
    const auto until = std::chrono::steady_clock::now() + grace;
    for (auto& f : followers_) {
      if (f->pid < 0) continue;
      int status = 0;
      pid_t r = 0;
      while ((r = ::waitpid(f->pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      if (r == 0) {
        std::fprintf(stderr, "replication_bench: follower process %llu (pid %d) did not exit; killing it\n",
                     static_cast<unsigned long long>(f->id.value), int(f->pid));
        ::kill(f->pid, SIGKILL);
        while ((r = ::waitpid(f->pid, &status, 0)) < 0 && errno == EINTR) {
        }
        clean = false;
      }
      if (r == f->pid) {
        f->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (f->exit_status != 0) clean = false;
      }
      f->pid = -1;
    }
    return clean;
  }

  /// For the watchdog: SIGKILL every follower now.
  void kill_all() noexcept {
    for (auto& f : followers_)
      if (f->pid > 0) ::kill(f->pid, SIGKILL);
  }

 private:
  /// In the child, between fork and exec: only async-signal-safe calls.
  [[noreturn]] static void exec_child(pid_t parent, int stdin_fd, int stdout_fd, char** argv) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
    if (::dup2(stdin_fd, 0) < 0 || ::dup2(stdout_fd, 1) < 0) ::_exit(127);
    ::fcntl(0, F_SETFD, 0);  // dup2 onto itself would keep FD_CLOEXEC
    ::fcntl(1, F_SETFD, 0);
    // Sockets (Asio opens them without SOCK_CLOEXEC) and everything else stay behind.
    if (::close_range(3, ~0u, 0) != 0)
      for (int fd = 3; fd < 4096; ++fd) ::close(fd);
    ::execv("/proc/self/exe", argv);
    ::_exit(127);
  }

  static void close_pipes(follower& f) {
    if (f.to >= 0) ::close(f.to);
    f.to = -1;
    if (f.reader) {
      std::error_code ignored;
      f.reader->close(ignored);
      f.reader.reset();
    } else if (f.from >= 0) {
      ::close(f.from);
    }
    f.from = -1;
  }

  std::vector<std::unique_ptr<follower>> followers_;
};

}  // namespace raft_bench
