// benchmarks/micro_bench.cpp - Google Benchmark micro-benchmarks of the hot pieces.
//
//   in_memory_log append / copy    the leader's log: one append per proposal, one copy per AppendEntries
//   leader_commit_index       the commit-index advance, run after every acknowledgement (3, 5 voters)
//   codec encode / decode     the TCP wire format: AppendEntries of 1, 64 and 1024 entries of 64 B,
//                             and the AppendEntries response
//   storage append + flush    group commit: a batch of 1, 16 or 256 entries appended, then one
//                             flush(), for memory_storage and file_storage (fsync off and on)
//   kv encode / decode        the example state machine's command format
//
// Built only when Google Benchmark is found (Debian: libbenchmark-dev).
//   build-release/benchmarks/micro_bench --benchmark_min_time=0.2
//   build-release/benchmarks/micro_bench --benchmark_filter=codec
// The file_storage benchmarks write under $TMPDIR (default /tmp) and remove what they wrote.
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include <raft/core/buffer.hpp>
#include <raft/core/configuration.hpp>
#include <raft/core/entry.hpp>
#include <raft/core/log.hpp>
#include <raft/core/messages.hpp>
#include <raft/core/rules.hpp>
#include <raft/storage/file.hpp>
#include <raft/storage/memory.hpp>
#include <raft/testing/kv_state_machine.hpp>
#include <raft/transport/codec.hpp>

namespace {

raft::buffer payload(std::size_t size) {
  std::vector<std::byte> bytes(size, std::byte{0x5a});
  return raft::buffer{bytes};
}

raft::in_memory_log make_log(std::size_t entries, const raft::buffer& data) {
  raft::in_memory_log log;
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
    raft::in_memory_log log;
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
    raft::in_memory_log log;
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
  const raft::in_memory_log log = make_log(100000, payload(64));
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
  const raft::in_memory_log log = make_log(1000, payload(8));
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

// ---- codec --------------------------------------------------------------------------------------

raft::message append_message(std::size_t entries, std::size_t payload_bytes) {
  raft::append_request a;
  a.term = raft::term_t{7};
  a.prev_log_index = raft::index_t{1000};
  a.prev_log_term = raft::term_t{7};
  a.leader_commit = raft::index_t{999};
  const raft::buffer data = payload(payload_bytes);
  for (std::size_t i = 0; i < entries; ++i)
    a.entries.push_back(raft::log_entry{raft::term_t{7}, raft::index_t{1001 + i}, raft::entry_kind::command, data});
  return raft::message{raft::node_id{1}, raft::node_id{2}, std::move(a)};
}

// Encoding an AppendEntries into a reused buffer, as tcp_transport's writer does. Items are
// entries; bytes are frame bytes.
void codec_encode_append(benchmark::State& state) {
  const auto entries = static_cast<std::size_t>(state.range(0));
  const raft::message m = append_message(entries, 64);
  std::vector<std::byte> out;
  for (auto _ : state) {
    out.clear();
    raft::codec::encode_frame(m, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * std::max<std::size_t>(entries, 1)));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * out.size()));
}
BENCHMARK(codec_encode_append)->Arg(0)->Arg(1)->Arg(64)->Arg(1024);

// Decoding it, as tcp_transport's reader does: one buffer (one allocation) per entry payload.
void codec_decode_append(benchmark::State& state) {
  const auto entries = static_cast<std::size_t>(state.range(0));
  std::vector<std::byte> frame;
  raft::codec::encode_frame(append_message(entries, 64), frame);
  raft::message m;
  for (auto _ : state) {
    const auto ec = raft::codec::decode_frame(frame, m);
    benchmark::DoNotOptimize(ec);
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * std::max<std::size_t>(entries, 1)));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * frame.size()));
}
BENCHMARK(codec_decode_append)->Arg(0)->Arg(1)->Arg(64)->Arg(1024);

// The follower's reply: one per AppendEntries.
void codec_append_response_roundtrip(benchmark::State& state) {
  const raft::message m{raft::node_id{2}, raft::node_id{1},
                        raft::append_response{raft::term_t{7}, true, raft::index_t{123456}, {}, {}, {}}};
  std::vector<std::byte> frame;
  raft::message back;
  for (auto _ : state) {
    frame.clear();
    raft::codec::encode_frame(m, frame);
    const auto ec = raft::codec::decode_frame(frame, back);
    benchmark::DoNotOptimize(ec);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(codec_append_response_roundtrip);

// ---- storage: append + flush (group commit) ------------------------------------------------------
//
// Each iteration appends a batch of `batch` 64-byte entries and awaits one flush(), as the
// node's persist loop does. Items are entries: with file storage and fsync on, the rate is
// (fsyncs per second) x (entries per fsync), which is the point of group commit.

std::vector<raft::log_entry> batch_of(std::size_t n, const raft::buffer& data) {
  return std::vector<raft::log_entry>(n, raft::log_entry{raft::term_t{1}, raft::index_t{0},
                                                         raft::entry_kind::command, data});
}

template <class Storage>
void run_append_flush(benchmark::State& state, Storage& storage) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const raft::buffer data = payload(64);
  std::vector<raft::log_entry> entries = batch_of(batch, data);
  asio::io_context io;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        std::uint64_t next = 1;
        for (auto _ : state) {
          for (auto& e : entries) e.index = raft::index_t{next++};
          storage.append(entries);
          co_await storage.flush();
        }
      },
      asio::detached);
  io.run();
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}

void memory_storage_append_flush(benchmark::State& state) {
  // A fresh storage per run: memory_storage keeps every entry.
  raft::memory_storage storage;
  (void)storage.load();
  run_append_flush(state, storage);
}
BENCHMARK(memory_storage_append_flush)->Arg(1)->Arg(16)->Arg(256);

std::filesystem::path scratch(const char* name) {
  const char* tmp = std::getenv("TMPDIR");
  return std::filesystem::path(tmp && *tmp ? tmp : "/tmp") /
         ("raft-micro-bench-" + std::to_string(::getpid()) + "-" + name);
}

void file_storage_append_flush(benchmark::State& state, bool fsync) {
  const auto dir = scratch(fsync ? "fsync" : "nofsync");
  std::filesystem::remove_all(dir);
  {
    raft::file_storage_options o;
    o.fsync = fsync;
    raft::file_storage storage(dir, o);
    (void)storage.load();
    run_append_flush(state, storage);
    const auto st = storage.stats();
    if (st.syncs) state.counters["entries_per_fsync"] = double(st.entries_written) / double(st.syncs);
    if (st.write_rounds)
      state.counters["entries_per_write"] = double(st.entries_written) / double(st.write_rounds);
  }
  std::filesystem::remove_all(dir);
}
void file_storage_append_flush_nofsync(benchmark::State& state) { file_storage_append_flush(state, false); }
void file_storage_append_flush_fsync(benchmark::State& state) { file_storage_append_flush(state, true); }
BENCHMARK(file_storage_append_flush_nofsync)->Arg(1)->Arg(16)->Arg(256)->UseRealTime();
BENCHMARK(file_storage_append_flush_fsync)->Arg(1)->Arg(16)->Arg(256)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
