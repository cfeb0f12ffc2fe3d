// raft/core/configuration.hpp - cluster membership and its encoding in a log entry.
//
// The membership is part of the replicated state from the first entry on: a new cluster starts
// with a bootstrap configuration entry at index 1. A node uses the latest configuration in its
// log, committed or not (thesis §4.1). `outgoing` is non-empty only during joint consensus
// (C_old,new, §4.3), when decisions need a majority of both `voters` and `outgoing`. A learner
// is never in `voters`; during joint consensus it may be in `outgoing` too: a voter being demoted
// votes with the outgoing half until the joint phase ends (raft/core/confchange.hpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "raft/core/buffer.hpp"
#include "raft/core/types.hpp"
#include "raft/detail/endian.hpp"
#include "raft/detail/heap_sort.hpp"

namespace raft {
inline namespace v1 {

struct configuration {
  std::vector<node_id> voters;    ///< C_new (or the only configuration outside joint consensus)
  std::vector<node_id> outgoing;  ///< C_old during joint consensus, else empty
  std::vector<node_id> learners;  ///< receive the log, never vote

  friend bool operator==(const configuration&, const configuration&) = default;

  [[nodiscard]] bool joint() const noexcept { return !outgoing.empty(); }

  [[nodiscard]] bool is_voter(node_id id) const noexcept {
    return contains(voters, id) || contains(outgoing, id);
  }
  [[nodiscard]] bool is_member(node_id id) const noexcept {
    return is_voter(id) || contains(learners, id);
  }
  /// Every node that receives the log: voters of both halves and learners, each once, sorted.
  [[nodiscard]] std::vector<node_id> all_members() const {
    std::vector<node_id> all;
    all.reserve(voters.size() + outgoing.size() + learners.size());
    for (const auto* set : {&voters, &outgoing, &learners})
      for (node_id id : *set) all.push_back(id);
    detail::heap_sort(std::span<node_id>(all));
    all.erase(std::unique(all.begin(), all.end()), all.end());
    return all;
  }

 private:
  static bool contains(const std::vector<node_id>& set, node_id id) noexcept {
    return std::find(set.begin(), set.end(), id) != set.end();
  }
};

/// Why a configuration is not acceptable, or `nullptr` when it is.
[[nodiscard]] inline const char* validate(const configuration& c) noexcept {
  if (c.voters.empty()) return "a configuration needs at least one voter";
  for (const auto* set : {&c.voters, &c.outgoing, &c.learners})
    if (std::find(set->begin(), set->end(), no_node) != set->end())
      return "node id 0 is reserved and cannot be a member";
  for (const auto* set : {&c.voters, &c.outgoing, &c.learners})
    if (detail::has_duplicates(*set)) return "a node is listed twice in the same set";
  for (node_id l : c.learners) {
    if (std::find(c.voters.begin(), c.voters.end(), l) != c.voters.end())
      return "a node cannot be both a voter and a learner";
  }
  return nullptr;
}

// Encoding in a configuration entry: three sets, each a little-endian u64 count followed by
// little-endian u64 ids.
[[nodiscard]] inline buffer encode(const configuration& c) {
  std::vector<std::byte> out;
  for (const auto* set : {&c.voters, &c.outgoing, &c.learners}) {
    detail::append_u64(out, set->size());
    for (node_id id : *set) detail::append_u64(out, id.value);
  }
  return buffer{out};
}

/// Decodes a configuration entry; `std::nullopt` if the bytes are not a valid configuration.
[[nodiscard]] inline std::optional<configuration> decode_configuration(std::span<const std::byte> in) {
  configuration c;
  for (auto* set : {&c.voters, &c.outgoing, &c.learners}) {
    std::uint64_t n = 0;
    if (!detail::read_u64(in, n) || n > in.size() / 8) return std::nullopt;
    set->reserve(n);
    for (std::uint64_t i = 0; i < n; ++i) {
      std::uint64_t id = 0;
      if (!detail::read_u64(in, id)) return std::nullopt;  // never: n was checked above
      set->push_back(node_id{id});
    }
  }
  if (!in.empty() || validate(c) != nullptr) return std::nullopt;
  return c;
}

}  // namespace v1
}  // namespace raft
