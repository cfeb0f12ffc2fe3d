// raft/core/election_round.hpp - the answers of one PreVote or vote round.
//
// Pure header: no Asio, no I/O. The node keeps one election_round while it campaigns and asks
// quorum_vote() after every answer whether the round is won, lost or still open (§3.4, §9.6).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "raft/core/types.hpp"

namespace raft {
inline namespace v1 {

/// One PreVote (§9.6) or vote (§3.4) round: who granted, who refused. Each voter's first answer
/// is the one that counts, so a duplicated or replayed reply changes nothing.
struct election_round {
  std::uint64_t id = 0;          ///< the node's round number; a newer round supersedes this one
  bool pre_vote = false;
  term_t term;                   ///< the term the round asks votes for
  std::vector<node_id> granted;  ///< voters that said yes (the candidate itself first)
  std::vector<node_id> refused;  ///< voters that said no

  /// Records `voter`'s answer, unless it already answered in this round.
  void record(node_id voter, bool yes) {
    if (answer(voter)) return;
    (yes ? granted : refused).push_back(voter);
  }

  /// `voter`'s answer in this round, or std::nullopt if it has not answered.
  [[nodiscard]] std::optional<bool> answer(node_id voter) const {
    if (std::find(granted.begin(), granted.end(), voter) != granted.end()) return true;
    if (std::find(refused.begin(), refused.end(), voter) != refused.end()) return false;
    return std::nullopt;
  }
};

}  // namespace v1
}  // namespace raft
