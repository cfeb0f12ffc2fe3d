// tests/sim/sim.hpp - the randomized nemesis simulation.
//
// One run is a pure function of its seed. The seed picks a cluster (3 or 5 nodes of
// raft::testing::cluster, each with a kv_state_machine), its options, a set of client
// coroutines issuing put, append and get through whatever node they think leads, and a nemesis
// that, for a few seconds of virtual time, partitions the network (symmetric, asymmetric, an
// isolated leader), crashes and restarts nodes (storage loses what it had not flushed), pauses
// nodes (SIGSTOP-like: timers and messages held), drops, duplicates, delays and reorders
// messages and skews the clock rate of single nodes. The cluster checks its safety invariants
// after every step. Then the nemesis heals everything and the run checks liveness (a leader and
// a committed write within a bounded number of election timeouts), lets the clients run a
// little longer, reads every key once more, checks that the replicas converged, and checks the
// whole client history with the linearizability checker.
//
// A failure names the seed, the fault schedule and, on a traced replay (same seed, same run),
// the steps around the violation.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <iomanip>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/redirect_error.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "raft/testing/cluster.hpp"

#include "../node/node_support.hpp"

#include "linearizability.hpp"

namespace sim {

using namespace raft;
using namespace raft::testing;
using namespace std::chrono_literals;
using vduration = virtual_clock::duration;
using kv = kv_state_machine;

/// How one run went.
struct outcome {
  enum class failure {
    none,
    safety,           ///< a cluster invariant (raft::testing::cluster's checks)
    linearizability,  ///< the client history has no linearization
    convergence,      ///< replicas hold different state
    node_failed,      ///< a node stopped on an error (an entry it could not decode, say)
    misreported,      ///< an operation's error denies what the node knew (a committed entry "lost")
    compaction,       ///< a node stopped taking snapshots: its log grows without bound
    liveness,
    other
  };

  std::uint64_t seed = 0;
  std::string setup;                  ///< the configuration the seed chose, in words
  std::string forced_profile;         ///< run_options::profile, if one was forced
  failure kind = failure::none;
  std::vector<std::string> problems;  ///< empty: the seed passed
  std::int64_t failed_at = -1;        ///< virtual ns of the first problem, when it has one
  std::vector<std::string> schedule;  ///< every nemesis action, with its virtual time
  std::vector<lin::kv_op> history;    ///< every client operation
  lin::result lin;                    ///< the checker's verdict on `history`
  std::uint64_t trace_hash = 0;       ///< every message sent, the history and the final state
  std::vector<std::string> trace;     ///< when traced: the steps around the failure
  vduration simulated{};              ///< virtual time the run covered
  std::size_t ops_ok = 0, ops_fail = 0, ops_info = 0;
  std::uint64_t last_term = 0;        ///< the leader's term at the end
  std::uint64_t messages = 0;
  /// What the run exercised: row (an operation, event or fault) -> column (the context it
  /// happened in) -> how often. See coverage_columns and required_coverage().
  std::map<std::string, std::map<std::string, std::uint64_t>> coverage;

  [[nodiscard]] bool passed() const noexcept { return problems.empty(); }
  /// A property the library promises broke, other than liveness (what a mutation must trigger).
  [[nodiscard]] bool unsafe() const noexcept {
    return kind != failure::none && kind != failure::liveness && kind != failure::other;
  }
};

inline const char* to_string(outcome::failure f) {
  switch (f) {
    case outcome::failure::none: return "none";
    case outcome::failure::safety: return "safety invariant";
    case outcome::failure::linearizability: return "linearizability";
    case outcome::failure::convergence: return "replicas diverged";
    case outcome::failure::node_failed: return "node failed";
    case outcome::failure::misreported: return "misreported outcome";
    case outcome::failure::compaction: return "compaction stopped";
    case outcome::failure::liveness: return "liveness";
    case outcome::failure::other: return "error";
  }
  return "?";
}

/// The coverage table's columns: the contexts an operation or fault is counted in.
inline const std::vector<std::string>& coverage_columns() {
  static const std::vector<std::string> columns{"total",       "links faulty", "node down",
                                                "clock skewed", "lease reads", "snapshots",
                                                "joint config", "transferring", "learners >= voters"};
  return columns;
}

/// Adds `b`'s counts to `a`.
inline void merge_coverage(std::map<std::string, std::map<std::string, std::uint64_t>>& a,
                           const std::map<std::string, std::map<std::string, std::uint64_t>>& b) {
  for (const auto& [row, cells] : b)
    for (const auto& [col, n] : cells) a[row][col] += n;
}

/// The table as text: one row per operation, event or fault, one column per context.
inline std::string format_coverage(const std::map<std::string, std::map<std::string, std::uint64_t>>& cov) {
  std::ostringstream os;
  std::size_t width = 10;
  for (const auto& [row, cells] : cov) width = std::max(width, row.size());
  os << std::left << std::setw(int(width)) << "operation / fault";
  for (const auto& col : coverage_columns()) os << " | " << col;
  os << "\n";
  for (const auto& [row, cells] : cov) {
    os << std::left << std::setw(int(width)) << row;
    for (const auto& col : coverage_columns()) {
      const auto it = cells.find(col);
      os << " | " << std::right << std::setw(int(col.size())) << (it == cells.end() ? 0 : it->second);
    }
    os << "\n";
  }
  return os.str();
}

/// The cells of the coverage table that the design reaches and a block of seeds the size of
/// CI's must exercise: every row in "total", and each row in the contexts listed for it. Cells
/// left out are unreachable by design (a lease read without lease reads; clock skew bursts with
/// lease reads, whose skews stay within the lease's margin; a lease ambush or a crash after
/// C_new during a joint configuration; held acknowledgements with lease reads, which that setup
/// turns off) or too rare to demand of a block (an operation on a learner while lease reads are
/// on).
inline std::vector<std::pair<std::string, std::vector<std::string>>> required_coverage() {
  const std::vector<std::string> faults{"links faulty", "node down", "clock skewed", "lease reads", "snapshots"};
  const std::vector<std::string> all{"links faulty", "node down",   "clock skewed", "lease reads",
                                     "snapshots",    "joint config", "transferring", "learners >= voters"};
  std::vector<std::pair<std::string, std::vector<std::string>>> r;
  auto need = [&](const std::string& row, std::vector<std::string> cols) {
    cols.insert(cols.begin(), "total");
    r.emplace_back(row, std::move(cols));
  };
  for (const char* row : {"propose put", "propose append", "propose get", "read_barrier on the leader",
                          "read_barrier on a follower", "snapshot installed", "snapshot taken"})
    need(row, all);
  need("read served by a lease", {"links faulty", "node down", "clock skewed", "lease reads", "snapshots",
                                  "transferring", "learners >= voters"});
  for (const char* shape : {"demote a voter", "promote a learner", "swap a voter and a learner", "replace a majority",
                            "add and remove voters at once", "as many learners as voters", "add voters",
                            "remove voters", "learners only", "unchanged", "invalid target"})
    need(std::string("change_membership: ") + shape, faults);
  for (const char* row : {"change_membership done", "membership change through a follower", "transfer_leadership done",
                          "transfer_leadership to a voter", "transfer_leadership to a learner",
                          "transfer_leadership to any node", "transfer_leadership to itself",
                          "transfer_leadership through a follower"})
    need(row, faults);
  for (const char* op : {"add_learner", "promote", "remove"})
    for (const char* who : {"a voter", "a learner", "a node that is not a member", "the node asked"})
      need(std::string(op) + " of " + who, {"links faulty", "node down", "snapshots"});
  need("add_learner of a node that does not exist", {"links faulty", "node down", "snapshots"});
  need("remove of a node that does not exist", {"links faulty", "node down", "snapshots"});
  for (const char* row : {"partition", "one-way cuts", "leader isolated, deaf or mute", "crash the leader",
                          "crash a follower", "pause a node", "clock drift of 1-15 %",
                          "crash within a message delay of an election"})
    need(row, all);
  need("clock skew burst", {"links faulty", "node down", "clock skewed", "snapshots", "joint config"});
  need("crash in the joint phase", {"links faulty", "node down", "lease reads", "snapshots", "joint config"});
  need("crash while C_new is uncommitted", {"links faulty", "node down", "lease reads", "snapshots",
                                            "learners >= voters"});
  for (const char* row : {"lease ambush: transfer while the leader is deaf", "lease ambush: read on the deposed leader",
                          "lease edge: leader cut off and read", "lease edge: read served", "lease edge: read refused"})
    need(row, {"links faulty", "node down", "clock skewed", "lease reads", "snapshots", "transferring"});
  need("held acks: released with a newer leader's messages", {"snapshots"});
  need("proposal committed, result unknown", {"snapshots"});
  need("snapshot installed over a longer log", {"links faulty", "node down", "snapshots"});
  return r;
}

/// The required cells (required_coverage()) that `cov` left at zero, as "row x context".
inline std::vector<std::string> missing_coverage(
    const std::map<std::string, std::map<std::string, std::uint64_t>>& cov) {
  std::vector<std::string> missing;
  for (const auto& [row, columns] : required_coverage())
    for (const auto& col : columns) {
      const auto r = cov.find(row);
      const bool hit = r != cov.end() && r->second.count(col) != 0 && r->second.at(col) != 0;
      if (!hit) missing.push_back(row + " x " + col);
    }
  return missing;
}

/// How to run: tracing is for replays; it does not change the run.
struct run_options {
  bool trace = false;
  bool verbose = false;        ///< with `trace`: heartbeats and their replies too
  std::size_t trace_tail = 160;  ///< lines kept before the failure
  /// With `trace`: keep the lines in [from, to] (virtual ns) instead of the tail.
  std::optional<std::pair<std::int64_t, std::int64_t>> window;
  /// The linearizability search gives up (a failure, "unknown") past this many configurations.
  std::uint64_t max_configurations = 2'000'000;
  /// Force a profile ("mixed", "churn"); empty: the seed chooses.
  std::string profile;
};

/// Folds values into a 64-bit FNV-1a hash.
struct trace_hash {
  std::uint64_t h = 0xCBF29CE484222325ull;
  void add(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) h = (h ^ ((v >> (8 * i)) & 0xFF)) * 0x100000001B3ull;
  }
  void add(std::string_view s) {
    add(s.size());
    for (char c : s) h = (h ^ std::uint64_t(std::uint8_t(c))) * 0x100000001B3ull;
  }
  void add(const buffer& b) {
    add(b.size());
    for (std::byte x : b.bytes()) h = (h ^ std::uint64_t(x)) * 0x100000001B3ull;
  }
  void add(const log_entry& e) { add(e.term.value), add(e.index.value), add(std::uint64_t(e.kind)), add(e.data); }
  void add(const message& m) {
    add(m.from.value), add(m.to.value), add(m.body.index());
    m.body.visit(
        [&](const auto& b) {
          using T = std::decay_t<decltype(b)>;
          add(b.term.value);
          if constexpr (std::is_same_v<T, vote_request>) {
            add(b.last_log_index.value), add(b.last_log_term.value), add(b.pre_vote), add(b.transfer);
          } else if constexpr (std::is_same_v<T, vote_response>) {
            add(b.granted), add(b.pre_vote);
          } else if constexpr (std::is_same_v<T, append_request>) {
            add(b.prev_log_index.value), add(b.prev_log_term.value), add(b.leader_commit.value), add(b.round);
            add(b.entries.size());
            for (const auto& e : b.entries) add(e);
          } else if constexpr (std::is_same_v<T, append_response>) {
            add(b.success), add(b.match_index.value), add(b.rejected_index.value);
            add(b.conflict_index.value), add(b.conflict_term.value), add(b.round);
          } else if constexpr (std::is_same_v<T, install_snapshot_request>) {
            add(b.meta.index.value), add(b.meta.term.value), add(b.offset), add(b.size), add(b.data);
          } else if constexpr (std::is_same_v<T, install_snapshot_response>) {
            add(b.index.value), add(b.next_offset), add(b.installed);
          } else if constexpr (std::is_same_v<T, read_index_request>) {
            add(b.id);
          } else if constexpr (std::is_same_v<T, read_index_response>) {
            add(b.id), add(b.ok), add(b.index.value);
          }
        });
  }
};

