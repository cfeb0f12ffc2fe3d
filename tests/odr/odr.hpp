// Two translation units (a.cpp, b.cpp) include the whole library through raft/raft.hpp and use
// the same inline functions, templates and function-local statics; main.cpp links them. A header
// that defines a non-inline function or variable fails to link; one whose inline entities differ
// between TUs, or whose statics are duplicated, fails the checks in main.cpp.
#pragma once

#include <system_error>

namespace odr {

struct facts {
  const std::error_category* category;  // must be one object program-wide
  int majority_of_5;
  unsigned long long last_index;
  const char* leader_name;
  bool node_ran;  // a node started, persisted its bootstrap entry, and stopped
};

facts from_a();
facts from_b();

}  // namespace odr
