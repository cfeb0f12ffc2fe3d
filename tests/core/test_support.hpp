// Helpers shared by the core unit tests: building logs tersely and seeding property tests.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "raft/core/log.hpp"

namespace raft_test {

/// An entry whose payload names its position and term ("7@3"), so two entries are equal exactly
/// when their index and term are (as the Log Matching property says they should be).
inline raft::log_entry make_entry(std::uint64_t index, std::uint64_t term) {
  return raft::log_entry{raft::term_t{term}, raft::index_t{index}, raft::entry_kind::command,
                         raft::buffer::from_string(std::to_string(index) + "@" + std::to_string(term))};
}

/// A log whose compaction base is (base_index, base_term), followed by entries of `terms`.
inline raft::in_memory_log make_log(std::uint64_t base_index, std::uint64_t base_term,
                               const std::vector<std::uint64_t>& terms) {
  raft::in_memory_log log{raft::index_t{base_index}, raft::term_t{base_term}};
  for (std::size_t k = 0; k < terms.size(); ++k) log.append(make_entry(base_index + 1 + k, terms[k]));
  return log;
}

/// A log starting at index 1 with entries of `terms`.
inline raft::in_memory_log make_log(const std::vector<std::uint64_t>& terms) { return make_log(0, 0, terms); }

/// Seed of the property tests: a fixed default, or RAFT_TEST_SEED (decimal or 0x-hex) to replay a
/// failure. Printed once per process so that every run can be reproduced.
inline constexpr std::uint64_t default_seed = 20240611;

inline std::uint64_t test_seed() {
  static const std::uint64_t seed = [] {
    std::uint64_t s = default_seed;
    if (const char* env = std::getenv("RAFT_TEST_SEED"); env != nullptr && *env != '\0') {
      char* end = nullptr;
      errno = 0;
      s = std::strtoull(env, &end, 0);
      if (*env == '-' || *end != '\0' || errno == ERANGE)
        throw std::invalid_argument(std::string("RAFT_TEST_SEED is not an unsigned 64-bit number: ") + env);
    }
    std::printf("[raft property tests] seed %llu (replay with RAFT_TEST_SEED=%llu)\n",
                static_cast<unsigned long long>(s), static_cast<unsigned long long>(s));
    std::fflush(stdout);
    return s;
  }();
  return seed;
}

/// Node ids from plain numbers: ids({1, 2, 3}).
inline std::vector<raft::node_id> ids(std::initializer_list<std::uint64_t> values) {
  std::vector<raft::node_id> out;
  for (auto v : values) out.push_back(raft::node_id{v});
  return out;
}

}  // namespace raft_test
