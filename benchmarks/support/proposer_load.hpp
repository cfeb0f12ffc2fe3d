// benchmarks/support/proposer_load.hpp - the load: P proposers, each keeping exactly one proposal
// outstanding at its target node (the leader; with --groups, the leader of the proposer's group),
// and what their proposals' completions add up to. Everything here is touched only on the
// targets' executor (one load per executor).
//
// Two ways to wait for a proposal, selectable with --client. Measured side by side (3 nodes, 64 B,
// 256 proposers, --threads 1, 2-core machine, twice each): callback 0.70-0.75 CPU s per million
// entries, coroutine 0.88-0.93 (about 20% more), so the callback is the default.
//   callback  - propose(bytes, handler): the handler re-proposes directly.
//   coroutine - one asio::awaitable per proposer looping `co_await leader.async_propose(bytes)`;
//               each completion also resumes a coroutine frame.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>

#include <raft/raft.hpp>

#include "latency_histogram.hpp"
#include "null_state_machine.hpp"
#include "params.hpp"

namespace raft_bench {

/// Where the run is: completions count only in `measure`; in `drain` nobody proposes again.
enum class phase { warmup, measure, drain };

template <class Node>
struct proposer_load {
  std::vector<Node*> targets;  // per proposer: the node it proposes to
  std::vector<std::byte> payload;
  phase stage = phase::warmup;
  std::vector<bench_clock::time_point> started;  // per proposer: when its proposal was issued
  std::size_t outstanding = 0;
  std::uint64_t completed = 0;  // completed inside the measurement window
  std::uint64_t failed = 0;     // proposals that completed with an error (any phase)
  std::optional<raft::error> first_error;
  latency_histogram latency;

  void finish(std::size_t who, const propose_result& r, bench_clock::time_point now) {
    --outstanding;
    if (!r) {
      ++failed;
      if (!first_error) first_error = r.error();
      return;
    }
    if (stage == phase::measure) {
      ++completed;
      latency.record(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - started[who]).count()));
    }
  }

  // --- callback client -------------------------------------------------------------------------
  struct handler {
    proposer_load* load;
    std::size_t who;
    void operator()(propose_result r) const {
      const auto now = bench_clock::now();
      load->finish(who, r, now);
      if (r && load->stage != phase::drain) load->issue(who, now);  // failed proposers stop
    }
  };
  /// The next proposal starts at the instant the previous one completed: one clock read serves both.
  void issue(std::size_t who, bench_clock::time_point now) {
    ++outstanding;
    started[who] = now;
    targets[who]->async_propose(payload, handler{this, who});
  }

  // --- coroutine client ------------------------------------------------------------------------
  asio::awaitable<void> run_coroutine(std::size_t who) {
    while (stage != phase::drain) {
      ++outstanding;
      started[who] = bench_clock::now();
      const propose_result r = co_await targets[who]->async_propose(payload);
      finish(who, r, bench_clock::now());
      if (!r) co_return;
    }
  }

  /// Starts one proposer per target.
  void start(bool coroutine_client) {
    started.resize(targets.size());
    for (std::size_t i = 0; i < targets.size(); ++i) {
      if (coroutine_client)
        asio::co_spawn(targets[i]->get_executor(), run_coroutine(i), asio::detached);
      else
        issue(i, bench_clock::now());
    }
  }
};

}  // namespace raft_bench