/// "12.345678s": a virtual instant, to the microsecond.
inline std::string stamp(std::int64_t ns) {
  std::ostringstream os;
  os << ns / 1'000'000'000 << '.' << std::setw(6) << std::setfill('0') << (ns / 1000) % 1'000'000 << 's';
  return os.str();
}
inline std::int64_t ns_now() { return virtual_clock::now().time_since_epoch().count(); }

inline std::string ids_text(const std::vector<node_id>& ids) {
  std::string s = "{";
  for (std::size_t k = 0; k < ids.size(); ++k) s += (k ? "," : "") + std::to_string(ids[k].value);
  return s + "}";
}

/// One message, in a line.
inline std::string describe(const message& m) {
  std::ostringstream os;
  os << m.from << "->" << m.to << ' ';
  m.body.visit(
      [&](const auto& b) {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, vote_request>) {
          os << (b.pre_vote ? "PreVote" : "RequestVote") << " t" << b.term << " last " << b.last_log_index
             << "/t" << b.last_log_term;
        } else if constexpr (std::is_same_v<T, vote_response>) {
          os << (b.pre_vote ? "PreVote" : "Vote") << (b.granted ? " granted" : " refused") << " t" << b.term;
        } else if constexpr (std::is_same_v<T, append_request>) {
          os << "Append t" << b.term << " prev " << b.prev_log_index << "/t" << b.prev_log_term;
          if (!b.entries.empty())
            os << " entries " << b.entries.front().index << ".." << b.entries.back().index << " (t"
               << b.entries.front().term << (b.entries.front().term != b.entries.back().term ? "..t" : "")
               << (b.entries.front().term != b.entries.back().term ? std::to_string(b.entries.back().term.value) : "")
               << ")";
          else
            os << " heartbeat";
          os << " commit " << b.leader_commit;
        } else if constexpr (std::is_same_v<T, append_response>) {
          os << "AppendReply t" << b.term;
          if (b.success)
            os << " ok match " << b.match_index;
          else
            os << " reject at " << b.rejected_index << " hint " << b.conflict_index << "/t" << b.conflict_term;
        } else if constexpr (std::is_same_v<T, install_snapshot_request>) {
          os << "InstallSnapshot t" << b.term << " of " << b.meta.index << "/t" << b.meta.term << " bytes "
             << b.offset << ".." << b.offset + b.data.size() << " of " << b.size;
        } else if constexpr (std::is_same_v<T, install_snapshot_response>) {
          os << "SnapshotReply t" << b.term << " of " << b.index << (b.installed ? " installed" : " next ")
             << (b.installed ? "" : std::to_string(b.next_offset));
        } else if constexpr (std::is_same_v<T, timeout_now>) {
          os << "TimeoutNow t" << b.term;
        } else if constexpr (std::is_same_v<T, read_index_request>) {
          os << "ReadIndex t" << b.term << " #" << b.id;
        } else if constexpr (std::is_same_v<T, read_index_response>) {
          os << "ReadIndexReply t" << b.term << " #" << b.id << (b.ok ? " at " + std::to_string(b.index.value) : " refused");
        } else {
          os << "message t" << b.term;
        }
      });
  return os.str();
}

inline bool is_heartbeat(const message& m) {
  if (auto* a = m.body.get_if<append_request>()) return a->entries.empty();
  if (auto* r = m.body.get_if<append_response>()) return r->success;
  return false;
}

/// Keeps the trace lines a failure report shows: the last `tail` ones, or those in a window.
class tracer {
 public:
  tracer(const run_options& ro) : on_(ro.trace), verbose_(ro.verbose), tail_(ro.trace_tail), window_(ro.window) {}
  [[nodiscard]] bool on() const noexcept { return on_; }
  /// No more lines (the cluster is being torn down).
  void stop() noexcept { on_ = false; }
  [[nodiscard]] bool verbose() const noexcept { return verbose_; }

  void add(const std::string& what) {
    if (!on_) return;
    const std::int64_t t = ns_now();
    if (window_) {
      if (t < window_->first || t > window_->second) return;
      if (lines_.size() >= 4000) {
        ++cut_;
        return;
      }
    }
    lines_.push_back(stamp(t) + "  " + what);
    if (!window_ && lines_.size() > tail_) lines_.pop_front();
  }
  std::vector<std::string> take() {
    std::vector<std::string> out(lines_.begin(), lines_.end());
    if (cut_) out.push_back("... " + std::to_string(cut_) + " more lines in the window");
    return out;
  }

 private:
  bool on_, verbose_;
  std::size_t tail_;
  std::optional<std::pair<std::int64_t, std::int64_t>> window_;
  std::deque<std::string> lines_;
  std::size_t cut_ = 0;
};

/// What a seed chooses.
struct setup {
  std::size_t nodes = 3;
  options opts;
  std::size_t clients = 3;
  std::size_t keys = 2;
  vduration client_timeout = 1s;
  vduration think_max = 20ms;
  vduration fault_phase = 5s;
  vduration action_gap_max = 400ms;
  vduration after_heal = 1s;  ///< clients keep running this long after the faults stop
  std::size_t max_down = 1;   ///< nodes crashed or paused at once
  std::chrono::milliseconds max_delay{20};
  double max_drop = 0.2, max_duplicate = 0.2;
  int weight_crash = 2, weight_partition = 2, weight_pause = 2, weight_skew = 2;
  int weight_transfer = 0, weight_membership = 0, weight_ambush = 0;
  std::size_t spares = 0;        ///< nodes that start outside the configuration (to add, swap in)
  int weight_ops = 0;            ///< any public operation, any argument shape, through any node
  int weight_lease_ambush = 0;   ///< lease reads: the leader deaf, a transfer, a write, a read there
  int weight_lease_edge = 0;     ///< lease reads: the leader cut off, read on it until the lease ends
  int weight_joint_crash = 0;    ///< a membership change, and a crash during its joint phase
  int weight_election_crash = 0; ///< a crash within a message delay of an election starting
  int weight_held_acks = 0;      ///< a leader's acks held, then released with a newer leader's messages
  int weight_read_restart = 0;   ///< a follower restarts while answers to its forwarded reads are held
  double small_skew = 0.0;       ///< share of clock skews of 1-15 % (the rest: 0.25-4x)
  double barrier_reads = 0.5;  ///< share of gets done by read_barrier (the rest go through the log)
  std::string profile = "mixed";

  /// Liveness bounds, in election timeouts (the maximum) after the faults stop.
  static constexpr int leader_within = 10;
  static constexpr int commit_within = 20;
  static constexpr int membership_within = 60;

  /// `profile`: "mixed" or "churn" forces that profile; empty lets the seed choose.
  static setup from(std::mt19937_64& rng, const std::string& profile = {}) {
    setup s;
    auto pick = [&](std::uint64_t lo, std::uint64_t hi) { return lo + rng() % (hi - lo + 1); };
    s.nodes = pick(0, 2) == 0 ? 3 : 5;
    s.opts.pre_vote = pick(0, 3) != 0;
    s.opts.check_quorum = pick(0, 3) != 0;
    if (pick(0, 1) == 0) {  // other timings: tighter elections, slower heartbeats
      s.opts.election_timeout_min = std::chrono::milliseconds(60 + pick(0, 240));
      s.opts.election_timeout_max =
          s.opts.election_timeout_min + s.opts.election_timeout_min * int(20 + pick(0, 100)) / 100;
      s.opts.heartbeat_interval = s.opts.election_timeout_min / int(2 + pick(0, 5));
    }
    if (pick(0, 2) == 0) {  // small messages and windows: probing, pipelining, flow control
      s.opts.max_entries_per_message = pick(1, 4);
      s.opts.max_inflight_messages = pick(1, 4);
      s.opts.max_inflight_bytes = pick(64, 320);
    }
    s.clients = pick(2, 6);
    s.keys = pick(1, 4);
    s.client_timeout = std::chrono::milliseconds(pick(300, 3000));
    s.think_max = std::chrono::milliseconds(pick(1, 80));
    s.fault_phase = std::chrono::milliseconds(pick(2000, 8000));
    s.action_gap_max = std::chrono::milliseconds(pick(100, 800));
    s.max_down = pick(0, 3) == 0 ? s.nodes - 1 : (s.nodes - 1) / 2;
    s.max_delay = std::chrono::milliseconds(pick(0, 3) == 0 ? 100 : 20);
    s.weight_crash = int(pick(0, 4));
    s.weight_partition = int(pick(1, 4));
    s.weight_pause = int(pick(0, 3));
    s.weight_skew = int(pick(0, 3));
    s.barrier_reads = double(pick(0, 2)) / 2;
    if (s.opts.check_quorum && pick(0, 3) == 0) s.opts.lease_reads = true;
    if (pick(0, 1) == 0) {  // snapshots often, short trailing logs, small chunks
      s.opts.snapshot_entries = pick(5, 100);
      s.opts.snapshot_trailing_entries = pick(0, 20);
      s.opts.snapshot_chunk_bytes = pick(16, 2048);
    }
    s.weight_transfer = int(pick(0, 2));
    s.weight_membership = s.nodes == 5 ? int(pick(0, 2)) : 0;
    s.weight_ambush = int(pick(0, 2));
    s.spares = pick(0, 2) == 0 ? 0 : pick(1, 2);
    s.weight_ops = int(pick(0, 3));
    s.weight_joint_crash = int(pick(0, 2));
    s.weight_election_crash = int(pick(0, 2));
    s.small_skew = double(pick(0, 2)) / 2;
    s.weight_read_restart = int(pick(0, 3));
    if (pick(0, 3) == 0) s.opts.max_apply_batch = pick(1, 4);  // apply backlogs between events
    const bool churn = pick(0, 2) == 0;
    if (profile == "churn" || (profile.empty() && churn)) {
      // Leader churn: five nodes, one or two entries per message over slow links, and the
      // leader cut off often. Followers are caught up slowly while leaders come and go: the
      // schedules of the dissertation's Figure 3.7, where an entry of an old term sits on a
      // majority before any entry of the new leader's term does.
      s.profile = "churn";
      s.nodes = 5;
      s.max_down = pick(0, 1) ? 4 : 2;
      s.opts.check_quorum = pick(0, 3) == 0;  // deposed leaders linger, and take writes
      s.opts.max_entries_per_message = pick(0, 3) == 0 ? 2 : 1;
      s.opts.max_inflight_messages = pick(0, 2) == 0 ? pick(2, 4) : 1;  // mostly stop-and-wait
      s.opts.max_inflight_bytes = std::size_t{1} << 20;
      s.action_gap_max = std::chrono::milliseconds(pick(60, 250));
      s.max_delay = std::chrono::milliseconds(pick(10, 60));
      s.weight_partition = 4;
      s.weight_crash = int(pick(0, 3));
      s.weight_pause = int(pick(0, 1));
      s.weight_skew = 0;
      s.opts.lease_reads = s.opts.lease_reads && s.opts.check_quorum;
      s.weight_membership = int(pick(0, 1));
      s.weight_ambush = int(pick(2, 6));
    }
    if (pick(0, 4) == 0) {
      // A former leader installs a newer leader's snapshot while it still applies a backlog of
      // its own committed proposals (see held_acks_ambush): frequent small snapshots, a short
      // trailing log, one entry applied per event, and no CheckQuorum (the leader must not step
      // down on its own while its acknowledgements are held).
      s.opts.check_quorum = false;
      s.opts.lease_reads = false;
      s.opts.max_apply_batch = 1;
      s.opts.snapshot_entries = pick(5, 20);
      s.opts.snapshot_trailing_entries = pick(0, 3);
      s.opts.snapshot_chunk_bytes = pick(256, 4096);
      s.weight_held_acks = int(pick(3, 6));
    }
    if (profile == "snapshots") {
      // Snapshot churn: frequent snapshots in small chunks, short trailing logs, leaders that
      // change while followers are still receiving a snapshot (a partly received snapshot that
      // the log then overtakes), crashes and partitions.
      s.profile = "snapshots";
      s.opts.snapshot_entries = pick(3, 12);
      s.opts.snapshot_trailing_entries = pick(0, 8);
      s.opts.snapshot_chunk_bytes = pick(8, 64);
      s.weight_crash = int(pick(1, 4));
      s.weight_partition = int(pick(2, 4));
      s.weight_transfer = int(pick(1, 3));
      s.weight_ambush = int(pick(1, 3));
    }
    if (!s.opts.pre_vote) {
      // Without PreVote, a server that a change removed or left with a stale configuration
      // campaigns again and again; it can hold off the elections of the only node that could
      // win for many timeouts (seen: 60 terms with a 20 % timeout spread), past the liveness
      // bound. Arbitrary targets for change_membership, and crashes during joint phases, run
      // with PreVote only.
      s.weight_joint_crash = 0;
    }
    if (s.opts.lease_reads) {
      // Leases are safe only while no clock runs faster than another by more than
      // lease_clock_drift: skews stay within that margin (small_skew = 1), close to its edge.
      s.opts.lease_clock_drift = std::array{0.03, 0.1, 0.2, 0.3}[pick(0, 3)];
      s.small_skew = 1.0;
      s.weight_lease_ambush = int(pick(1, 3));
      s.weight_lease_edge = int(pick(1, 2));
    }
    return s;
  }

