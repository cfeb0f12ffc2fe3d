// tests/multi/multi_support.hpp - what the multi-group tests share.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <vector>

namespace multi_test {

/// The seeds a test runs: `defaults`, or the one RAFT_MULTI_SEED names (to replay it).
inline std::vector<std::uint64_t> seeds(std::initializer_list<std::uint64_t> defaults) {
  if (const char* s = std::getenv("RAFT_MULTI_SEED")) return {std::strtoull(s, nullptr, 10)};
  return defaults;
}

}  // namespace multi_test
