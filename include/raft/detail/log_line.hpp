// raft/detail/log_line.hpp - how the node formats a log message: one non-template function for
// every message, whatever its parts.
//
// logger::log(level, parts...) streams its parts through an std::ostringstream; as a template it
// is instantiated (and optimized) once per distinct list of part types, which costs every user's
// translation unit compile time for lines that are rarely printed. The node logs through
// detail::log_line instead: each part becomes a log_part (text, or an unsigned number such as a
// term, an index or a node id), and write_log(), out of line and cold, joins them. The text is
// the same as logger::log would make. The texts of the exceptions the node and the in-memory
// policies throw are joined the same way (join()), not by a chain of std::string operator+ and
// std::to_string inlined at every throw.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "raft/core/types.hpp"
#include "raft/logger.hpp"

namespace raft {
inline namespace v1 {
namespace detail {

/// One piece of a log message: text, or an unsigned number printed in decimal. Text is
/// referenced, not copied: a log_part lives only as long as the call that formats it.
class log_part {
 public:
  log_part(const char* text) noexcept : text_(text) {}
  log_part(std::string_view text) noexcept : text_(text) {}
  log_part(const std::string& text) noexcept : text_(text) {}
  template <class Tag>
  log_part(strong_number<Tag> n) noexcept : number_(n.value), is_number_(true) {}

  void append_to(std::string& line) const {
    if (is_number_)
      line += std::to_string(number_);
    else
      line += text_;
  }

 private:
  std::string_view text_;
  std::uint64_t number_ = 0;
  bool is_number_ = false;
};

/// Joins `parts` into one string: a log message, or the text of an exception.
[[gnu::cold, gnu::noinline]] inline std::string join(std::initializer_list<log_part> parts) {
  std::string line;
  for (const log_part& p : parts) p.append_to(line);
  return line;
}

/// Joins `parts` into one message and hands it to the logger's sink. The caller has checked
/// `log.enabled(level)`.
[[gnu::cold, gnu::noinline]] inline void write_log(const logger& log, log_level level,
                                                   std::initializer_list<log_part> parts) {
  log.sink(level, join(parts));
}

}  // namespace detail
}  // namespace v1
}  // namespace raft