  /// The largest clock rate deviation a skew may have: any, unless leases rely on the clocks,
  /// then one that keeps every pair of clocks within lease_clock_drift of each other
  /// ((1 + r) / (1 - r) <= 1 / (1 - drift)).
  [[nodiscard]] double max_small_skew() const {
    return opts.lease_reads ? opts.lease_clock_drift / 2.1 : 0.15;
  }

  [[nodiscard]] std::string describe() const {
    std::ostringstream os;
    auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
    os << profile << ": " << nodes << " nodes, pre_vote=" << opts.pre_vote << " check_quorum=" << opts.check_quorum
       << ", election " << ms(opts.election_timeout_min) << "-" << ms(opts.election_timeout_max)
       << " ms, heartbeat " << ms(opts.heartbeat_interval) << " ms, " << opts.max_entries_per_message
       << " entries/msg, window " << opts.max_inflight_messages << "; " << clients << " clients on "
       << keys << " keys, timeout " << ms(client_timeout) << " ms; faults for " << ms(fault_phase)
       << " ms, up to " << max_down << " down, delays up to " << max_delay.count()
       << " ms; weights crash " << weight_crash << " partition " << weight_partition << " pause "
       << weight_pause << " skew " << weight_skew << " transfer " << weight_transfer << " membership "
       << weight_membership << " ambush " << weight_ambush << "; reads by barrier " << int(barrier_reads * 100) << "%"
       << (opts.lease_reads ? " (lease, drift " + std::to_string(int(opts.lease_clock_drift * 100)) + "%)" : "");
    if (spares) os << "; " << spares << " spare nodes";
    os << "; weights ops " << weight_ops << " joint-crash " << weight_joint_crash << " election-crash "
       << weight_election_crash << " lease-ambush " << weight_lease_ambush << " lease-edge " << weight_lease_edge
       << " held-acks " << weight_held_acks << " read-restart " << weight_read_restart
       << "; small skews " << int(small_skew * 100) << "%";
    if (opts.max_apply_batch < 100) os << "; apply batch " << opts.max_apply_batch;
    if (opts.snapshot_entries)
      os << "; snapshot every " << opts.snapshot_entries << " entries, keep " << opts.snapshot_trailing_entries
         << ", chunks of " << opts.snapshot_chunk_bytes << " B";
    return os.str();
  }
};

/// One run. Members are declared before the cluster so they outlive it.
class run {
 public:
  run(std::uint64_t seed, const run_options& ro)
      : seed_(seed), rng_(seed), tr_(ro), max_configurations_(ro.max_configurations), profile_(ro.profile) {
    out_.seed = seed;
    out_.forced_profile = ro.profile;
  }

  outcome go() {
    s_ = setup::from(rng_, profile_);
    out_.setup = s_.describe();
    options o = s_.opts;
    if (tr_.on()) {
      o.logger.min_level = log_level::info;
      o.logger.sink = [this](log_level, std::string_view line) { tr_.add(std::string(line)); };
    }
    for (std::size_t k = 0; k < s_.keys; ++k) keys_.push_back("k" + std::to_string(k));
    o.on_event = [this](const node_event& e) { on_event(e); };
    try {
      cluster<> c(s_.nodes, seed_, o);
      c_ = &c;
      for (std::size_t k = 1; k <= s_.spares; ++k) c.add_node(node_id{s_.nodes + k});
      c.network().on_send = [this](const message& m) {
        hash_.add(m);
        ++out_.messages;
      };
      if (tr_.on())
        c.network().on_route = [this](const message& m, const char* fate, std::chrono::nanoseconds d) {
          if (!tr_.verbose() && is_heartbeat(m)) return;
          std::string line = describe(m) + "  [" + fate;
          if (d.count() > 0) line += " +" + std::to_string(d.count() / 1000) + "us";
          tr_.add(line + "]");
        };
      try {
        body(c);
      } catch (const invariant_violation& e) {
        fail(outcome::failure::safety, std::string("safety invariant broken: ") + e.what());
      } catch (const std::exception& e) {
        fail(outcome::failure::other, std::string("exception: ") + e.what());
      }
      end_time_ = ns_now();
      c_ = nullptr;
      c.network().on_send = nullptr;
      c.network().on_route = nullptr;
      tr_.stop();
    } catch (const std::exception& e) {
      fail(outcome::failure::other, std::string("exception: ") + e.what());
    }
    out_.simulated = vduration(end_time_);
    for (const auto& op : out_.history) {
      hash_.add(lin::format(op));
      (op.status == lin::op_status::ok ? out_.ops_ok : op.status == lin::op_status::fail ? out_.ops_fail
                                                                                          : out_.ops_info)++;
    }
    out_.trace_hash = hash_.h;
    out_.trace = tr_.take();
    return std::move(out_);
  }

 private:
  // ---- the run -----------------------------------------------------------------------------

  void body(cluster<>& c) {
    for (std::size_t k = 0; k < s_.clients; ++k) start_client(c, k);

    // Faults.
    const auto fault_end = c.now() + s_.fault_phase;
    auto next_action = c.now() + random_gap();
    while (c.now() < fault_end) {
      auto next = std::min(next_action, fault_end);
      if (!reverts_.empty()) next = std::min(next, reverts_.begin()->first);
      // An armed ambush strikes the next new leader (see act()), an armed joint crash the next
      // joint configuration; a fault scheduled meanwhile (reverts_) runs when due.
      auto ambush_due = [&] {
        if (!ambush_) return false;
        const auto l = c.leader();
        return l && *l != *ambush_;
      };
      auto watch_due = [&] { return watch_ && (!leading(c, *watch_) || in_window(c, *watch_)); };
      c.run_until(
          [&] {
            for (node_id id : c.ids())
              if (c.is_up(id)) last_seen_[id] = c.node(id).log().last_index();
            return watch_due() || (!watch_ && ambush_due()) || joint_now(c) ||
                   (!reverts_.empty() && reverts_.begin()->first <= c.now());
          },
          next - c.now());
      if (watch_due()) {
        if (leading(c, *watch_)) strike_in_window(c, *watch_);
        watch_.reset();
      } else if (!watch_ && ambush_due()) {
        strike(c);
      }
      if (joint_now(c)) crash_in_joint_phase(c);
      while (!reverts_.empty() && reverts_.begin()->first <= c.now()) {
        auto f = std::move(reverts_.begin()->second);
        reverts_.erase(reverts_.begin());
        f();
      }
      if (c.now() >= next_action && c.now() < fault_end) {
        act(c);
        next_action = c.now() + random_gap();
      }
    }
    heal_all(c);
    const auto healed = c.now();
    note("faults stop; every node up, every link healthy");
    if (failed_nodes(c)) return;

    // Liveness: a leader, then a committed write, within bounded virtual time.
    const vduration et = s_.opts.election_timeout_max;
    if (!c.run_until([&] { return c.leader().has_value(); }, et * setup::leader_within)) {
      if (failed_nodes(c)) return;
      fail(outcome::failure::liveness, c.describe("no leader within " + std::to_string(setup::leader_within) +
                                                  " election timeouts after the faults stopped"));
      return;
    }
    bool committed = false;
    for (int attempt = 0; !committed && c.now() - healed < et * setup::commit_within; ++attempt) {
      const auto l = c.leader();
      if (!l) {
        c.run_until([&] { return c.leader().has_value(); }, et);
        continue;
      }
      committed = final_op(c, *l, "probe", lin::op_kind::put, "live", "p" + std::to_string(attempt),
                           et * setup::commit_within - (c.now() - healed));
      if (!committed) c.run_for(std::min<vduration>(et / 4, et * setup::commit_within - (c.now() - healed)));
    }
    if (!committed) {
      if (failed_nodes(c)) return;
      fail(outcome::failure::liveness, c.describe("no write committed within " + std::to_string(setup::commit_within) +
                                                  " election timeouts after the faults stopped (last answer: " +
                                                  last_error_ + ")"));
      return;
    }

    // Every node a voter again (membership changes during the faults may have removed some).
    if (!restore_membership(c, et * setup::membership_within)) {
      fail(outcome::failure::liveness,
           c.describe("the membership was not restored within " + std::to_string(setup::membership_within) +
                      " election timeouts after the faults stopped"));
      return;
    }

    // Clients run a little longer on the healthy cluster, then stop.
    c.run_for(s_.after_heal);
    stop_clients_ = true;
    if (!c.run_until([&] { return clients_running_ == 0; }, s_.client_timeout + s_.think_max + 1s)) {
      fail(outcome::failure::other, "clients did not stop");
      return;
    }

    // One last read of every key, through the leader: what the replicas hold now must agree
    // with the history (an acknowledged append lost here shows up as a read that cannot be).
    for (const auto& key : keys_) {
      bool done = false;
      for (int attempt = 0; attempt < 5 && !done; ++attempt) {
        const auto l = c.wait_for_leader(10s);
        done = final_op(c, l, "final", lin::op_kind::get, key, "", 5s);
        if (!done) c.run_for(s_.opts.election_timeout_max / 4);
      }
      if (!done) {
        fail(outcome::failure::liveness, c.describe("no final read of " + key + " succeeded"));
        return;
      }
    }

    // The replicas converge on the same state.
    // (every node is up here: heal_all restarted the crashed ones)
    if (!node_test::settle(c, 20s)) {
      fail(outcome::failure::liveness, c.describe("the replicas did not converge within 20 s"));
      return;
    }
    const node_id l = *c.leader();
    for (node_id id : c.ids()) {
      if (c.node(id).failure()) fail(outcome::failure::other, "node " + std::to_string(id.value) + " failed");
      if (c.state_machine(id).hash() != c.state_machine(l).hash() ||
          c.state_machine(id).data() != c.state_machine(l).data())
        fail(outcome::failure::convergence, "state machines of nodes " + std::to_string(id.value) + " and " +
                                                std::to_string(l.value) + " differ");
      hash_.add(c.node(id).term().value);
      hash_.add(c.node(id).commit_index().value);
      hash_.add(c.state_machine(id).hash());
    }
    out_.last_term = c.node(l).term().value;
    check_compaction(c);

    // Linearizability of everything the clients saw.
    out_.lin = lin::check(out_.history, lin::limits{max_configurations_});
    if (out_.lin.outcome == lin::result::verdict::not_linearizable) {
      const auto& stuck = out_.history.at(out_.lin.stuck_op == std::size_t(-1) ? 0 : out_.lin.stuck_op);
      out_.failed_at = stuck.end.value_or(stuck.start);
      fail(outcome::failure::linearizability, "history not linearizable: " + out_.lin.explanation);
    } else if (out_.lin.outcome == lin::result::verdict::unknown) {
      fail(outcome::failure::other, "linearizability checker gave up: " + out_.lin.explanation);
    }
  }

