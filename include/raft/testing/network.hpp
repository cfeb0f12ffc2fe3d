// raft/testing/network.hpp - a simulated network on the virtual clock, with faults.
//
// Every message sent through a sim_transport goes to the sim_network, which decides, with its own
// seeded generator, whether to drop it, how long to delay it and whether to deliver it twice.
// Random delays reorder messages. Links can be cut one way or both, and the nodes split into
// partitions. A node can be paused (a process stopped with SIGSTOP): what is sent to it or by it
// waits, undelivered, until it resumes. Delivery happens when the simulation asks for it
// (deliver_due), so a run is a pure function of the seed. The generator is detail::jitter_rng
// (std::mt19937_64 with its own mapping to ranges), so the draws are the same with every
// standard library.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include <asio/awaitable.hpp>

#include "raft/detail/asio_check.hpp"

#include "raft/core/messages.hpp"
#include "raft/detail/jitter_rng.hpp"
#include "raft/detail/signal.hpp"
#include "raft/testing/virtual_time.hpp"

namespace raft {
inline namespace v1 {
namespace testing {

/// How the simulated network misbehaves. Probabilities are per message, in [0, 1].
struct network_faults {
  double drop = 0.0;
  double duplicate = 0.0;
  std::chrono::nanoseconds min_delay = std::chrono::microseconds(500);
  std::chrono::nanoseconds max_delay = std::chrono::microseconds(1500);
};

/// Message counts, by kind.
struct network_counters {
  std::uint64_t sent = 0;        ///< handed to the network by nodes
  std::uint64_t delivered = 0;   ///< put into a receiver's inbox
  std::uint64_t dropped = 0;     ///< lost to faults, cut links or stopped receivers
  std::uint64_t duplicated = 0;
  std::uint64_t vote_requests = 0;
  std::uint64_t append_requests = 0;
};

class sim_transport;

class sim_network {
 public:
  explicit sim_network(std::uint64_t seed) : rng_(seed) {}
  sim_network(const sim_network&) = delete;
  sim_network& operator=(const sim_network&) = delete;

  network_faults faults;

  /// Sees every message nodes send, before faults apply (for tests that count or inspect
  /// traffic).
  std::function<void(const message&)> on_send;

  /// Drops every message it returns true for (a targeted fault: "lose every snapshot chunk").
  std::function<bool(const message&)> drop_if;

  /// Holds every message it returns true for, neither lost nor delivered, until release_held()
  /// (a targeted fault: messages sent far apart arrive together). Like what a pause holds, a
  /// held message is lost if either of its ends crashes meanwhile (drop_in_flight_to).
  std::function<bool(const message&)> hold_if;

  /// Stops holding (hold_if is cleared) and sends every held message on again with a fresh
  /// delay, except those held for a paused node.
  void release_held() {
    hold_if = nullptr;
    send_held();
  }

  /// Sees what becomes of every message: `fate` is "cut" (link down), "drop" (lost to
  /// `faults.drop`), "held" (sender or receiver paused, or hold_if), "sent" or "dup" (the second copy), with
  /// the delay drawn for it. For traces; set it before the run starts.
  std::function<void(const message&, const char* fate, std::chrono::nanoseconds delay)> on_route;

  /// Sends `m` as if node `m.from` had: tests use it to play a peer by hand.
  void inject(message m) { submit(std::move(m)); }

  /// Cuts the link from `a` to `b` (one way).
  void cut(node_id a, node_id b) { cut_.insert({a, b}); }
  /// Cuts both directions between `a` and `b`.
  void cut_both(node_id a, node_id b) { cut(a, b), cut(b, a); }
  /// Cuts every link between different groups; nodes in no group are cut from everyone.
  void partition(const std::vector<std::vector<node_id>>& groups, const std::vector<node_id>& all) {
    auto group_of = [&](node_id n) -> int {
      for (std::size_t g = 0; g < groups.size(); ++g)
        if (std::find(groups[g].begin(), groups[g].end(), n) != groups[g].end()) return int(g);
      return -1;
    };
    for (node_id a : all)
      for (node_id b : all)
        if (a != b && (group_of(a) != group_of(b) || group_of(a) < 0)) cut(a, b);
  }
  /// Cuts `n` from every other node in `all`, both ways.
  void isolate(node_id n, const std::vector<node_id>& all) {
    for (node_id o : all)
      if (o != n) cut_both(n, o);
  }
  /// Restores every link.
  void heal() { cut_.clear(); }
  [[nodiscard]] bool is_cut(node_id a, node_id b) const { return cut_.count({a, b}) != 0; }

  [[nodiscard]] const network_counters& counters() const noexcept { return counters_; }

  /// When the next message is due, if any is in flight.
  [[nodiscard]] std::optional<virtual_clock::time_point> next_delivery() const {
    if (in_flight_.empty()) return std::nullopt;
    return in_flight_.begin()->first;
  }

  /// Delivers every message due by now.
  inline void deliver_due();

  /// Whether a message is due by now (one sent with no delay, during the current instant).
  [[nodiscard]] bool due_now() const {
    return !in_flight_.empty() && in_flight_.begin()->first <= virtual_clock::now();
  }

  /// Drops every message in flight to `n` (a node that crashed), and every message held for
  /// it or by it while it was paused (a stopped process that crashes never sends them).
  void drop_in_flight_to(node_id n) {
    for (auto it = in_flight_.begin(); it != in_flight_.end();)
      it = it->second.to == n ? in_flight_.erase(it) : std::next(it);
    std::erase_if(held_, [&](const message& m) { return m.to == n || m.from == n; });
  }

  /// Pauses node `n`: messages due to reach it, and messages it sends, are held (neither lost
  /// nor delivered) until resume(n). Pair with timeline::pause for its timers.
  void pause(node_id n) { paused_.insert(n); }
  /// Resumes `n`: what was held goes out again, each message with a fresh delay (and the
  /// faults and cuts of the moment), unless its other end is still paused.
  void resume(node_id n) {
    if (paused_.erase(n) == 0) return;
    send_held();
  }
  [[nodiscard]] bool is_paused(node_id n) const { return paused_.count(n) != 0; }
  /// Messages held for paused nodes.
  [[nodiscard]] std::size_t held() const noexcept { return held_.size(); }

 private:
  friend class sim_transport;

  void attach(node_id id, sim_transport* t) { endpoints_[id] = t; }
  void detach(node_id id, sim_transport* t) {
    auto it = endpoints_.find(id);
    if (it != endpoints_.end() && it->second == t) endpoints_.erase(it);
  }

  /// Sends every held message on again with a fresh delay, except those to or from a node
  /// that is still paused (and those hold_if still holds).
  void send_held() {
    std::vector<message> held;
    held.swap(held_);
    for (auto& m : held) {
      if (is_paused(m.from) || is_paused(m.to))
        held_.push_back(std::move(m));
      else
        route(std::move(m));
    }
  }

  void submit(message m) {
    if (on_send) on_send(m);
    ++counters_.sent;
    if (m.body.holds<vote_request>()) ++counters_.vote_requests;
    if (m.body.holds<append_request>()) ++counters_.append_requests;
    if (!paused_.empty() && is_paused(m.from)) {
      if (on_route) on_route(m, "held", {});
      held_.push_back(std::move(m));
      return;
    }
    route(std::move(m));
  }

  void route(message m) {
    if (hold_if && hold_if(m)) {
      if (on_route) on_route(m, "held", {});
      held_.push_back(std::move(m));
      return;
    }
    if (is_cut(m.from, m.to) || chance(faults.drop) || (drop_if && drop_if(m))) {
      if (on_route) on_route(m, is_cut(m.from, m.to) ? "cut" : "drop", {});
      ++counters_.dropped;
      return;
    }
    if (chance(faults.duplicate)) {
      ++counters_.duplicated;
      const auto d = delay();
      if (on_route) on_route(m, "dup", d);
      in_flight_.emplace(virtual_clock::now() + d, m);
    }
    const auto d = delay();
    if (on_route) on_route(m, "sent", d);
    in_flight_.emplace(virtual_clock::now() + d, std::move(m));
  }

  bool chance(double p) {
    if (p <= 0.0) return false;
    return rng_.unit() < p;
  }

  std::chrono::nanoseconds delay() {
    const auto lo = faults.min_delay.count(), hi = std::max(faults.max_delay.count(), lo);
    return std::chrono::nanoseconds(rng_.between(lo, hi));
  }

  detail::jitter_rng rng_;
  std::set<std::pair<node_id, node_id>> cut_;
  std::multimap<virtual_clock::time_point, message> in_flight_;
  std::map<node_id, sim_transport*> endpoints_;
  network_counters counters_;
  std::set<node_id> paused_;
  std::vector<message> held_;  ///< to or from paused nodes, in the order they were held
};

/// One node's endpoint on a sim_network. Models raft::transport.
class sim_transport {
 public:
  sim_transport(sim_network& net, node_id self, const asio::any_io_executor& ex)
      : net_(net), self_(self), arrived_(ex) {
    net_.attach(self_, this);
  }
  sim_transport(const sim_transport&) = delete;
  sim_transport& operator=(const sim_transport&) = delete;
  ~sim_transport() { net_.detach(self_, this); }

  void send(message m) { net_.submit(std::move(m)); }

  asio::awaitable<bool> receive(std::vector<message>& batch) {
    for (;;) {
      if (closed_) co_return false;
      if (!inbox_.empty()) {
        batch.swap(inbox_);
        co_return true;
      }
      co_await arrived_.wait();
    }
  }

  void close() {
    closed_ = true;
    inbox_.clear();
    arrived_.notify();
  }

 private:
  friend class sim_network;
  bool deliver(message&& m) {
    if (closed_) return false;
    inbox_.push_back(std::move(m));
    arrived_.notify();
    return true;
  }

  sim_network& net_;
  node_id self_;
  detail::signal arrived_;
  std::vector<message> inbox_;
  bool closed_ = false;
};

inline void sim_network::deliver_due() {
  const auto now = virtual_clock::now();
  while (!in_flight_.empty() && in_flight_.begin()->first <= now) {
    auto node = in_flight_.extract(in_flight_.begin());
    message& m = node.mapped();
    if (!paused_.empty() && is_paused(m.to)) {
      held_.push_back(std::move(m));
      continue;
    }
    auto it = endpoints_.find(m.to);
    // A link cut while the message was on its way loses it too.
    if (it == endpoints_.end() || is_cut(m.from, m.to) || !it->second->deliver(std::move(m))) {
      ++counters_.dropped;
      continue;
    }
    ++counters_.delivered;
  }
}

}  // namespace testing
}  // namespace v1
}  // namespace raft
