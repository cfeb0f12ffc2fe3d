// raft/testing/storage_conformance.hpp - a conformance suite for raft::storage models.
//
// Run it on your own storage type from inside a doctest TEST_CASE (it uses doctest's SUBCASE,
// CHECK and REQUIRE: include <doctest/doctest.h> before this header, and call it only inside a
// test case; without doctest, the header only declares a stub that fails to compile when used):
//
//   struct my_place {                       // one "place" where a storage keeps its data
//     std::optional<my_storage> s;
//     my_storage& open() { s.reset(); s.emplace(dir); return *s; }   // close, then reopen
//     temp_dir dir;
//   };
//   TEST_CASE("my_storage conforms") {
//     raft::testing::run_storage_conformance([] { return std::make_unique<my_place>(); });
//   }
//
// The factory `make()` returns a fresh, empty place, by value or by (smart) pointer. A place has
// `open()`, which returns a reference to a storage over that place: it first closes (destroys)
// the storage it opened before, if any, the way a process ends (changes not flushed may be
// lost), then opens the same data again. The suite calls `load()` first on every opened storage.
// For raft::memory_storage, `memory_storage_place` below keeps the object and crash()es it.
//
// What is checked: an empty load; save_hard_state durable across a reopen; append + flush +
// reopen gives back exactly the entries (term, index, kind, payload bytes, 0-byte and 1 MiB
// payloads); truncate_after then append; truncation of entries not yet flushed; a truncation
// past the end removes nothing; many flushes; thousands of entries (for a segmented storage,
// make the segments small so they are crossed); a truncation requested while a flush is in
// progress belongs to the next flush; flush resumes on the awaiting coroutine's executor; and
// a randomized sequence of appends, truncations, flushes and reopens against a model (the seed
// is printed; set RAFT_CONFORMANCE_SEED to replay one).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "raft/concepts.hpp"
#include "raft/core/persistent_state.hpp"
#include "raft/storage/memory.hpp"


namespace raft {
inline namespace v1 {
namespace testing {

/// A place for raft::memory_storage: the object is kept; reopening it is a crash() (what was not
/// flushed is lost), as a process restart would see it.
class memory_storage_place {
 public:
  memory_storage& open() {
    storage_.crash();
    return storage_;
  }

 private:
  memory_storage storage_;
};

#ifdef DOCTEST_LIBRARY_INCLUDED

namespace conformance_detail {

template <class P>
auto& deref(P& p) {
  if constexpr (requires { p.open(); })
    return p;
  else
    return *p;
}

/// Runs `task` on a fresh io_context until it completes; rethrows what it threw.
inline void run(asio::awaitable<void> task) {
  asio::io_context io;
  bool done = false;
  std::exception_ptr error;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e) {
    error = e;
    done = true;
  });
  io.run_for(std::chrono::seconds(60));
  REQUIRE_MESSAGE(done, "a storage operation did not complete within 60 s");
  if (error) std::rethrow_exception(error);
}

template <class S>
void flush(S& s) {
  run([](S& st) -> asio::awaitable<void> { co_await st.flush(); }(s));
}

inline buffer payload(std::uint64_t seed, std::size_t size) {
  std::vector<std::byte> bytes(size);
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& b : bytes) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = std::byte(x);
  }
  return buffer{std::span<const std::byte>(bytes)};
}

/// `count` entries from `first`, of term `term`, with varied kinds and sizes.
inline std::vector<log_entry> entries(index_t first, std::size_t count, term_t term, std::size_t max_size = 300) {
  std::vector<log_entry> out;
  for (std::size_t k = 0; k < count; ++k) {
    const index_t i = first + k;
    const auto kind = static_cast<entry_kind>(i.value % 7 == 0 ? 1 : i.value % 11 == 0 ? 2 : 0);
    const std::size_t size = (i.value * 37 + term.value * 11) % (max_size + 1);
    out.push_back(log_entry{term, i, kind, payload(i.value * 1000003 + term.value, size)});
  }
  return out;
}

inline void check_same(const std::vector<log_entry>& got, const std::vector<log_entry>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t k = 0; k < got.size(); ++k) {
    INFO("entry " << k << " (index " << want[k].index << ")");
    CHECK(got[k].index == want[k].index);
    CHECK(got[k].term == want[k].term);
    CHECK(got[k].kind == want[k].kind);
    CHECK(got[k].data.size() == want[k].data.size());
    CHECK(got[k].data == want[k].data);
  }
}

}  // namespace conformance_detail