  /// Fails the run if a node stopped on an error; says whether one did.
  bool failed_nodes(cluster<>& c) {
    bool any = false;
    for (node_id id : c.ids())
      if (c.is_up(id) && c.node(id).failure()) {
        std::string why = "unknown error";
        try {
          std::rethrow_exception(c.node(id).failure());
        } catch (const std::exception& e) {
          why = e.what();
        } catch (...) {
        }
        fail(outcome::failure::node_failed, c.describe("node " + std::to_string(id.value) + " failed: " + why));
        any = true;
      }
    return any;
  }

  /// With automatic snapshots, every node keeps taking them: once converged, none has applied
  /// snapshot_entries or more entries since its last snapshot. (A snapshot being taken when the
  /// last entries were applied may leave one such node: one more write must fix that.)
  void check_compaction(cluster<>& c) {
    const std::uint64_t every = s_.opts.snapshot_entries;
    if (every == 0) return;
    auto lagging = [&] {
      std::vector<node_id> out;
      for (node_id id : c.ids()) {
        const auto st = c.node(id).status();
        if (st.applied_index - st.snapshot_index >= every) out.push_back(id);
      }
      return out;
    };
    if (lagging().empty()) return;
    for (int attempt = 0; attempt < 3 && !lagging().empty(); ++attempt) {
      final_op(c, c.wait_for_leader(10s), "compaction", lin::op_kind::put, keys_.front(), "c" + std::to_string(attempt), 5s);
      node_test::settle(c, 20s);
    }
    for (node_id id : lagging()) {
      const auto st = c.node(id).status();
      fail(outcome::failure::compaction,
           c.describe("node " + std::to_string(id.value) + " stopped taking snapshots: applied " +
                      std::to_string(st.applied_index.value) + ", last snapshot at " +
                      std::to_string(st.snapshot_index.value) + ", one due every " + std::to_string(every)));
    }
  }

  /// Makes every node of the cluster a voter again, and nothing else a member (changes during
  /// the faults may have removed, demoted or added some), in one change_membership.
  bool restore_membership(cluster<>& c, vduration limit) {
    const auto end = c.now() + limit;
    const vduration et = s_.opts.election_timeout_max;
    const configuration target{c.ids(), {}, {}};
    while (c.now() < end) {
      const auto l = c.leader();
      if (!l) {
        c.run_until([&] { return c.leader().has_value(); }, et);
        continue;
      }
      const auto cfg = c.node(*l).status().config;
      if (sorted(cfg) == target) return true;
      if (cfg.joint()) {
        c.run_for(et / 4);  // a change is under way
        continue;
      }
      auto done = std::make_shared<std::optional<result<index_t>>>();
      note("change membership to voters " + ids_text(target.voters) + " (restoring the membership)");
      c.node(*l).async_change_membership(target, [done](result<index_t> r) { *done = std::move(r); });
      c.run_until([&] { return done->has_value(); }, std::min<vduration>(6 * et, end - c.now()));
      if (!done->has_value()) continue;
      note(std::string("restoring the membership: ") + (done->value().has_value() ? "done" : done->value().error().message()));
      if (!done->value().has_value()) c.run_for(et / 4);
    }
    return false;
  }

  /// A driver-side operation through `via`, waited for up to `limit`; recorded in the history.
  bool final_op(cluster<>& c, node_id via, const std::string& client, lin::op_kind kind, const std::string& key,
                const std::string& value, vduration limit) {
    lin::kv_op op{client, op_time(), std::nullopt, kind, key, std::nullopt, lin::op_status::info, 0};
    if (kind != lin::op_kind::get) op.value = value;
    const buffer cmd = kind == lin::op_kind::put ? kv::put(key, value)
                       : kind == lin::op_kind::append ? kv::append(key, value)
                                                      : kv::get(key);
    tr_.add(client + " invokes " + lin::to_string(kind) + " " + key + " " + value + " via node " +
            std::to_string(via.value));
    auto p = c.propose(via, cmd);
    c.run_until([&] { return p->done(); }, limit);
    if (p->done()) record_result(op, *p->outcome);
    last_error_ = !p->done() ? "no answer" : p->outcome->has_value() ? "" : p->outcome->error().message();
    op.end = op_time();
    out_.history.push_back(op);
    tr_.add(said(op));
    return op.status == lin::op_status::ok;
  }

  void record_result(lin::kv_op& op, const result<std::string>& r) {
    if (r.has_value()) {
      op.status = lin::op_status::ok;
      if (op.kind == lin::op_kind::get) op.value = r.value().empty() ? std::nullopt : std::optional(r.value());
      return;
    }
    op.status = refused(r.error().code) ? lin::op_status::fail : lin::op_status::info;
  }

  /// Errors that say the operation was refused before anything was appended.
  static bool refused(errc e) {
    switch (e) {
      case errc::not_leader:
      case errc::busy:
      case errc::transferring:
      case errc::change_in_progress:
      case errc::invalid_argument:
        return true;
      default:  // leadership_lost, stopped, timeout, and whatever comes: may have taken effect
        return false;
    }
  }

  // ---- clients -------------------------------------------------------------------------------

  struct pending {
    explicit pending(const asio::any_io_executor& ex) : wake(ex) {}
    virtual_timer wake;
    std::optional<result<std::string>> r;
  };

  void start_client(cluster<>& c, std::size_t k) { start_task(c, client(c, k, rng_()), "client"); }

  asio::awaitable<void> client(cluster<>& c, std::size_t k, std::uint64_t client_seed) {
    const auto ex = co_await asio::this_coro::executor;
    // The generator's 5 KB of state live on the heap, not in the coroutine frame: a frame that
    // large goes through Asio's aligned_alloc, which GCC 12 pairs with the frame's
    // class-specific operator delete and warns about (-Wmismatched-new-delete, a false positive).
    const auto rng_state = std::make_unique<std::mt19937_64>(client_seed);
    std::mt19937_64& rng = *rng_state;
    const std::string name = "c" + std::to_string(k + 1);
    virtual_timer think(ex);
    std::error_code ec;
    node_id hint = no_node;
    bool backoff = false;
    std::uint64_t seq = 0;
    while (!stop_clients_) {
      // Think; after a refusal that named no leader, wait a while longer (no leader yet).
      auto pause = vduration(std::int64_t(rng() % std::uint64_t(s_.think_max.count() + 1)));
      if (backoff) pause += vduration(std::int64_t(rng() % std::uint64_t(s_.opts.election_timeout_min.count() / 2 + 1)));
      think.expires_after(pause);
      co_await think.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (stop_clients_) break;
      backoff = true;

      // Whom to ask: the node named by the last refusal, else any node that answers.
      std::vector<node_id> reachable;
      for (node_id id : c.ids())
        if (c.is_up(id) && !c.network().is_paused(id)) reachable.push_back(id);
      if (reachable.empty()) continue;
      node_id via = reachable[rng() % reachable.size()];
      if (hint != no_node && std::find(reachable.begin(), reachable.end(), hint) != reachable.end() &&
          rng() % 8 != 0)
        via = hint;

      // What to do: values are unique, so a read says which writes it saw.
      const std::uint64_t dice = rng() % 10;
      const auto kind = dice < 3 ? lin::op_kind::get : dice < 7 ? lin::op_kind::append : lin::op_kind::put;
      const std::string& key = keys_[rng() % keys_.size()];
      const std::string value = (kind == lin::op_kind::put ? "p" : "a") + std::to_string(k + 1) + "." +
                                std::to_string(++seq) + (kind == lin::op_kind::append ? "," : "");
      lin::kv_op op{name, op_time(), std::nullopt, kind, key, std::nullopt, lin::op_status::info, 0};
      if (kind != lin::op_kind::get) op.value = value;
      const buffer cmd = kind == lin::op_kind::put      ? kv::put(key, value)
                         : kind == lin::op_kind::append ? kv::append(key, value)
                                                        : submit_get(key);
      tr_.add(name + " invokes " + lin::to_string(kind) + " " + key + " " + (kind == lin::op_kind::get ? "" : value) +
              " via node " + std::to_string(via.value));

      auto p = std::make_shared<pending>(ex);
      p->wake.expires_after(s_.client_timeout);
      const auto leader = c.leader();
      if (kind == lin::op_kind::get && uniform(rng) < s_.barrier_reads) {
        // A linearizable read without the log: a read barrier on whichever node the client
        // asked (the leader confirms it still leads, or lends a read index to a follower),
        // then the local state machine, at once.
        cover(leader && *leader == via ? "read_barrier on the leader" : "read_barrier on a follower");
        read_through(c, via, key, p);
      } else {
        cover(kind == lin::op_kind::put ? "propose put" : kind == lin::op_kind::append ? "propose append" : "propose get");
        propose_through(c, via, cmd, op, p);
      }
      if (!p->r) co_await p->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      op.end = op_time();
      if (p->r) {
        record_result(op, *p->r);
        hint = !p->r->has_value() && p->r->error().code == errc::not_leader ? p->r->error().leader_hint : no_node;
        backoff = !p->r->has_value() && hint == no_node;
      } else {
        hint = no_node;  // timed out: outcome unknown
      }
      p->r.emplace(raft::error{errc::stopped});  // a late answer is ignored
      out_.history.push_back(op);
      tr_.add(said(op));
    }
  }

