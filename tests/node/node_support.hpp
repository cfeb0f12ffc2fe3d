// Helpers shared by the node tests (tests/node/): hand-made logs, log comparison, seeds from the
// environment, a recording state machine, and a random fault driver for the simulated cluster.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>  // not for chaos: the node tests draw their own numbers with std::mt19937_64
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "raft/detail/jitter_rng.hpp"
#include "raft/testing/cluster.hpp"

namespace node_test {

using namespace raft;
using namespace raft::testing;
using namespace std::chrono_literals;

// ---- hand-made logs ----------------------------------------------------------------------------

/// The bootstrap configuration entry every founding member writes at index 1, term 1.
inline log_entry config_entry(std::size_t voters) {
  configuration c;
  for (std::size_t i = 1; i <= voters; ++i) c.voters.push_back(node_id{i});
  return log_entry{term_t{1}, index_t{1}, entry_kind::configuration, encode(c)};
}

/// A kv command whose content is a function of (index, term): entries at the same index and term
/// are equal, as the Log Matching property says they must be. It puts "t<term>" at key "i<index>".
inline log_entry command_entry(std::uint64_t index, std::uint64_t term) {
  return log_entry{term_t{term}, index_t{index}, entry_kind::command,
                   kv_state_machine::put("i" + std::to_string(index), "t" + std::to_string(term))};
}

/// A node's storage as drawn in the paper's figures: `terms[k]` is the term of the entry at index
/// k+1. Index 1 must be term 1: it becomes the configuration entry of a `voters`-node cluster.
inline persistent_state hand_made(std::size_t voters, std::uint64_t current_term,
                                  const std::vector<std::uint64_t>& terms,
                                  node_id voted_for = no_node) {
  if (terms.empty() || terms.front() != 1)
    throw std::invalid_argument("hand_made: the log must start with term 1 (configuration)");
  persistent_state ps;
  ps.state = hard_state{term_t{current_term}, voted_for};
  ps.entries.push_back(config_entry(voters));
  for (std::size_t k = 1; k < terms.size(); ++k) ps.entries.push_back(command_entry(k + 1, terms[k]));
  return ps;
}

/// The terms of a log, index 1 first (for readable failure messages and comparisons).
inline std::vector<std::uint64_t> terms_of(const in_memory_log& log) {
  std::vector<std::uint64_t> out;
  for (index_t i = log.first_index(); i <= log.last_index(); i = i.next()) out.push_back(log.at(i).term.value);
  return out;
}
inline std::vector<std::uint64_t> terms_of(const std::vector<log_entry>& entries) {
  std::vector<std::uint64_t> out;
  for (const auto& e : entries) out.push_back(e.term.value);
  return out;
}

/// Whole entries equal (index, term, kind, payload).
inline bool same_log(const in_memory_log& a, const in_memory_log& b) {
  if (a.first_index() != b.first_index() || a.last_index() != b.last_index()) return false;
  for (index_t i = a.first_index(); i <= a.last_index(); i = i.next())
    if (!(a.at(i) == b.at(i))) return false;
  return true;
}

inline std::string to_text(const std::vector<std::uint64_t>& v) {
  std::string s = "[";
  for (std::size_t k = 0; k < v.size(); ++k) s += (k ? " " : "") + std::to_string(v[k]);
  return s + "]";
}

/// Runs until there is a leader, everything in its log is committed, and every node that is up
/// holds as much log as the leader and has applied all of it. Returns whether that happened.
template <class Cluster>
bool settle(Cluster& c, std::chrono::nanoseconds limit = std::chrono::seconds(10)) {
  return c.run_until(
      [&] {
        const auto l = c.leader();
        if (!l) return false;
        const auto& leader = c.node(*l);
        if (leader.commit_index() != leader.log().last_index()) return false;
        for (node_id id : c.ids()) {
          if (!c.is_up(id)) continue;
          const auto& n = c.node(id);
          if (n.log().last_index() != leader.log().last_index() ||
              n.applied_index() != leader.commit_index())
            return false;
        }
        return true;
      },
      std::chrono::duration_cast<typename Cluster::duration>(limit));
}

// ---- seeds -------------------------------------------------------------------------------------

/// An unsigned number from the environment, or `fallback` when unset.
inline std::uint64_t env_u64(const char* name, std::uint64_t fallback) {
  const char* env = std::getenv(name);
  if (env == nullptr || *env == '\0') return fallback;
  char* end = nullptr;
  errno = 0;
  const std::uint64_t v = std::strtoull(env, &end, 0);
  if (*env == '-' || *end != '\0' || errno == ERANGE)
    throw std::invalid_argument(std::string(name) + " is not an unsigned number: " + env);
  return v;
}

// ---- results -----------------------------------------------------------------------------------

template <class R>
std::optional<errc> error_of(const R& outcome) {
  if (outcome.has_value()) return std::nullopt;
  return outcome.error().code;
}

// ---- a state machine that records what every replica applied at every index --------------------

/// What every replica applied, by index: two different commands at one index break State Machine
/// Safety (§5.4.3). Tests point `recording_state_machine::registry` at one of these.
struct applied_registry {
  std::map<std::uint64_t, std::string> command_at;
  std::uint64_t applies = 0;
  std::vector<std::string> violations;
};

struct recording_state_machine {
  static inline applied_registry* registry = nullptr;
  kv_state_machine kv;