/// Runs the storage conformance checks on the storages `make()` gives places for (see the top of
/// this file). Call inside a doctest TEST_CASE.
template <class Factory>
void run_storage_conformance(Factory make) {
  namespace cd = conformance_detail;
  using std::span;

  SUBCASE("an empty storage loads empty") {
    auto holder = make();
    auto& place = cd::deref(holder);
    auto& s = place.open();
    static_assert(storage<std::remove_reference_t<decltype(s)>>);
    const persistent_state ps = s.load();
    CHECK(ps.state == hard_state{});
    CHECK(ps.base_index == index_t{0});
    CHECK(ps.base_term == term_t{0});
    CHECK(ps.entries.empty());
    cd::flush(s);  // nothing to flush: completes
    CHECK(place.open().load().entries.empty());
  }

  SUBCASE("save_hard_state is durable when it returns") {
    auto holder = make();
    auto& place = cd::deref(holder);
    {
      auto& s = place.open();
      (void)s.load();
      s.save_hard_state(hard_state{term_t{5}, node_id{3}});
    }
    {
      auto& s = place.open();
      CHECK(s.load().state == hard_state{term_t{5}, node_id{3}});
      s.save_hard_state(hard_state{term_t{6}, no_node});
      s.save_hard_state(hard_state{term_t{7}, node_id{2}});
    }
    CHECK(place.open().load().state == hard_state{term_t{7}, node_id{2}});
  }

  SUBCASE("append, flush, reopen gives back exactly the entries") {
    auto holder = make();
    auto& place = cd::deref(holder);
    std::vector<log_entry> want;
    {
      auto& s = place.open();
      (void)s.load();
      s.save_hard_state(hard_state{term_t{3}, node_id{1}});
      want.push_back(log_entry{term_t{1}, index_t{1}, entry_kind::configuration, cd::payload(1, 40)});
      want.push_back(log_entry{term_t{1}, index_t{2}, entry_kind::noop, buffer{}});
      want.push_back(log_entry{term_t{2}, index_t{3}, entry_kind::command, buffer{}});  // 0 bytes
      want.push_back(log_entry{term_t{2}, index_t{4}, entry_kind::command, cd::payload(4, 1 << 20)});  // 1 MiB
      for (auto& e : cd::entries(index_t{5}, 100, term_t{3})) want.push_back(e);
      s.append(span<const log_entry>(want).first(3));
      s.append(span<const log_entry>(want).subspan(3));
      cd::flush(s);
    }
    auto& s = place.open();
    const persistent_state ps = s.load();
    CHECK(ps.state == hard_state{term_t{3}, node_id{1}});
    CHECK(ps.base_index == index_t{0});
    cd::check_same(ps.entries, want);
  }

  SUBCASE("truncate_after, append, flush, reopen") {
    auto holder = make();
    auto& place = cd::deref(holder);
    std::vector<log_entry> want = cd::entries(index_t{1}, 20, term_t{1});
    {
      auto& s = place.open();
      (void)s.load();
      s.append(want);
      cd::flush(s);
      s.truncate_after(index_t{25});  // past the end: removes nothing
      s.truncate_after(index_t{12});
      want.resize(12);
      const auto more = cd::entries(index_t{13}, 13, term_t{2});
      s.append(more);
      want.insert(want.end(), more.begin(), more.end());
      cd::flush(s);
    }
    {
      auto& s = place.open();
      cd::check_same(s.load().entries, want);
      // Truncating entries appended but not yet flushed, then more truncations and appends, all
      // in one flush.
      const auto a = cd::entries(index_t{26}, 10, term_t{3});
      s.append(a);
      s.truncate_after(index_t{30});
      const auto b = cd::entries(index_t{31}, 5, term_t{4});
      s.append(b);
      s.truncate_after(index_t{20});  // below what was flushed
      const auto c = cd::entries(index_t{21}, 4, term_t{5});
      s.append(c);
      want.resize(20);
      want.insert(want.end(), c.begin(), c.end());
      cd::flush(s);
    }
    {
      auto& s = place.open();
      cd::check_same(s.load().entries, want);
      s.truncate_after(index_t{0});  // everything
      cd::flush(s);
    }
    CHECK(place.open().load().entries.empty());
  }

  SUBCASE("many flushes, many entries") {
    auto holder = make();
    auto& place = cd::deref(holder);
    std::vector<log_entry> want;
    {
      auto& s = place.open();
      (void)s.load();
      index_t next{1};
      for (std::uint64_t round = 1; round <= 40; ++round) {
        const auto batch = cd::entries(next, round * 3, term_t{round}, 700);
        s.append(batch);
        want.insert(want.end(), batch.begin(), batch.end());
        next = next + batch.size();
        cd::flush(s);
        if (round % 10 == 0) cd::flush(s);  // an empty flush
      }
    }
    {
      auto& s = place.open();
      cd::check_same(s.load().entries, want);
      // Cut deep into the log (across segments, for a segmented storage), then continue.
      s.truncate_after(index_t{100});
      want.resize(100);
      const auto more = cd::entries(index_t{101}, 500, term_t{50}, 700);
      s.append(more);
      want.insert(want.end(), more.begin(), more.end());
      cd::flush(s);
    }
    cd::check_same(place.open().load().entries, want);
  }

  SUBCASE("a truncation requested during a flush belongs to the next flush") {
    auto holder = make();
    auto& place = cd::deref(holder);
    const auto first = cd::entries(index_t{1}, 10, term_t{1});
    {
      auto& s = place.open();
      (void)s.load();
      s.append(first);
      asio::io_context io;
      bool started = false, done = false, on_executor = false;
      std::exception_ptr error;
      asio::co_spawn(
          io,
          [&]() -> asio::awaitable<void> {
            started = true;
            co_await s.flush();
            on_executor = io.get_executor().running_in_this_thread();
          },
          [&](std::exception_ptr e) {
            error = e;
            done = true;
          });
      while (!started) io.run_one();
      s.truncate_after(index_t{5});  // the flush may still be running
      io.run_for(std::chrono::seconds(60));
      REQUIRE(done);
      if (error) std::rethrow_exception(error);
      CHECK(on_executor);  // flush resumed the coroutine on its own executor
    }
    {
      // The truncation was not flushed: the log holds 1..10 (or 1..5 for a storage that made the
      // truncation durable at once); never anything else.
      auto& s = place.open();
      const auto got = s.load().entries;
      CHECK((got.size() == 10 || got.size() == 5));
      cd::check_same(got, std::vector<log_entry>(first.begin(), first.begin() + std::ptrdiff_t(got.size())));
    }
    {
      // Now with the next flush: truncation, then appends, in order.
      auto& s = place.open();
      const auto got = s.load().entries;
      s.truncate_after(index_t{5});
      const auto more = cd::entries(index_t{6}, 3, term_t{2});
      s.append(more);
      cd::flush(s);
      std::vector<log_entry> want(first.begin(), first.begin() + 5);
      want.insert(want.end(), more.begin(), more.end());
      cd::check_same(place.open().load().entries, want);
    }
  }

  SUBCASE("randomized appends, truncations, flushes and reopens against a model") {
    std::uint64_t seed = std::random_device{}();
    if (const char* env = std::getenv("RAFT_CONFORMANCE_SEED")) seed = std::strtoull(env, nullptr, 10);
    std::printf("storage conformance: random seed %llu (RAFT_CONFORMANCE_SEED=%llu replays it)\n",
                static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
    INFO("seed " << seed);
    std::mt19937_64 rng(seed);
    auto holder = make();
    auto& place = cd::deref(holder);
    auto* s = &place.open();
    (void)s->load();
    std::vector<log_entry> model;   // every change requested, applied
    std::uint64_t term = 1;
    for (int step = 0; step < 300; ++step) {
      const auto r = rng() % 100;
      if (r < 45) {
        const auto n = 1 + rng() % 20;
        if (rng() % 4 == 0) ++term;
        const auto batch = cd::entries(index_t{model.size() + 1}, n, term_t{term}, 1 + rng() % 2000);
        s->append(batch);
        model.insert(model.end(), batch.begin(), batch.end());
      } else if (r < 60) {
        const auto at = model.empty() ? 0 : rng() % (model.size() + 3);
        s->truncate_after(index_t{at});
        if (at < model.size()) model.resize(at);
        ++term;  // a truncation comes with a new leader
      } else if (r < 90) {
        cd::flush(*s);
      } else {
        cd::flush(*s);
        s = &place.open();
        cd::check_same(s->load().entries, model);
      }
    }
    cd::flush(*s);
    cd::check_same(place.open().load().entries, model);
  }
}

#else  // no doctest: the suite needs its assertion macros

template <class Factory>
void run_storage_conformance(Factory) {
  static_assert(sizeof(Factory) == 0,
                "raft::testing::run_storage_conformance needs doctest: include <doctest/doctest.h> "
                "before raft/testing/storage_conformance.hpp");
}

#endif  // DOCTEST_LIBRARY_INCLUDED

}  // namespace testing
}  // namespace v1
}  // namespace raft
