// raft/testing/stepper.hpp - how a simulation moves: run everything that is ready, then jump the
// virtual clock to the next timer or message delivery, and repeat.
//
// Shared by raft::testing::cluster (one group) and raft::testing::multi_cluster (processes that
// run many groups). The same seed gives the same run: handlers run in the io_context's order, the
// clock moves only when nothing is ready, and the network delivers only when asked.
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>

#include <asio/io_context.hpp>

#include "raft/detail/asio_check.hpp"

#include "raft/testing/network.hpp"
#include "raft/testing/virtual_time.hpp"

namespace raft {
inline namespace v1 {
namespace testing {

/// Steps one single-threaded io_context and one sim_network on the virtual clock. `check` (a
/// callable taking nothing) runs after every batch of handlers: the simulation's invariants.
class stepper {
 public:
  stepper(asio::io_context& context, sim_network& network) : context_(context), network_(network) {}

  /// Runs every ready handler. A message that falls due meanwhile (sent with no delay) is
  /// delivered between two handlers, as a real network delivers while a node works through
  /// its queue; with any delay, nothing falls due before the clock moves.
  template <class Check>
  void drain(Check&& check) {
    for (;;) {
      context_.restart();
      std::size_t ran = 0;
      while (context_.poll_one() != 0) {
        ++ran;
        if (network_.due_now()) network_.deliver_due();
      }
      if (ran == 0) break;
      check();
    }
    check();
  }

  /// When the next timer fires or the next message falls due, if anything is pending.
  [[nodiscard]] std::optional<virtual_clock::time_point> next_event() const {
    auto a = timeline::current().next_deadline();
    auto b = network_.next_delivery();
    if (!a) return b;
    if (!b) return a;
    return std::min(*a, *b);
  }

  /// Moves the clock to `t` and delivers what falls due by then.
  void advance(virtual_clock::time_point t) {
    timeline::current().advance_to(t);
    network_.deliver_due();
  }

  /// Runs until `pred()` holds (checked after every step) or `limit` of virtual time has passed.
  /// Returns whether `pred()` held.
  template <class Predicate, class Check>
  bool run_until(Predicate&& pred, virtual_clock::duration limit, Check&& check) {
    const auto end = virtual_clock::now() + limit;
    for (;;) {
      drain(check);
      if (pred()) return true;
      const auto next = next_event();
      if (!next || *next > end) {
        timeline::current().advance_to(end);
        drain(check);
        return pred();
      }
      advance(*next);
    }
  }

 private:
  asio::io_context& context_;
  sim_network& network_;
};

}  // namespace testing
}  // namespace v1
}  // namespace raft
