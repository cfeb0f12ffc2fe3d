// examples/kv/server_log.hpp - what a server process (kv_server, sharded_kv_server) writes to
// stderr: every line starts with "[<program> <id>] ", its own messages and the library's alike.
#pragma once

#include <cstdio>
#include <exception>
#include <sstream>
#include <string>
#include <string_view>

#include <raft/core/types.hpp>
#include <raft/logger.hpp>

namespace kv {

class server_log {
 public:
  server_log(std::string_view program, raft::node_id id)
      : prefix_("[" + std::string(program) + " " + std::to_string(id.value) + "] ") {}

  /// One line "<prefix>info: <parts...>".
  template <class... Parts>
  void info(const Parts&... parts) const {
    std::ostringstream os;
    os << prefix_ << "info: ";
    (os << ... << parts);
    os << '\n';
    std::fputs(os.str().c_str(), stderr);
  }

  /// One line "<prefix>error: <what>".
  void error(std::string_view what) const {
    std::fprintf(stderr, "%serror: %.*s\n", prefix_.c_str(), static_cast<int>(what.size()), what.data());
  }

  /// A logger for the library (node, transport) at level info and up; `context` goes after the
  /// prefix, so that the messages of, say, one group among many say which ("group 3 ").
  [[nodiscard]] raft::logger raft_logger(const std::string& context = "") const {
    raft::logger l;
    l.min_level = raft::log_level::info;
    l.sink = [prefix = prefix_ + context](raft::log_level level, std::string_view text) {
      std::fprintf(stderr, "%s%s: %.*s\n", prefix.c_str(), raft::to_string(level), static_cast<int>(text.size()),
                   text.data());
    };
    return l;
  }

 private:
  std::string prefix_;
};

/// Returns `run()`, or 1 after writing "<prefix>error: <what>" if it throws: a server that
/// cannot start (a taken port, unreadable data) ends with a message rather than an exception.
template <class Run>
int run_or_report(const server_log& log, Run run) {
  try {
    return run();
  } catch (const std::exception& e) {
    log.error(e.what());
    return 1;
  }
}

}  // namespace kv
