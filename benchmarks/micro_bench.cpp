// benchmarks/micro_bench.cpp - Google Benchmark micro-benchmarks of the hot pure pieces.
//
//   log_view append / copy   the leader's log: one append per proposal, one copy per AppendEntries
//   leader_commit_index      run after every acknowledgement, with 3 and 5 voters
//   kv encode / decode       the example state machine's command format
//
// Built only when Google Benchmark is found (Debian: libbenchmark-dev).
//   build/benchmarks/micro_bench --benchmark_min_time=0.2
#include <cstddef>
#include <cstdint>
#include <vector>

#include <benchmark/benchmark.h>

#include <raft/core/buffer.hpp>
#include <raft/core/configuration.hpp>
#include <raft/core/entry.hpp>
#include <raft/core/log.hpp>
#include <raft/core/rules.hpp>
#include <raft/testing/kv_state_machine.hpp>

namespace {

raft::buffer payload(std::size_t size) {
  std::vector<std::byte> bytes(size, std::byte{0x5a});
  return raft::buffer{bytes};
}

raft::log_view make_log(std::size_t entries, const raft::buffer& data) {
  raft::log_view log;
  for (std::size_t i = 1; i <= entries; ++i)
    log.append(raft::log_entry{raft::term_t{1}, raft::index_t{i}, raft::entry_kind::command, data});
  return log;
}

// Appending entries that share one payload: the cost of the log itself (a deque of headers and a
// reference count per entry), not of copying commands. A fresh log every 64k entries.
void log_append(benchmark::State& state) {
  const raft::buffer data = payload(64);
  constexpr std::size_t batch = 65536;
  for (auto _ : state) {
    raft::log_view log;
    for (std::size_t i = 1; i <= batch; ++i)
      log.append(raft::log_entry{raft::term_t{1}, raft::index_t{i}, raft::entry_kind::command, data});
    benchmark::DoNotOptimize(log.last_index());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}
BENCHMARK(log_append);

// Appending entries with a fresh payload each: what a proposal costs the leader's log (the
// payload copy is one allocation).
void log_append_fresh_payload(benchmark::State& state) {
  std::vector<std::byte> bytes(64, std::byte{1});
  constexpr std::size_t batch = 65536;
  for (auto _ : state) {
    raft::log_view log;
    for (std::size_t i = 1; i <= batch; ++i)
      log.append(raft::log_entry{raft::term_t{1}, raft::index_t{i}, raft::entry_kind::command,
                                 raft::buffer{bytes}});
    benchmark::DoNotOptimize(log.last_index());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}
BENCHMARK(log_append_fresh_payload);

// Copying a batch of entries out of the log into a message, as send_append does (the output
// vector is reused, as a message's would not be).
void log_copy(benchmark::State& state) {
  const auto count = static_cast<std::size_t>(state.range(0));
  const raft::log_view log = make_log(100000, payload(64));
  std::vector<raft::log_entry> out;
  std::uint64_t from = 1;
  for (auto _ : state) {
    out.clear();
    log.copy(raft::index_t{from}, count, std::size_t{1} << 20, out);
    benchmark::DoNotOptimize(out.data());
    from = from + count > 100000 - count ? 1 : from + count;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(log_copy)->Arg(1)->Arg(64)->Arg(4096);

// The commit rule over `voters` voters, as maybe_commit() runs it after every acknowledgement.
void leader_commit_index(benchmark::State& state) {
  const auto voters = static_cast<std::uint64_t>(state.range(0));
  raft::configuration config;
  for (std::uint64_t v = 1; v <= voters; ++v) config.voters.push_back(raft::node_id{v});
  const raft::log_view log = make_log(1000, payload(8));
  std::vector<raft::index_t> match(voters + 1);
  std::uint64_t step = 0;
  for (auto _ : state) {
    // Move one follower forward each time, as acknowledgements do.
    ++step;
    match[1 + step % voters] = raft::index_t{1 + step % 999};
    const raft::index_t c = raft::leader_commit_index(
        config, [&](raft::node_id v) { return match[v.value]; }, log, raft::term_t{1},
        raft::index_t{0});
    benchmark::DoNotOptimize(c);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(leader_commit_index)->Arg(3)->Arg(5);

void kv_encode(benchmark::State& state) {
  const std::string value(static_cast<std::size_t>(state.range(0)), 'v');
  for (auto _ : state) {
    raft::buffer b = raft::testing::kv_state_machine::put("some-key", value);
    benchmark::DoNotOptimize(b.bytes().data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(kv_encode)->Arg(16)->Arg(1024);

void kv_decode(benchmark::State& state) {
  const std::string value(static_cast<std::size_t>(state.range(0)), 'v');
  const raft::buffer b = raft::testing::kv_state_machine::put("some-key", value);
  for (auto _ : state) {
    auto c = raft::testing::kv_state_machine::decode(b.bytes());
    benchmark::DoNotOptimize(c);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(kv_decode)->Arg(16)->Arg(1024);

}  // namespace

BENCHMARK_MAIN();
