// raft/core/rules.hpp - the protocol's decisions as pure functions.
//
// Each function takes the facts it needs and returns a decision; none touches storage, network or
// clock. The node (raft/node.hpp) gathers the facts, calls these, and carries the decisions out.
// Section numbers refer to Ongaro's dissertation ("Consensus: Bridging Theory and Practice").
#pragma once

#include <algorithm>
#include <optional>

#include "raft/core/log.hpp"
#include "raft/core/messages.hpp"
#include "raft/core/quorum.hpp"

namespace raft {
inline namespace v1 {

/// §3.6.1 (Election restriction): a candidate's log is at least as up-to-date as ours if its last
/// term is higher, or the last terms are equal and its log is at least as long. The term decides
/// first; the index only breaks a tie.
[[nodiscard]] constexpr bool log_is_up_to_date(term_t candidate_last_term, index_t candidate_last_index,
                                               term_t our_last_term, index_t our_last_index) noexcept {
  if (candidate_last_term != our_last_term) return candidate_last_term > our_last_term;
  return candidate_last_index >= our_last_index;
}

/// The facts a voter decides on.
struct voter_state {
  term_t current_term;
  node_id voted_for;        ///< vote given in `current_term`, or no_node
  term_t last_log_term;
  index_t last_log_index;
  bool leader_is_alive;     ///< heard from a current leader within the minimum election timeout
};

/// §3.4 / Figure 3.1 RequestVote receiver, called after the voter has adopted any higher term:
/// grant if the request is for our current term, we have not voted for someone else in it, and
/// the candidate's log is at least as up-to-date as ours.
///
/// §9.6 PreVote: grant if the term asked about is higher than ours, the log is up-to-date, and we
/// have not heard from a leader recently (so a node rejoining after a partition cannot disrupt a
/// healthy leader). A pre-vote changes no state.
[[nodiscard]] constexpr bool should_grant_vote(const voter_state& s, const vote_request& r,
                                               node_id candidate) noexcept {
  const bool up_to_date =
      log_is_up_to_date(r.last_log_term, r.last_log_index, s.last_log_term, s.last_log_index);
  if (r.pre_vote) return r.term > s.current_term && up_to_date && !s.leader_is_alive;
  return r.term == s.current_term && (s.voted_for == no_node || s.voted_for == candidate) &&
         up_to_date;
}

/// What a follower does with an AppendEntries request that carries its current term.
struct append_decision {
  bool accept = false;
  // When accepted:
  std::optional<index_t> truncate_after;  ///< drop our entries after this index first (conflict)
  std::size_t first_new = 0;               ///< entries[first_new..] are appended
  index_t last_new;                        ///< index of the last entry the request covers
  index_t commit;                          ///< our new commit index candidate (never lowered)
  // When rejected (fast backtracking hints):
  index_t conflict_index;
  term_t conflict_term;
};

/// §3.5 / Figure 3.1 AppendEntries receiver, steps 2-5:
/// - reject if our log has no entry at prev_log_index whose term matches prev_log_term;
/// - an existing entry that conflicts with a new one (same index, different term) is deleted with
///   all that follow; entries we already hold are kept: a stale or duplicated request never
///   removes matching entries;
/// - append the entries not already in the log;
/// - commit index = min(leader_commit, index of last new entry).
/// Entries at or before the compaction base are committed, hence known to match, and skipped.
[[nodiscard]] inline append_decision decide_append(const in_memory_log& log, const append_request& r,
                                                   index_t our_commit) {
  append_decision d;
  const index_t base = log.first_index().prev();
  if (r.prev_log_index > log.last_index()) {
    d.conflict_index = log.last_index().next();
    d.conflict_term = term_t{0};
    return d;
  }
  if (r.prev_log_index >= base) {
    const term_t ours = *log.term_at(r.prev_log_index);
    if (ours != r.prev_log_term) {
      d.conflict_term = ours;
      d.conflict_index = log.first_index_of_term_at(r.prev_log_index);
      return d;
    }
  }
  d.accept = true;
  d.last_new = r.prev_log_index + r.entries.size();
  std::size_t k = 0;
  for (; k < r.entries.size(); ++k) {
    const log_entry& e = r.entries[k];
    if (e.index <= base) continue;
    if (e.index > log.last_index()) break;
    if (*log.term_at(e.index) != e.term) {
      d.truncate_after = e.index.prev();
      break;
    }
  }
  d.first_new = k;
  d.commit = std::max(our_commit, std::min(r.leader_commit, d.last_new));
  return d;
}

/// Where the leader resumes after a rejection (fast backtracking): if the follower reported a
/// conflicting term that the leader also has, continue after the leader's last entry of that
/// term; otherwise jump to the first index of the follower's conflicting term (or its log end).
/// The result lies in [match + 1, rejected_index], so a stale rejection never moves `next` past
/// a prefix already known to match, and every rejection makes progress.
[[nodiscard]] inline index_t next_index_after_rejection(const in_memory_log& leader_log,
                                                        const append_response& r, index_t match) {
  index_t next = r.conflict_index;
  if (r.conflict_term != term_t{0}) {
    if (auto last = leader_log.last_index_of_term(r.conflict_term)) next = last->next();
  }
  next = std::min(next, r.rejected_index);
  return std::max(next, match.next());
}

/// §3.6.2 / Figure 3.1 "Rules for servers, leaders": the leader's commit index moves to the
/// highest index stored by a quorum, but only when that entry is from the leader's current term;
/// entries from earlier terms are committed indirectly (Figure 3.7 / the Figure 8 scenario).
template <class MatchOf>
[[nodiscard]] index_t leader_commit_index(const configuration& config, MatchOf&& match,
                                          const in_memory_log& log, term_t current_term,
                                          index_t current_commit) {
  const index_t q = quorum_index(config, match);
  if (q <= current_commit) return current_commit;
  const auto t = log.term_at(q);
  if (t && *t == current_term) return q;
  return current_commit;
}

}  // namespace v1
}  // namespace raft