  /// Proposes `cmd` (operation `op`) through node `via`; the answer goes to `p` (unless it
  /// already has one) and wakes its waiter. Every answer, a late one too, goes to the oracle.
  void propose_through(cluster<>& c, node_id via, const buffer& cmd, const lin::kv_op& op,
                       const std::shared_ptr<pending>& p) {
    c.node(via).async_propose(cmd.bytes(), [this, p, &c, via, op](result<std::string> r) {
      check_report(c, via, op, r);
      if (p->r) return;
      p->r = std::move(r);
      p->wake.cancel();
    });
  }

  /// A linearizable read of `key` on node `via`: a read barrier there, then its state machine at
  /// once; the answer goes to `p` (unless it already has one) and wakes its waiter.
  void read_through(cluster<>& c, node_id via, const std::string& key, const std::shared_ptr<pending>& p) {
    const auto lease_reads = c.node(via).metrics().lease_reads;
    c.node(via).async_read_barrier([this, p, &c, via, key, lease_reads](result<index_t> r) {
      if (p->r) return;
      if (r.has_value()) {
        p->r.emplace(c.state_machine(via).find(key).value_or(""));
        if (c.is_up(via) && c.node(via).metrics().lease_reads > lease_reads) cover("read served by a lease");
      } else {
        p->r.emplace(r.error());
      }
      p->wake.cancel();
    });
  }

  /// "c3 append k1 a3.7, -> ok (invoked 1.234567s)", for traces.
  static std::string said(const lin::kv_op& op) {
    std::string s = op.client + " " + lin::to_string(op.kind) + " " + op.key;
    if (op.kind != lin::op_kind::get) s += " " + op.value.value_or("");
    s += std::string(" -> ") + lin::to_string(op.status);
    if (op.kind == lin::op_kind::get && op.status == lin::op_status::ok) s += " " + op.value.value_or("~");
    return s + " (invoked " + stamp(op.start) + ")";
  }

  /// A get through the log (the other half of the reads use read_barrier).
  static buffer submit_get(const std::string& key) { return kv::get(key); }

  static double uniform(std::mt19937_64& rng) { return double(rng() >> 11) / double(1ull << 53); }

  // ---- operations the nemesis drives -----------------------------------------------------------

  /// A node to send an operation through: the leader most of the time, else any node that is
  /// up and not paused.
  std::optional<node_id> via_node(cluster<>& c) {
    std::vector<node_id> up;
    for (node_id id : c.ids())
      if (c.is_up(id) && !c.network().is_paused(id)) up.push_back(id);
    if (up.empty()) return std::nullopt;
    const auto l = c.leader();
    if (l && !c.network().is_paused(*l) && pick(0, 7) != 0) return *l;
    return up[pick(0, up.size() - 1)];
  }

  /// A random target configuration over the cluster's nodes: each a voter, a learner or not a
  /// member; now and then an invalid one. `change_voters`: the voters differ from the leader's.
  configuration random_target(cluster<>& c, bool change_voters = false) {
    const auto ids = c.ids();
    configuration t;
    for (node_id id : ids) {
      const std::size_t r = pick(0, 9);
      (r < 6 ? t.voters : r < 9 ? t.learners : t.outgoing).push_back(id);  // outgoing: left out
    }
    t.outgoing.clear();
    if (t.voters.empty()) {
      const node_id v = ids[pick(0, ids.size() - 1)];
      std::erase(t.learners, v);
      t.voters.push_back(v);
    }
    if (change_voters) {
      if (const auto l = c.leader(); l && t.voters == sorted(c.node(*l).status().config).voters) {
        const node_id v = ids[pick(0, ids.size() - 1)];
        if (std::find(t.voters.begin(), t.voters.end(), v) != t.voters.end() && t.voters.size() > 1)
          std::erase(t.voters, v);
        else if (std::find(t.voters.begin(), t.voters.end(), v) == t.voters.end())
          std::erase(t.learners, v), t.voters.push_back(v);
      }
    } else if (pick(0, 9) == 0) {  // invalid: a node both voter and learner, or no voter at all
      if (pick(0, 1)) t.learners.push_back(t.voters.front());
      else t.learners.insert(t.learners.end(), t.voters.begin(), t.voters.end()), t.voters.clear();
    }
    return t;
  }

  /// The shapes of a change from `from` to `to`, for the coverage table.
  static std::vector<std::string> shapes(const configuration& from, const configuration& to) {
    if (validate(to) != nullptr) return {"invalid target"};
    if (sorted(from) == sorted(to)) return {"unchanged"};
    if (sorted(from).voters == sorted(to).voters) return {"learners only"};
    auto in = [](const std::vector<node_id>& set, node_id id) {
      return std::find(set.begin(), set.end(), id) != set.end();
    };
    std::vector<std::string> out;
    std::size_t kept = 0;
    bool added = false, removed = false, demoted = false, promoted = false;
    for (node_id v : from.voters) {
      if (in(to.voters, v)) ++kept;
      else if (in(to.learners, v)) demoted = true;
      else removed = true;
    }
    for (node_id v : to.voters)
      if (!in(from.voters, v)) (in(from.learners, v) ? promoted : added) = true;
    if (demoted) out.push_back("demote a voter");
    if (promoted) out.push_back("promote a learner");
    if (demoted && promoted) out.push_back("swap a voter and a learner");
    if (kept <= from.voters.size() / 2) out.push_back("replace a majority");
    if ((added || promoted) && (removed || demoted)) out.push_back("add and remove voters at once");
    if (!to.learners.empty() && to.learners.size() >= to.voters.size()) out.push_back("as many learners as voters");
    if (out.empty()) out.push_back(added || promoted ? "add voters" : "remove voters");
    return out;
  }

  void change_membership(cluster<>& c, node_id via, configuration target) {
    const auto cfg = c.node(via).status().config;
    std::string what;
    for (const auto& shape : shapes(cfg, target)) {
      cover("change_membership: " + shape);
      what += (what.empty() ? "" : ", ") + shape;
    }
    if (c.node(via).role() != role::leader) cover("membership change through a follower");
    note("change membership to voters " + ids_text(target.voters) + " learners " + ids_text(target.learners) +
         " via node " + std::to_string(via.value) + " (" + what + ")");
    c.node(via).async_change_membership(target, [this, what](result<index_t> r) {
      if (r.has_value()) cover("change_membership done");
      note("membership change (" + what + "): " + (r.has_value() ? "done" : r.error().message()));
    });
  }

  void transfer(cluster<>& c, node_id via, node_id to, const std::string& kind) {
    cover("transfer_leadership to " + kind);
    if (c.node(via).role() != role::leader) cover("transfer_leadership through a follower");
    note("transfer leadership from " + std::to_string(via.value) + " to " + std::to_string(to.value) + " (" + kind + ")");
    ++transfers_pending_;
    c.node(via).async_transfer_leadership(to, [this, from = via, to](result<node_id> r) {
      --transfers_pending_;
      if (r.has_value()) cover("transfer_leadership done");
      note("transfer " + std::to_string(from.value) + "->" + std::to_string(to.value) + ": " +
           (r.has_value() ? "done, leader " + std::to_string(r.value().value) : r.error().message()));
    });
  }

  /// add_learner, promote or remove of any node (the leader, a voter, a learner, one that is
  /// not a member, one that does not exist).
  void member_operation(cluster<>& c, node_id via) {
    const auto ids = c.ids();
    const auto cfg = c.node(via).status().config;
    const node_id id = pick(0, 7) == 0 ? node_id{99} : ids[pick(0, ids.size() - 1)];
    const std::string who = id == node_id{99}            ? "a node that does not exist"
                            : id == via                  ? "the node asked"
                            : cfg.is_voter(id)           ? "a voter"
                            : cfg.is_member(id)          ? "a learner"
                                                         : "a node that is not a member";
    std::size_t op = pick(0, 2);
    if (op == 1 && id == node_id{99}) op = 2;  // a voter that does not exist could block every quorum
    const std::string name = op == 0 ? "add_learner" : op == 1 ? "promote" : "remove";
    cover(name + " of " + who);
    note(name + " node " + std::to_string(id.value) + " (" + who + ") via node " + std::to_string(via.value));
    auto done = [this, name, id](result<index_t> r) {
      note(name + " of " + std::to_string(id.value) + ": " + (r.has_value() ? "done" : r.error().message()));
    };
    if (op == 0) c.node(via).async_add_learner(id, done);
    else if (op == 1) c.node(via).async_promote(id, done);
    else c.node(via).async_remove(id, done);
  }

  void random_operation(cluster<>& c) {
    const auto via = via_node(c);
    if (!via) return;
    switch (s_.opts.pre_vote ? pick(0, 3) : pick(2, 3)) {  // see setup::from on PreVote
      case 0:
      case 1:
        change_membership(c, *via, random_target(c));
        break;
      case 2: {
        const auto cfg = c.node(*via).status().config;
        const std::size_t kind = pick(0, 3);
        const auto ids = c.ids();
        if (kind == 0 && !cfg.voters.empty()) {
          transfer(c, *via, cfg.voters[pick(0, cfg.voters.size() - 1)], "a voter");
        } else if (kind == 1 && !cfg.learners.empty()) {
          transfer(c, *via, cfg.learners[pick(0, cfg.learners.size() - 1)], "a learner");
        } else if (kind == 2) {
          transfer(c, *via, pick(0, 1) ? node_id{99} : ids[pick(0, ids.size() - 1)], "any node");
        } else {
          transfer(c, *via, *via, "itself");
        }
        break;
      }
      default:
        member_operation(c, *via);
        break;
    }
  }

