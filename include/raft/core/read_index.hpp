// raft/core/read_index.hpp - the leader's bookkeeping for linearizable reads (§6.4), pure.
//
// Heartbeat rounds (not to be confused with election rounds, raft/core/election_round.hpp):
// every AppendEntries a leader sends carries its current heartbeat round, and every reply echoes
// the highest round the follower has heard from this leader. Once a quorum has echoed round r,
// the leader knows it still led when r started, so a read that recorded its read index (the
// commit index) before r started and waited for r may be served at that index (ReadIndex).
//
// The lease (§6.4.1, opt-in): a confirmed round also tells the leader that no other leader can
// be elected before that round's start plus the lease length (the minimum election timeout less
// the clock drift allowance), since the voters that echoed it ignore vote requests until then
// (§4.2.3). Two events void that promise, and the rule is kept here, in one place:
//   - the leader sent TimeoutNow: a transfer's vote request is granted despite a live leader
//     (§3.10). No lease for the rest of the term, also after the transfer timed out (a late
//     TimeoutNow can still elect the target);
//   - the configuration changed: the quorum that echoed may not be one of the new configuration
//     (removed voters), so the lease ends and only rounds started from then on renew it.
//
// Pure header: no Asio, no clock. The node passes the time in and completes the reads it is
// handed back.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "raft/core/types.hpp"
#include "raft/detail/take_front.hpp"

namespace raft {
inline namespace v1 {

/// `TimePoint` is the node's clock's time point; `Done` what completes a read (moved, never
/// called here).
template <class TimePoint, class Done>
class read_index {
 public:
  using duration = typename TimePoint::duration;

  /// A read waiting on the leader: its read index (0 while no entry of the leader's term has
  /// committed: the commit index is not known to cover every earlier write yet), the heartbeat
  /// round that confirms it (0: none yet), when it gives up, and what completes it.
  struct read {
    index_t index;
    std::uint64_t round = 0;
    TimePoint deadline{};
    Done done;
  };

  /// Unconfirmed rounds remembered for the lease; past this many (no quorum for long), the
  /// oldest is forgotten: it can only renew a lease that has long ended.
  static constexpr std::size_t max_unconfirmed = 4096;

  /// A new term as leader: round 0, nothing confirmed, no lease. The reads of the previous term
  /// must have been taken (take_all()).
  void reset() noexcept {
    round_ = confirmed_ = 0;
    starts_.clear();
    lease_until_ = TimePoint{};
    lease_revoked_ = false;
  }

  /// The current heartbeat round (what AppendEntries carry), and the highest round a quorum
  /// has acknowledged.
  [[nodiscard]] std::uint64_t round() const noexcept { return round_; }
  [[nodiscard]] std::uint64_t confirmed() const noexcept { return confirmed_; }

  /// Whether the lease lets the leader serve a read at `now` without a round.
  [[nodiscard]] bool lease_holds(TimePoint now) const noexcept { return !lease_revoked_ && now < lease_until_; }
  /// The leader sent TimeoutNow: no lease until reset() (the next term).
  void revoke_lease() noexcept {
    lease_revoked_ = true;
    lease_until_ = TimePoint{};
  }
  /// The leader's configuration changed: the lease ends; rounds started before never renew it.
  void configuration_changed() noexcept {
    lease_until_ = TimePoint{};
    starts_.clear();
  }

  /// Queues a read with read index `index` (0: not known yet, see committed_in_term()).
  void add(index_t index, TimePoint deadline, Done done) {
    reads_.push_back(read{index, 0, deadline, std::move(done)});
  }
  [[nodiscard]] std::size_t size() const noexcept { return reads_.size(); }
  /// Whether reads wait for the leader's first entry of its term to commit (they are the first
  /// ones: once it has committed, every new read gets an index at once).
  [[nodiscard]] bool waiting_for_commit() const noexcept {
    return !reads_.empty() && reads_.front().index == index_t{0};
  }
  /// The leader's first entry of its term committed at `commit`: the reads waiting for it take
  /// `commit` as their read index. Start a round for them next.
  void committed_in_term(index_t commit) noexcept {
    for (auto& r : reads_)
      if (r.index == index_t{0}) r.index = commit;
  }

  /// Starts the next heartbeat round at `now`; every read with a read index and no round joins
  /// it. Returns its number.
  std::uint64_t start_round(TimePoint now) {
    ++round_;
    if (starts_.size() >= max_unconfirmed) starts_.erase(starts_.begin());
    starts_.emplace_back(round_, now);
    for (auto& r : reads_)
      if (r.round == 0 && r.index != index_t{0}) r.round = round_;
    return round_;
  }

  /// A quorum has acknowledged every round through `round`. Confirms them, renews the lease to
  /// `round`'s start plus `lease` (unless revoked, or `round` started before the configuration
  /// changed), and returns the reads this confirms, oldest first: each may be served at its
  /// read index. Returns nothing when `round` confirms nothing new.
  std::vector<read> confirm(std::uint64_t round, duration lease) {
    if (round <= confirmed_) return {};
    confirmed_ = round;
    std::size_t done = 0;
    for (; done < starts_.size() && starts_[done].first <= confirmed_; ++done)
      if (starts_[done].first == confirmed_ && !lease_revoked_)
        lease_until_ = std::max(lease_until_, starts_[done].second + lease);
    starts_.erase(starts_.begin(), starts_.begin() + static_cast<std::ptrdiff_t>(done));
    return detail::take_front_while(reads_, [&](const read& r) { return r.round != 0 && r.round <= confirmed_; });
  }

  /// Takes the reads whose deadline has passed at `now` (reads are queued in deadline order).
  std::vector<read> take_expired(TimePoint now) {
    return detail::take_front_while(reads_, [&](const read& r) { return now >= r.deadline; });
  }
  /// Takes every read (the leader steps down or stops).
  std::vector<read> take_all() { return std::exchange(reads_, {}); }

 private:
  std::uint64_t round_ = 0;
  std::uint64_t confirmed_ = 0;
  std::vector<std::pair<std::uint64_t, TimePoint>> starts_;  ///< unconfirmed rounds' starts, oldest first
  TimePoint lease_until_{};
  bool lease_revoked_ = false;
  std::vector<read> reads_;  ///< in order of arrival, hence of round and of deadline
};

}  // namespace v1
}  // namespace raft
