// raft/core/quorum.hpp - majorities, joint majorities and the commit index they allow.
//
// Pure functions over a configuration and per-voter facts. The node calls them; tests check them
// against a deliberately naive reference.
#pragma once

#include <algorithm>
#include <array>
#include <span>
#include <vector>

#include "raft/core/configuration.hpp"
#include "raft/core/types.hpp"
#include "raft/detail/heap_sort.hpp"

namespace raft {
inline namespace v1 {

/// Smallest number of voters out of `n` that forms a majority.
[[nodiscard]] constexpr std::size_t majority(std::size_t n) noexcept { return n / 2 + 1; }

/// The highest index stored by a majority of `voters`, where `match(id)` says what each stored.
/// An empty voter set imposes no constraint (returns the largest index), so that a joint
/// configuration's empty outgoing half never limits the result.
template <class MatchOf>
[[nodiscard]] index_t majority_index(const std::vector<node_id>& voters, MatchOf&& match) {
  if (voters.empty()) return index_t{~std::uint64_t{0}};
  // The (majority)-th largest value is stored by at least a majority. The leader asks after
  // every acknowledgement: typical voter sets are sorted on the stack, without an allocation.
  auto kth = [&](std::span<index_t> m) {
    for (std::size_t i = 0; i < m.size(); ++i) m[i] = match(voters[i]);
    detail::heap_sort(m);
    return m[m.size() - majority(m.size())];
  };
  constexpr std::size_t on_stack = 16;
  if (voters.size() <= on_stack) {
    std::array<index_t, on_stack> m{};
    return kth(std::span<index_t>(m.data(), voters.size()));
  }
  std::vector<index_t> m(voters.size());
  return kth(m);
}

/// The highest index stored by a quorum of `c`: a majority of `voters` and, during joint
/// consensus, also a majority of `outgoing` (thesis §4.3).
template <class MatchOf>
[[nodiscard]] index_t quorum_index(const configuration& c, MatchOf&& match) {
  return std::min(majority_index(c.voters, match), majority_index(c.outgoing, match));
}

/// Outcome of a vote count.
enum class vote_result : std::uint8_t { pending, won, lost };

/// Counts votes of one round in one voter set: `vote(id)` gives true (granted), false (refused)
/// or nullopt (no answer yet).
template <class VoteOf>
[[nodiscard]] vote_result majority_vote(const std::vector<node_id>& voters, VoteOf&& vote) {
  if (voters.empty()) return vote_result::won;
  std::size_t yes = 0, no = 0;
  for (node_id v : voters) {
    auto answer = vote(v);
    if (!answer) continue;
    ++(*answer ? yes : no);
  }
  const std::size_t need = majority(voters.size());
  if (yes >= need) return vote_result::won;
  if (no > voters.size() - need) return vote_result::lost;
  return vote_result::pending;
}

/// Counts votes in a configuration: during joint consensus both halves must be won (§4.3).
template <class VoteOf>
[[nodiscard]] vote_result quorum_vote(const configuration& c, VoteOf&& vote) {
  auto a = majority_vote(c.voters, vote);
  auto b = majority_vote(c.outgoing, vote);
  if (a == vote_result::lost || b == vote_result::lost) return vote_result::lost;
  if (a == vote_result::won && b == vote_result::won) return vote_result::won;
  return vote_result::pending;
}

}  // namespace v1
}  // namespace raft
