// benchmarks/support/diagnostics.hpp - how the benchmark tells of trouble and state on stderr:
// the sink for the nodes' and transports' log lines, one node's state in one line, and the
// exception that ended a coroutine.
#pragma once

#include <cstdio>
#include <exception>
#include <string>
#include <string_view>

#include <raft/raft.hpp>

namespace raft_bench {

/// Where a node's or a transport's warnings and errors go.
inline void log_to_stderr(raft::log_level level, std::string_view text) {
  std::fprintf(stderr, "replication_bench: %s: %.*s\n", raft::to_string(level), int(text.size()), text.data());
}

/// "node N: ROLE term T, log L, commit C, applied A".
inline std::string describe(const raft::node_status& s) {
  char line[256];
  std::snprintf(line, sizeof line, "node %llu: %-8s term %llu, log %llu, commit %llu, applied %llu",
                static_cast<unsigned long long>(s.id.value), raft::to_string(s.role),
                static_cast<unsigned long long>(s.term.value),
                static_cast<unsigned long long>(s.last_log_index.value),
                static_cast<unsigned long long>(s.commit_index.value),
                static_cast<unsigned long long>(s.applied_index.value));
  return line;
}

/// Prints "`who`: what()" for the exception a coroutine ended with, if it is a std::exception.
inline void print_exception(const char* who, std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "%s: %s\n", who, ex.what());
  }
}

}  // namespace raft_bench