  std::string apply(index_t index, std::span<const std::byte> bytes) {
    if (registry != nullptr) {
      ++registry->applies;
      std::string text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      auto [it, fresh] = registry->command_at.emplace(index.value, text);
      if (!fresh && it->second != text)
        registry->violations.push_back("two different commands applied at index " +
                                       std::to_string(index.value));
    }
    return kv.apply(index, bytes);
  }
};

// ---- random faults -----------------------------------------------------------------------------

/// Drives a cluster through random faults: partitions, heals, crashes and restarts, lossy and
/// duplicating links, while proposing unique kv puts through random nodes. Everything it does is
/// decided by its own generator, so a run is a function of the seed (detail::jitter_rng: the same
/// draws with every standard library).
template <class Cluster>
class chaos {
 public:
  struct put {
    std::string key, value;
    std::shared_ptr<proposal<std::string>> p;
  };

  chaos(Cluster& c, std::uint64_t seed) : c_(c), rng_(seed) {}

  /// At most this many nodes are down at once (default: a minority).
  std::size_t max_down = 0;
  /// Upper bounds of the random per-message fault probabilities and delay.
  double max_drop = 0.2, max_duplicate = 0.2;
  std::chrono::milliseconds max_delay{20};
  bool crashes = true;
  /// Called after every simulation step (for tests that check a property all along).
  std::function<void()> observer;

  /// One random fault action, then `slice` of virtual time with proposals sprinkled in.
  void step(std::chrono::milliseconds slice = 100ms) {
    const auto ids = c_.ids();
    const std::size_t limit_down = max_down != 0 ? max_down : (ids.size() - 1) / 2;
    switch (pick(0, 9)) {
      case 0:
      case 1: {  // a random partition into two groups
        c_.network().heal();
        std::vector<node_id> a, b;
        for (node_id id : ids) (pick(0, 1) ? a : b).push_back(id);
        c_.network().partition({a, b}, ids);
        break;
      }
      case 2: {  // one node cut off
        c_.network().heal();
        c_.network().isolate(ids[pick(0, ids.size() - 1)], ids);
        break;
      }
      case 3:
      case 4:
        c_.network().heal();
        break;
      case 5: {  // crash a node (the leader half of the time)
        if (!crashes || down().size() >= limit_down) break;
        node_id victim = ids[pick(0, ids.size() - 1)];
        if (auto l = c_.leader(); l && pick(0, 1)) victim = *l;
        c_.crash(victim);
        break;
      }
      case 6: {
        auto d = down();
        if (!d.empty()) c_.restart(d[pick(0, d.size() - 1)]);
        break;
      }
      case 7: {  // change link quality
        auto& f = c_.network().faults;
        f.drop = uniform(0.0, max_drop);
        f.duplicate = uniform(0.0, max_duplicate);
        f.min_delay = std::chrono::microseconds(pick(100, 1000));
        f.max_delay = f.min_delay + std::chrono::microseconds(pick(0, max_delay.count() * 1000));
        break;
      }
      default:
        break;
    }
    // Proposals through random nodes that are up, spread over the slice.
    const int parts = 4;
    for (int k = 0; k < parts; ++k) {
      if (pick(0, 1)) propose_somewhere();
      run(slice / parts);
    }
  }

  /// Runs for `d`, calling `observer` (if set) after every simulation step.
  void run(typename Cluster::duration d) {
    if (!observer) return c_.run_for(d);
    c_.run_until([&] { return observer(), false; }, d);
  }

  /// Back to a healthy cluster: every link up, no faults, every node running.
  void heal_all() {
    c_.network().heal();
    c_.network().faults = network_faults{};
    for (node_id id : down()) c_.restart(id);
  }

  /// Proposes a unique put through a random node that is up (it may not be the leader).
  void propose_somewhere() {
    std::vector<node_id> up;
    for (node_id id : c_.ids())
      if (c_.is_up(id)) up.push_back(id);
    if (up.empty()) return;
    node_id via = up[pick(0, up.size() - 1)];
    if (auto l = c_.leader(); l && pick(0, 3) != 0) via = *l;  // mostly through the leader
    const std::string key = "k" + std::to_string(puts_.size());
    const std::string value = "v" + std::to_string(rng_() % 1000000);
    puts_.push_back(put{key, value, c_.propose(via, kv_state_machine::put(key, value))});
  }

  [[nodiscard]] const std::vector<put>& puts() const noexcept { return puts_; }

  std::vector<node_id> down() const {
    std::vector<node_id> out;
    for (node_id id : c_.ids())
      if (!c_.is_up(id)) out.push_back(id);
    return out;
  }

  /// A uniformly distributed integer in [lo, hi].
  std::size_t pick(std::size_t lo, std::size_t hi) { return rng_.between(lo, hi); }
  /// A uniformly distributed double in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * rng_.unit(); }

 private:
  Cluster& c_;
  raft::detail::jitter_rng rng_;
  std::vector<put> puts_;
};

}  // namespace node_test
