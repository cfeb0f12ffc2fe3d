// raft/logger.hpp - a small pluggable log sink. Silent unless the user installs one; the node
// formats a message only when a sink is installed and the level passes, so a silent logger costs
// one branch.
#pragma once

#include <cstdint>
#include <functional>
#include <sstream>
#include <string_view>
#include <utility>

namespace raft {
inline namespace v1 {

enum class log_level : std::uint8_t { debug, info, warning, error };

constexpr const char* to_string(log_level l) noexcept {
  switch (l) {
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warning: return "warning";
    case log_level::error: return "error";
  }
  return "?";
}

struct logger {
  /// Receives each message that passes `min_level`. Called on the node's executor.
  std::function<void(log_level, std::string_view)> sink;
  log_level min_level = log_level::info;

  [[nodiscard]] bool enabled(log_level l) const noexcept { return sink && l >= min_level; }

  /// Streams `parts` into one message and hands it to the sink, if enabled.
  template <class... Parts>
  void log(log_level l, const Parts&... parts) const {
    if (!enabled(l)) return;
    std::ostringstream os;
    (os << ... << parts);
    sink(l, os.str());
  }
};

}  // namespace v1
}  // namespace raft