  /// Runs `task` (a client, or a nemesis task) on the cluster's executor, counted with the
  /// clients: the run waits for it.
  void start_task(cluster<>& c, asio::awaitable<void> task, const char* what = "nemesis task") {
    ++clients_running_;
    asio::co_spawn(c.context(), std::move(task), [this, what](std::exception_ptr e) {
      --clients_running_;
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          fail(outcome::failure::other, std::string(what) + " failed: " + x.what());
        }
      }
    });
  }

  /// Sleeps `d` of virtual time.
  static asio::awaitable<void> sleep(vduration d) {
    virtual_timer t(co_await asio::this_coro::executor);
    t.expires_after(d);
    std::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }

  /// One operation of a nemesis client through `via`, recorded in the history like a client's:
  /// a put (`value` set) or a read barrier and a local read of `key`.
  asio::awaitable<lin::op_status> nemesis_op(cluster<>& c, const std::string& client, node_id via,
                                             const std::string& key, std::optional<std::string> value) {
    const auto ex = co_await asio::this_coro::executor;
    lin::kv_op op{client, op_time(), std::nullopt, value ? lin::op_kind::put : lin::op_kind::get, key, value,
                  lin::op_status::info, 0};
    if (!c.is_up(via)) co_return lin::op_status::fail;
    auto p = std::make_shared<pending>(ex);
    p->wake.expires_after(s_.client_timeout);
    tr_.add(client + " invokes " + lin::to_string(op.kind) + " " + key + " " + value.value_or("") + " via node " +
            std::to_string(via.value));
    if (value) {
      propose_through(c, via, kv::put(key, *value), op, p);
    } else {
      read_through(c, via, key, p);
    }
    std::error_code ec;
    if (!p->r) co_await p->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    op.end = op_time();
    if (p->r) record_result(op, *p->r);
    p->r.emplace(raft::error{errc::stopped});
    out_.history.push_back(op);
    tr_.add(said(op));
    co_return op.status;
  }

  /// The lease-transfer ambush: the leader hears nobody, hands leadership to a voter (its
  /// TimeoutNow still goes out), the new leader commits a write, and the old leader, which still
  /// believes it leads within its lease, is asked to read the key.
  void lease_ambush(cluster<>& c) {
    const auto leader = c.leader();
    if (!s_.opts.lease_reads || !leader || c.network().is_paused(*leader)) return;
    const node_id old = *leader;
    const auto cfg = c.node(old).status().config;
    std::vector<node_id> targets;
    for (node_id v : cfg.voters)
      if (v != old && c.is_up(v) && !c.network().is_paused(v)) targets.push_back(v);
    if (targets.empty() || cfg.joint()) return;
    const node_id to = targets[pick(0, targets.size() - 1)];
    for (node_id id : c.ids())
      if (id != old) c.network().cut(id, old);
    cover("lease ambush: transfer while the leader is deaf");
    note("lease ambush: leader " + std::to_string(old.value) + " deaf; it transfers to " + std::to_string(to.value));
    transfer(c, old, to, "a voter");
    start_task(c, lease_ambush_reads(c, old, to, keys_[pick(0, keys_.size() - 1)], ++nemesis_clients_));
    reverts_.emplace(c.now() + s_.opts.election_timeout_max * 3, [this, &c] {
      c.network().heal();
      note("heal all links (after the lease ambush)");
    });
  }

  asio::awaitable<void> lease_ambush_reads(cluster<>& c, node_id old, node_id to, std::string key, std::uint64_t k) {
    const std::string client = "n" + std::to_string(k);
    for (int i = 0; i < 100 && !(c.is_up(to) && c.node(to).role() == role::leader); ++i) co_await sleep(1ms);
    if (!c.is_up(to) || c.node(to).role() != role::leader) co_return;
    if (co_await nemesis_op(c, client, to, key, "pn" + std::to_string(k)) != lin::op_status::ok) co_return;
    if (!c.is_up(old) || c.node(old).role() != role::leader) co_return;
    cover("lease ambush: read on the deposed leader");
    co_await nemesis_op(c, client, old, key, std::nullopt);
  }

  /// Reads on a cut-off leader, every 1/16 of the minimum election timeout, until its lease
  /// (and with it the reads) end; each read is in the history.
  asio::awaitable<void> lease_edge_reads(cluster<>& c, node_id l) {
    const std::string client = "n" + std::to_string(++nemesis_clients_);
    const auto gap = std::chrono::duration_cast<vduration>(s_.opts.election_timeout_min / 16);
    for (int i = 0; i < 24; ++i) {
      if (!c.is_up(l) || c.node(l).role() != role::leader || stop_clients_) co_return;
      const std::string& key = keys_[pick(0, keys_.size() - 1)];
      const auto status = co_await nemesis_op(c, client, l, key, std::nullopt);
      cover(status == lin::op_status::ok ? "lease edge: read served" : "lease edge: read refused");
      co_await sleep(gap);
    }
  }

  /// Snapshot installation while proposals are pending: leader `l` keeps taking proposals, but
  /// everything sent to it is held; once its entries reached the others, it is cut off (mute)
  /// and they elect a new leader, which commits on and compacts past `l`'s log. Then every link
  /// is healed with no delay and the held messages go out together: `l` hears the acks that
  /// commit its backlog and the newer leader at once, steps down with its proposals committed
  /// but not yet applied (one entry applied per event), and the newer leader's snapshot arrives
  /// while it still works through them.
  asio::awaitable<void> held_acks_ambush(cluster<>& c, node_id l) {
    auto& net = c.network();
    net.hold_if = [l](const message& m) { return m.to == l; };
    note("held acks: everything to leader " + std::to_string(l.value) + " is held");
    co_await sleep(std::chrono::milliseconds(pick(20, 200)));
    if (faults_over_) co_return;  // heal_all released everything
    for (node_id o : c.ids())
      if (o != l) net.cut(l, o);
    note("held acks: leader " + std::to_string(l.value) + " mute");
    bool ready = false;
    for (int i = 0; i < 300 && !ready && !faults_over_ && c.is_up(l); ++i) {
      co_await sleep(10ms);
      const auto n = c.leader();
      ready = n && *n != l && c.is_up(l) && c.node(*n).term() > c.node(l).term() &&
              c.node(*n).log().base_index() > c.node(l).log().last_index();
    }
    held_acks_ = false;
    if (faults_over_) co_return;  // the faults stopped meanwhile (heal_all released them)
    const auto saved = net.faults;
    if (ready) {
      net.faults.min_delay = net.faults.max_delay = std::chrono::nanoseconds(0);
      net.faults.drop = net.faults.duplicate = 0;
      cover("held acks: released with a newer leader's messages");
    }
    net.heal();
    net.release_held();
    note(std::string("held acks: heal all links and release the held messages") + (ready ? " at once" : ""));
    co_await sleep(5ms);
    if (!faults_over_) net.faults = saved;
  }

  /// The time of an operation's invocation or answer, for the history: virtual time, made
  /// strictly increasing. With links of no delay, a write can be answered and another client's
  /// read invoked at the same virtual instant in either order; equal times would tell the checker
  /// that the write came first, whatever the real order was.
  std::int64_t op_time() {
    last_op_time_ = std::max(last_op_time_ + 1, ns_now());
    return last_op_time_;
  }

  // ---- coverage ------------------------------------------------------------------------------

  /// The contexts that hold now (coverage columns; "total" always).
  std::vector<const char*> contexts(cluster<>& c) const {
    std::vector<const char*> out{"total"};
    const auto ids = c.ids();
    bool cut = c.network().faults.drop > 0 || c.network().faults.duplicate > 0;
    for (node_id a : ids)
      for (node_id b : ids)
        if (a != b && c.network().is_cut(a, b)) cut = true;
    if (cut) out.push_back("links faulty");
    if (!unavailable(c).empty()) out.push_back("node down");
    for (node_id id : ids)
      if (timeline::current().rate(id.value) != 1.0) {
        out.push_back("clock skewed");
        break;
      }
    if (s_.opts.lease_reads) out.push_back("lease reads");
    if (s_.opts.snapshot_entries != 0) out.push_back("snapshots");
    if (const auto l = c.leader()) {
      const auto cfg = c.node(*l).status().config;
      if (cfg.joint()) out.push_back("joint config");
      if (!cfg.learners.empty() && cfg.learners.size() >= cfg.voters.size()) out.push_back("learners >= voters");
    }
    if (transfers_pending_ > 0) out.push_back("transferring");
    return out;
  }

  /// Counts `row` once in every context that holds now.
  void cover(const std::string& row) {
    if (c_ == nullptr) return;
    auto& cells = out_.coverage[row];
    for (const char* col : contexts(*c_)) ++cells[col];
  }

  /// Node events: snapshots taken and installed, elections started (the election-crash fault).
  void on_event(const node_event& e) {
    if (c_ == nullptr) return;
    switch (e.kind) {
      case event_kind::snapshot_created:
        cover("snapshot taken");
        break;
      case event_kind::snapshot_installed:
        cover("snapshot installed");
        if (auto it = last_seen_.find(e.node); it != last_seen_.end() && it->second > e.index)
          cover("snapshot installed over a longer log");
        break;
      case event_kind::role_changed:
        if (e.role == role::candidate && election_crash_) {
          election_crash_ = false;
          const node_id v = pick(0, 1) ? e.node : c_->ids()[pick(0, c_->ids().size() - 1)];
          const auto d = std::chrono::microseconds(pick(0, std::size_t(s_.max_delay.count()) * 1000));
          reverts_.emplace(c_->now() + d, [this, v, candidate = e.node] {
            if (!c_->is_up(v) || unavailable(*c_).size() >= s_.max_down) return;
            resume(*c_, v, false);
            cover("crash within a message delay of an election");
            c_->crash(v);
            note("crash node " + std::to_string(v.value) + " as node " + std::to_string(candidate.value) +
                 " campaigns");
          });
        }
        break;
      default:
        break;
    }
  }

  /// The oracle for a proposal's error: `leadership_lost` says the node did not know the entry
  /// committed. Called as the node completes the proposal: if the command (unique: values are)
  /// is in the committed log within the node's commit index at that moment, the node knew.
  void check_report(cluster<>& c, node_id via, const lin::kv_op& op, const result<std::string>& r) {
    if (r.has_value() || op.kind == lin::op_kind::get || !c.is_up(via)) return;
    if (r.error().code == errc::committed_result_unknown) cover("proposal committed, result unknown");
    if (r.error().code != errc::leadership_lost) return;
    const buffer cmd = op.kind == lin::op_kind::put ? kv::put(op.key, *op.value) : kv::append(op.key, *op.value);
    const index_t known = std::min(c.node(via).commit_index(), c.committed());
    for (index_t i = known; i > index_t{0}; i = i.prev()) {
      const log_entry* e = c.committed_entry(i);
      if (e->kind != entry_kind::command || !(e->data == cmd)) continue;
      fail(outcome::failure::misreported,
           c.describe("node " + std::to_string(via.value) + " reported " + op.client + "'s " + lin::to_string(op.kind) +
                      " " + op.key + " " + *op.value + " as leadership_lost, but it committed at index " +
                      std::to_string(i.value) + ", within the node's commit index " + std::to_string(known.value)));
      return;
    }
  }

  // ---- the nemesis ---------------------------------------------------------------------------

  vduration random_gap() {
    return vduration(std::int64_t(10'000'000 + rng_() % std::uint64_t(s_.action_gap_max.count())));
  }

  std::size_t pick(std::size_t lo, std::size_t hi) { return lo + std::size_t(rng_() % (hi - lo + 1)); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * double(rng_() >> 11) / double(1ull << 53); }

  void note(const std::string& what) {
    std::string line = stamp(ns_now()) + "  " + what;
    out_.schedule.push_back(line);
    tr_.add("NEMESIS " + what);
    hash_.add(what);
  }

  std::vector<node_id> unavailable(cluster<>& c) const {
    std::vector<node_id> out;
    for (node_id id : c.ids())
      if (!c.is_up(id) || c.network().is_paused(id)) out.push_back(id);
    return out;
  }

  void act(cluster<>& c) {
    const auto ids = c.ids();
    const auto leader = c.leader();
    auto& net = c.network();
    auto any = [&] { return ids[pick(0, ids.size() - 1)]; };
    auto leader_or_any = [&] { return leader && pick(0, 1) ? *leader : any(); };
    const int w[] = {3, s_.weight_partition, s_.weight_partition, s_.weight_partition, 2,
                     s_.weight_crash, s_.weight_crash + 1, s_.weight_pause, 2, s_.weight_skew, 1,
                     s_.weight_transfer, s_.weight_membership, s_.weight_membership, s_.weight_ambush,
                     s_.weight_ops, s_.weight_lease_ambush, s_.weight_lease_edge, s_.weight_joint_crash,
                     s_.weight_election_crash, s_.weight_held_acks, s_.weight_read_restart};
    int total = 0;
    for (int x : w) total += x;
    int roll = int(rng_() % std::uint64_t(total));
    int action = 0;
    while (roll >= w[action]) roll -= w[action++];
    switch (action) {
      case 0:
        net.heal();
        note("heal all links");
        break;
      case 1: {  // symmetric partition into two or three groups
        net.heal();
        const std::size_t groups = ids.size() == 5 && pick(0, 2) == 0 ? 3 : 2;
        std::vector<std::vector<node_id>> g(groups);
        auto shuffled = ids;
        for (std::size_t k = shuffled.size(); k > 1; --k) std::swap(shuffled[k - 1], shuffled[pick(0, k - 1)]);
        for (std::size_t k = 0; k < shuffled.size(); ++k)  // every group gets one, then at random
          g[k < groups ? k : pick(0, groups - 1)].push_back(shuffled[k]);
        net.partition(g, ids);
        cover("partition");
        std::string text = "partition";
        for (auto& x : g) text += " " + ids_text(x);
        note(text);
        break;
      }
      case 2: {  // the leader (or someone) with a minority, against the rest
        net.heal();
        const node_id a = leader_or_any();
        std::vector<node_id> small{a}, big;
        for (node_id id : ids)
          if (id != a) (small.size() < (ids.size() - 1) / 2 && pick(0, 1) ? small : big).push_back(id);
        net.partition({small, big}, ids);
        cover("partition");
        note("partition " + ids_text(small) + " " + ids_text(big) + (leader && a == *leader ? " (leader in the minority)" : ""));
        break;
      }
      case 3: {  // asymmetric: some one-way links cut
        const std::size_t k = pick(1, ids.size());
        std::string text = "cut one way:";
        cover("one-way cuts");
        for (std::size_t i = 0; i < k; ++i) {
          const node_id a = any(), b = any();
          if (a == b) continue;
          net.cut(a, b);
          text += " " + std::to_string(a.value) + "->" + std::to_string(b.value);
        }
        note(text);
        break;
      }
      case 4: {  // the leader isolated: both ways, or deaf, or mute
        if (!leader) break;
        const std::size_t how = pick(0, 2);
        for (node_id o : ids) {
          if (o == *leader) continue;
          if (how != 1) net.cut(*leader, o);
          if (how != 2) net.cut(o, *leader);
        }
        cover("leader isolated, deaf or mute");
        note("leader " + std::to_string(leader->value) + (how == 0 ? " isolated" : how == 1 ? " deaf (hears nobody)" : " mute (reaches nobody)"));
        break;
      }
      case 5: {  // crash
        if (unavailable(c).size() >= s_.max_down) break;
        const node_id v = leader_or_any();
        if (!c.is_up(v)) break;
        resume(c, v, false);
        cover(leader && v == *leader ? "crash the leader" : "crash a follower");
        c.crash(v);
        note("crash node " + std::to_string(v.value) + (leader && v == *leader ? " (the leader)" : ""));
        break;
      }
      case 6: {  // restart
        std::vector<node_id> down;
        for (node_id id : ids)
          if (!c.is_up(id)) down.push_back(id);
        if (down.empty()) break;
        const node_id v = down[pick(0, down.size() - 1)];
        c.restart(v);
        note("restart node " + std::to_string(v.value));
        break;
      }
      case 7: {  // pause, resumed later
        if (unavailable(c).size() >= s_.max_down) break;
        const node_id v = leader_or_any();
        if (!c.is_up(v) || net.is_paused(v)) break;
        net.pause(v);
        timeline::current().pause(v.value);
        cover("pause a node");
        const auto d = std::chrono::milliseconds(pick(50, 3000));
        note("pause node " + std::to_string(v.value) + (leader && v == *leader ? " (the leader)" : "") + " for " +
             std::to_string(d.count()) + " ms");
        reverts_.emplace(c.now() + d, [this, &c, v] { resume(c, v, true); });
        break;
      }
      case 8: {  // link quality
        auto& f = net.faults;
        f.drop = pick(0, 2) == 0 ? 0.0 : uniform(0.0, s_.max_drop);
        f.duplicate = pick(0, 2) == 0 ? 0.0 : uniform(0.0, s_.max_duplicate);
        f.min_delay = std::chrono::microseconds(pick(100, 1000));
        f.max_delay = f.min_delay + std::chrono::microseconds(pick(0, std::size_t(s_.max_delay.count()) * 1000));
        std::ostringstream os;
        os << "links: drop " << std::setprecision(2) << f.drop << ", duplicate " << f.duplicate << ", delay "
           << f.min_delay.count() / 1000 << "-" << f.max_delay.count() / 1000 << " us";
        note(os.str());
        break;
      }
      case 9: {  // clock skew burst
        const node_id v = leader_or_any();
        // Small drifts (where a lease's margin decides) or large bursts (a stalled or racing clock).
        const bool small = uniform(0.0, 1.0) < s_.small_skew;
        const double r = uniform(0.01, s_.max_small_skew());
        const double rate = small ? (pick(0, 1) ? 1.0 + r : 1.0 - r) : pick(0, 1) ? uniform(1.5, 4.0) : uniform(0.25, 0.75);
        cover(small ? "clock drift of 1-15 %" : "clock skew burst");
        const auto d = std::chrono::milliseconds(pick(200, 3000));
        timeline::current().set_rate(v.value, rate);
        std::ostringstream os;
        os << "clock of node " << v.value << " runs at " << std::setprecision(2) << rate << "x time for "
           << d.count() << " ms";
        note(os.str());
        reverts_.emplace(c.now() + d, [this, v] {
          timeline::current().set_rate(v.value, 1.0);
          note("clock of node " + std::to_string(v.value) + " back to normal");
        });
        break;
      }
      case 11: {  // leadership transfer to a random voter
        if (!leader || net.is_paused(*leader)) break;
        const auto cfg = c.node(*leader).status().config;
        if (cfg.voters.size() < 2) break;
        node_id to = cfg.voters[pick(0, cfg.voters.size() - 1)];
        if (to == *leader) break;
        transfer(c, *leader, to, "a voter");
        break;
      }
      case 12: {  // membership: remove a voter (the leader too), keeping at least three
        if (!leader || net.is_paused(*leader)) break;
        const auto cfg = c.node(*leader).status().config;
        if (cfg.joint() || cfg.voters.size() <= 3) break;
        const node_id v = pick(0, 3) == 0 ? *leader : cfg.voters[pick(0, cfg.voters.size() - 1)];
        note("remove node " + std::to_string(v.value) + " from the configuration (via leader " +
             std::to_string(leader->value) + ")");
        c.node(*leader).async_remove(v, [this, v](result<index_t> r) {
          note("removal of " + std::to_string(v.value) + ": " + (r.has_value() ? "done" : r.error().message()));
        });
        break;
      }
      case 13: {  // membership: add a missing node back, as a learner, then promote it
        if (!leader || net.is_paused(*leader)) break;
        const auto cfg = c.node(*leader).status().config;
        if (cfg.joint()) break;
        for (node_id id : ids) {
          if (cfg.is_voter(id)) continue;
          const bool learner = cfg.is_member(id);
          note(std::string(learner ? "promote" : "add learner") + " node " + std::to_string(id.value));
          auto done = [this, id, learner](result<index_t> r) {
            note(std::string(learner ? "promotion" : "addition") + " of " + std::to_string(id.value) + ": " +
                 (r.has_value() ? "done" : r.error().message()));
          };
          if (learner)
            c.node(*leader).async_promote(id, done);
          else
            c.node(*leader).async_add_learner(id, done);
          break;
        }
        break;
      }
      case 14:  // ambush: the next new leader is cut off soon after it is elected
        if (ambush_) break;
        ambush_ = leader.value_or(no_node);
        note("ambush armed: the next new leader will be cut off soon after its election");
        break;
      case 15:  // any public operation, with any argument shape, through any node
        random_operation(c);
        break;
      case 16:  // lease reads: the leader goes deaf, transfers, and is read while deposed
        lease_ambush(c);
        break;
      case 17: {  // lease reads: the leader is cut off and read until its lease ends
        if (!leader || net.is_paused(*leader) || !s_.opts.lease_reads) break;
        const node_id l = *leader;
        net.isolate(l, ids);
        note("lease edge: leader " + std::to_string(l.value) + " cut off; reads on it until its lease ends");
        cover("lease edge: leader cut off and read");
        start_task(c, lease_edge_reads(c, l));
        reverts_.emplace(c.now() + s_.opts.election_timeout_max * 2, [this, &c] {
          c.network().heal();
          note("heal all links (after the lease edge)");
        });
        break;
      }
      case 18: {  // a membership change, and a crash between its two halves
        if (joint_crash_ || !leader || net.is_paused(*leader)) break;
        // Either while C_old,new is the latest configuration, or once the leader appended a
        // C_new that demotes or removes it, before C_new commits.
        cnew_crash_ = pick(0, 1) == 0;
        configuration target = random_target(c, true);
        if (cnew_crash_ && target.voters.size() > 1 && std::erase(target.voters, *leader) != 0 && pick(0, 1))
          target.learners.push_back(*leader);
        joint_crash_ = true;
        note(std::string("joint crash armed: a node crashes ") +
             (cnew_crash_ ? "while C_new, without the leader, is uncommitted" : "while the configuration is joint"));
        change_membership(c, *leader, target);
        break;
      }
      case 20:  // a leader's acknowledgements held, then released with a newer leader's messages
        if (!held_acks_ && leader && !net.is_paused(*leader) && !net.hold_if) {
          held_acks_ = true;
          start_task(c, held_acks_ambush(c, *leader));
        }
        break;
      case 21: {  // a follower restarts while the answers to its forwarded reads are held
        // It restarts (a fresh incarnation, few reads sent yet), answers to its reads are held
        // from then on, it crashes and restarts again, catches up, then hears no more entries;
        // clients write and read through it; then the held answers (to reads of its earlier
        // incarnation too) arrive.
        if (s_.barrier_reads == 0 || net.hold_if || net.drop_if || !leader || unavailable(c).size() >= s_.max_down) break;
        const node_id f = any();
        if (f == *leader || !c.is_up(f) || net.is_paused(f)) break;
        read_restart_ = true;
        cover("restart with forwarded reads unanswered");
        c.crash(f);
        note("read restart: node " + std::to_string(f.value) + " crashes");
        auto at = c.now() + std::chrono::milliseconds(pick(1, 20));
        reverts_.emplace(at, [this, &c, f] {
          if (!read_restart_ || c.is_up(f)) return;
          c.restart(f);
          c.network().hold_if = [f](const message& m) { return m.to == f && m.body.holds<read_index_response>(); };
          note("read restart: restart node " + std::to_string(f.value) + "; answers to its reads are held");
        });
        at += std::chrono::milliseconds(pick(10, 60));
        reverts_.emplace(at, [this, &c, f] {
          if (!read_restart_ || !c.is_up(f)) return;
          c.crash(f);
          c.restart(f);
          note("read restart: node " + std::to_string(f.value) + " crashes and restarts again");
        });
        at += std::chrono::milliseconds(pick(20, 80));
        reverts_.emplace(at, [this, &c, f] {
          if (!read_restart_) return;
          c.network().drop_if = [f](const message& m) { return m.to == f && m.body.holds<append_request>(); };
          note("read restart: node " + std::to_string(f.value) + " hears no more entries");
        });
        at += std::chrono::milliseconds(pick(5, 60));
        reverts_.emplace(at, [this, &c, f] {
          if (!read_restart_) return;
          c.network().release_held();
          note("read restart: the answers to node " + std::to_string(f.value) + " go out");
        });
        reverts_.emplace(at + std::chrono::milliseconds(pick(5, 40)), [this, &c, f] {
          if (!read_restart_) return;
          read_restart_ = false;
          c.network().drop_if = nullptr;
          note("read restart: node " + std::to_string(f.value) + " hears entries again");
        });
        break;
      }
      case 19:  // a crash within a message delay of the next election's start
        if (!election_crash_) {
          election_crash_ = true;
          note("election crash armed: a node crashes within a message delay of the next election");
        }
        break;
      default:
        break;
    }
  }

  /// A joint crash is armed and some node that is up leads with a joint configuration.
  bool joint_now(cluster<>& c) const {
    if (!joint_crash_) return false;
    const auto l = c.leader();
    if (!l) return false;
    const auto st = c.node(*l).status();
    if (!cnew_crash_) return st.config.joint();
    return !st.config.joint() && !st.config.is_voter(*l) && st.commit_index < st.last_log_index;
  }

  void crash_in_joint_phase(cluster<>& c) {
    joint_crash_ = false;
    const node_id l = *c.leader();
    const auto cfg = c.node(l).status().config;
    std::vector<node_id> all;  // the members that exist (add_learner may have added node 99)
    const auto ids = c.ids();
    for (node_id id : cfg.all_members())
      if (std::find(ids.begin(), ids.end(), id) != ids.end()) all.push_back(id);
    const node_id v = pick(0, 1) ? l : all[pick(0, all.size() - 1)];
    if (!c.is_up(v) || unavailable(c).size() >= s_.max_down) return;
    resume(c, v, false);
    cover(cnew_crash_ ? "crash while C_new is uncommitted" : "crash in the joint phase");
    c.crash(v);
    note("crash node " + std::to_string(v.value) +
         (cnew_crash_ ? " while C_new, without the leader, is uncommitted" : " while the configuration is joint") +
         (v == l ? " (the leader)" : ""));
  }

  static bool leading(cluster<>& c, node_id l) { return c.is_up(l) && c.node(l).role() == role::leader; }

  /// The window of the dissertation's Figure 3.7 (the paper's Figure 8): leader `l` has brought
  /// a majority of voters up to its last entry of an earlier term, but not yet a majority to an
  /// entry of its own term. Raft must not count that entry as committed; nodes that hold it but
  /// not the new term may still vote for a candidate whose log lacks it.
  bool in_window(cluster<>& c, node_id l) const {
    const auto& leader = c.node(l);
    const in_memory_log& log = leader.log();
    const term_t t = leader.term();
    if (log.last_term() != t) return false;
    const index_t first_new = log.first_index_of_term_at(log.last_index());
    if (first_new <= log.first_index()) return false;
    const index_t old = first_new.prev();
    const auto old_term = log.term_at(old);
    if (!old_term || old <= watch_commit_) return false;  // known committed before: no window
    const auto voters = leader.status().config.voters;
    std::size_t with_old = 0, with_new = 0;
    for (node_id v : voters) {
      if (!c.is_up(v)) continue;
      const in_memory_log& other = c.node(v).log();
      if (other.last_term() >= t) ++with_new;
      if (other.last_index() >= old && other.term_at(old) == old_term) ++with_old;
    }
    const std::size_t majority = voters.size() / 2 + 1;
    return with_old >= majority && with_new < majority;
  }

  /// Cuts leader `l` off, with the nodes that have entries of its term, from the others.
  void strike_in_window(cluster<>& c, node_id l) {
    const auto ids = c.ids();
    const term_t t = c.node(l).term();
    std::vector<node_id> small, big;
    for (node_id id : ids)
      (c.is_up(id) && (id == l || c.node(id).log().last_term() >= t) ? small : big).push_back(id);
    c.network().heal();
    c.network().partition({small, big}, ids);
    note("ambush in the window: leader " + std::to_string(l.value) + " has an earlier term's entry on a "
         "majority, its own on none: cut off " + ids_text(small) + " " + ids_text(big));
    if (pick(0, 2) != 0) {
      ambush_ = l;
      note("ambush armed again");
    }
  }

  /// The ambush: a new leader is elected; within a few message delays (while it is still
  /// bringing followers up to date, an entry of an earlier term perhaps on a majority already
  /// but its own no-op not yet) it is left with at most one other node. Under churn, half the
  /// time it waits for exactly that moment instead (in_window).
  void strike(cluster<>& c) {
    const node_id l = *c.leader();
    ambush_.reset();
    if (s_.profile == "churn" && pick(0, 1) == 0) {
      watch_ = l;
      watch_commit_ = c.committed();
      note("ambush: watching new leader " + std::to_string(l.value) + " for the window");
      return;
    }
    const auto ids = c.ids();
    const auto d = std::chrono::microseconds(pick(0, std::size_t(s_.max_delay.count()) * 6000));
    reverts_.emplace(c.now() + d, [this, &c, l, ids] {
      if (!c.is_up(l) || c.node(l).role() != role::leader) return;
      std::vector<node_id> small{l}, big;
      for (node_id id : ids)
        if (id != l) (small.size() < 2 && pick(0, 2) == 0 ? small : big).push_back(id);
      c.network().heal();
      c.network().partition({small, big}, ids);
      note("ambush: new leader " + std::to_string(l.value) + " cut off: " + ids_text(small) + " " + ids_text(big));
      // Under churn, often lie in wait for the one after it too: leaders in a row, each with
      // a log the next lacks.
      if (s_.profile == "churn" && pick(0, 2) != 0 && !ambush_) {
        ambush_ = l;
        note("ambush armed again");
      }
    });
  }

  void resume(cluster<>& c, node_id v, bool say) {
    if (!c.network().is_paused(v)) return;
    c.network().resume(v);
    timeline::current().resume(v.value);
    if (say) note("resume node " + std::to_string(v.value));
  }

  void heal_all(cluster<>& c) {
    reverts_.clear();
    ambush_.reset();
    watch_.reset();
    joint_crash_ = election_crash_ = read_restart_ = false;
    faults_over_ = true;
    c.network().release_held();
    c.network().drop_if = nullptr;
    for (node_id id : c.ids()) {
      resume(c, id, false);
      timeline::current().set_rate(id.value, 1.0);
      if (!c.is_up(id)) c.restart(id);
    }
    c.network().heal();
    c.network().faults = network_faults{};
  }

  void fail(outcome::failure kind, std::string what) {
    if (out_.kind == outcome::failure::none) {
      out_.kind = kind;
      if (out_.failed_at < 0) out_.failed_at = ns_now();
    }
    tr_.add("FAILURE " + what.substr(0, what.find('\n')));
    out_.problems.push_back(std::move(what));
  }

  std::uint64_t seed_;
  std::mt19937_64 rng_;
  tracer tr_;
  std::uint64_t max_configurations_;
  std::string profile_;
  setup s_;
  outcome out_;
  trace_hash hash_;
  std::vector<std::string> keys_;
  std::multimap<virtual_clock::time_point, std::function<void()>> reverts_;
  std::size_t clients_running_ = 0;
  bool stop_clients_ = false;
  std::int64_t end_time_ = 0;
  std::string last_error_;
  std::optional<node_id> ambush_;  ///< armed: strike the first leader other than this one
  std::optional<node_id> watch_;   ///< a new leader watched for the Figure 3.7 window
  index_t watch_commit_{0};        ///< what was known committed when the watch began
  cluster<>* c_ = nullptr;         ///< the cluster while it runs (node events, coverage)
  std::size_t transfers_pending_ = 0;
  bool joint_crash_ = false;       ///< armed: crash a node once the configuration is joint
  bool cnew_crash_ = false;        ///< ... or once C_new without the leader is appended
  bool election_crash_ = false;    ///< armed: crash a node as the next election starts
  bool held_acks_ = false;         ///< held_acks_ambush() runs
  bool read_restart_ = false;      ///< answers to a restarting follower's reads are held
  bool faults_over_ = false;       ///< heal_all() ran: nemesis tasks stop acting
  std::int64_t last_op_time_ = 0;  ///< op_time()'s last value
  std::uint64_t nemesis_clients_ = 0;
  std::map<node_id, index_t> last_seen_;  ///< each node's last log index at the last step
};

/// Runs one seed.
inline outcome run_seed(std::uint64_t seed, const run_options& ro = {}) { return run(seed, ro).go(); }

/// Runs a failed seed again with tracing, and returns the replay (its trace holds the steps
/// around the failure). The replay must give the same trace hash, or the run was not
/// deterministic.
inline outcome replay_traced(const outcome& failed, bool verbose = false, const std::string& profile = {}) {
  run_options ro;
  ro.profile = profile;
  ro.trace = true;
  ro.verbose = verbose;
  if (failed.kind == outcome::failure::linearizability && failed.lin.stuck_op < failed.history.size()) {
    const auto& op = failed.history[failed.lin.stuck_op];
    ro.window = std::pair(op.start - 300'000'000, op.end.value_or(op.start) + 20'000'000);
  }
  return run_seed(failed.seed, ro);
}

/// A failure report for a person.
inline std::string report(const outcome& o, const outcome* replay, const std::string& program) {
  std::ostringstream os;
  os << "FAIL seed " << o.seed << " (" << to_string(o.kind) << ")\n  setup: " << o.setup << "\n";
  for (const auto& p : o.problems) {
    std::string text = p;
    std::string indented;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) indented += "    " + line + "\n";
    os << "  problem:\n" << indented;
  }
  os << "  replay: " << program << " --seed " << o.seed
     << (o.forced_profile.empty() ? "" : " --profile " + o.forced_profile)
     << " --trace   (add --verbose for heartbeats too)\n";
  os << "  fault schedule (" << o.schedule.size() << " actions):\n";
  for (const auto& s : o.schedule) os << "    " << s << "\n";
  if (replay) {
    os << "  trace of the replay";
    if (replay->trace_hash != o.trace_hash) os << " (WARNING: the replay diverged: trace hash differs)";
    os << (o.kind == outcome::failure::linearizability ? ", around the operation that could not be placed:\n"
                                                       : ", the steps before the failure:\n");
    for (const auto& l : replay->trace) os << "    " << l << "\n";
  }
  return os.str();
}

}  // namespace sim
