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
//
// For a storage that also models raft::snapshot_storage, the suite checks snapshots too: none at
// first; write (in uneven pieces) + commit + open gives back the metadata and bytes through
// read_at at any offset and size, also after a reopen without a flush (commit is durable);
// commit resumes on the awaiting coroutine's executor; a writer destroyed before commit leaves
// nothing (and leaves the current snapshot current); a newer snapshot replaces an older one
// (also at the same index, also an empty one) while a reader of the older one still reads the
// older bytes; compact_through then load reports the base and only the later entries (a prefix,
// past the end, then appends from index + 1; a truncation after it); a compaction not flushed
// before a reopen is either lost or kept whole, with the unflushed appends after it lost or kept
// as a prefix; and the randomized sequence also commits snapshots and compacts.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "raft/concepts.hpp"
#include "raft/core/persistent_state.hpp"
#include "raft/core/snapshot.hpp"
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

/// Metadata of a test snapshot at `index`: the configuration varies with the index.
inline snapshot_meta snap_meta(std::uint64_t index, std::uint64_t term) {
  configuration c;
  c.voters = {node_id{1}, node_id{2}, node_id{3}};
  if (index % 2 == 0) c.learners = {node_id{4 + index % 5}};
  if (index % 3 == 0) c.outgoing = {node_id{1}, node_id{2}};
  return snapshot_meta{index_t{index}, term_t{term}, c};
}

/// Writes `bytes` as a snapshot described by `meta` (in pieces of the sizes in `pieces`, cycled,
/// and one empty write) and commits it.
template <class S>
void put_snapshot(S& s, const snapshot_meta& meta, std::span<const std::byte> bytes,
                  std::vector<std::size_t> pieces = {1, 7, 4096, 65536, 3, 100000}) {
  auto w = s.create_snapshot(meta);
  w.write(std::span<const std::byte>{});
  std::size_t at = 0, k = 0;
  while (at < bytes.size()) {
    const std::size_t n = std::min(pieces[k++ % pieces.size()], bytes.size() - at);
    w.write(bytes.subspan(at, n));
    at += n;
  }
  run(w.commit());
}

/// Reads a snapshot reader's whole contents with read_at, `piece` bytes at a time.
template <class R>
std::vector<std::byte> read_all(const R& r, std::size_t piece = 65536) {
  std::vector<std::byte> out(std::size_t(r.size()));
  std::uint64_t at = 0;
  while (at < out.size()) {
    const std::size_t want = std::min<std::uint64_t>(piece, out.size() - at);
    const std::size_t n = r.read_at(at, std::span<std::byte>(out.data() + at, want));
    REQUIRE(n == want);
    at += n;
  }
  std::byte extra[8];
  CHECK(r.read_at(r.size(), extra) == 0);
  return out;
}

/// The storage's current snapshot is `meta` with `bytes`.
template <class S>
void check_current(S& s, const snapshot_meta& meta, std::span<const std::byte> bytes) {
  auto r = s.open_snapshot();
  REQUIRE(r.has_value());
  CHECK(snapshot_meta((*r).meta()) == meta);
  REQUIRE((*r).size() == bytes.size());
  CHECK(read_all(*r) == std::vector<std::byte>(bytes.begin(), bytes.end()));
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

template <class Factory>
void run_snapshot_conformance(Factory make);

/// Runs the storage conformance checks on the storages `make()` gives places for (see the top of
/// this file). Call inside a doctest TEST_CASE.
template <class Factory>
void run_storage_conformance(Factory make) {
  namespace cd = conformance_detail;
  using std::span;
  using place_type = std::remove_reference_t<decltype(cd::deref(std::declval<decltype(make())&>()))>;
  using storage_type = std::remove_reference_t<decltype(std::declval<place_type&>().open())>;
  constexpr bool snapshots = snapshot_storage<storage_type>;

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

  if constexpr (snapshots) run_snapshot_conformance(make);

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
    // Every change requested, applied: the compaction base and the entries after it.
    index_t base{0};
    term_t base_term{0};
    std::vector<log_entry> model;
    std::optional<snapshot_meta> snap;  // the last committed snapshot (snapshot storages only)
    std::vector<std::byte> snap_bytes;
    std::uint64_t term = 1;
    auto last = [&] { return base + model.size(); };
    auto check_reopened = [&](auto& st) {
      const persistent_state ps = st.load();
      CHECK(ps.base_index == base);
      CHECK(ps.base_term == base_term);
      cd::check_same(ps.entries, model);
      if constexpr (snapshots) {
        if (snap)
          cd::check_current(st, *snap, snap_bytes);
        else
          CHECK_FALSE(st.open_snapshot().has_value());
      }
    };
    for (int step = 0; step < 300; ++step) {
      const auto r = rng() % 100;
      if (r < 45) {
        const auto n = 1 + rng() % 20;
        if (rng() % 4 == 0) ++term;
        const auto batch = cd::entries(last().next(), n, term_t{term}, 1 + rng() % 2000);
        s->append(batch);
        model.insert(model.end(), batch.begin(), batch.end());
      } else if (r < 60) {
        const auto at = base + rng() % (model.size() + 3);
        s->truncate_after(at);
        if (at < last()) model.resize(at - base);
        ++term;  // a truncation comes with a new leader
      } else if (r < 82) {
        cd::flush(*s);
      } else if (r < 92 || !snapshots) {
        cd::flush(*s);
        s = &place.open();
        check_reopened(*s);
      } else if constexpr (snapshots) {
        // A snapshot at or after the current one, sometimes past the end of the log, then
        // (usually) a compaction through an index it covers, as the node does.
        const index_t from = snap ? std::max(snap->index, base.next()) : base.next();
        const index_t hi = std::max(from, last() + 3);
        const index_t at = from + rng() % (hi - from + 1);
        const term_t at_term = at <= last() && at > base ? model[at - base - 1].term : term_t{term};
        snap = cd::snap_meta(at.value, at_term.value);
        snap_bytes.clear();
        if (rng() % 4 != 0) {
          const buffer b = cd::payload(rng(), 1 + rng() % 20000);
          snap_bytes.assign(b.bytes().begin(), b.bytes().end());
        }
        cd::put_snapshot(*s, *snap, snap_bytes, {1 + rng() % 5000, 1 + rng() % 70000});
        if (rng() % 3 != 0) {
          const index_t through = base + 1 + rng() % (at - base);  // in (base, at]
          const term_t through_term =
              through <= last() ? model[through - base - 1].term : (through == at ? at_term : term_t{term});
          s->compact_through(through, through_term);
          if (through >= last())
            model.clear();
          else
            model.erase(model.begin(), model.begin() + std::ptrdiff_t(through - base));
          base = through;
          base_term = through_term;
        }
      }
    }
    cd::flush(*s);
    check_reopened(place.open());
  }
}

/// The snapshot part of the suite (run by run_storage_conformance for snapshot storages).
template <class Factory>
void run_snapshot_conformance(Factory make) {
  namespace cd = conformance_detail;
  using place_type = std::remove_reference_t<decltype(cd::deref(std::declval<decltype(make())&>()))>;
  using storage_type = std::remove_reference_t<decltype(std::declval<place_type&>().open())>;
  static_assert(snapshot_storage<storage_type>);

  SUBCASE("snapshot: write, commit, open, read_at at any offset and size") {
    auto holder = make();
    auto& place = cd::deref(holder);
    const buffer data = cd::payload(77, 1'500'000);
    const auto bytes = data.bytes();
    const snapshot_meta meta = cd::snap_meta(10, 3);
    {
      auto& s = place.open();
      (void)s.load();
      CHECK_FALSE(s.open_snapshot().has_value());
      auto w = s.create_snapshot(meta);
      w.write(bytes.first(1));
      w.write(bytes.subspan(1, 4095));
      w.write(std::span<const std::byte>{});
      w.write(bytes.subspan(4096, 1'100'000));  // larger than a typical write buffer
      w.write(bytes.subspan(1'104'096));
      CHECK_FALSE(s.open_snapshot().has_value());  // not before commit
      asio::io_context io;
      bool done = false, on_executor = false;
      std::exception_ptr error;
      asio::co_spawn(
          io,
          [&]() -> asio::awaitable<void> {
            co_await w.commit();
            on_executor = io.get_executor().running_in_this_thread();
          },
          [&](std::exception_ptr e) {
            error = e;
            done = true;
          });
      io.run_for(std::chrono::seconds(60));
      REQUIRE(done);
      if (error) std::rethrow_exception(error);
      CHECK(on_executor);  // commit resumed the coroutine on its own executor

      auto r = s.open_snapshot();
      REQUIRE(r.has_value());
      CHECK(snapshot_meta((*r).meta()) == meta);
      REQUIRE((*r).size() == bytes.size());
      const std::uint64_t size = bytes.size();
      std::vector<std::byte> buf(size + 10);
      for (const std::uint64_t offset : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{4095}, std::uint64_t{4096},
                                         std::uint64_t{1} << 20, size - 4097, size - 1, size, size + 100}) {
        for (const std::size_t len : {std::size_t{0}, std::size_t{1}, std::size_t{13}, std::size_t{4096},
                                      std::size_t{65536}, std::size_t(size + 10)}) {
          INFO("read_at(" << offset << ", " << len << " bytes)");
          const std::size_t want = offset >= size ? 0 : std::size_t(std::min<std::uint64_t>(len, size - offset));
          std::fill(buf.begin(), buf.end(), std::byte{0xEE});
          const std::size_t n = (*r).read_at(offset, std::span<std::byte>(buf.data(), len));
          REQUIRE(n == want);
          CHECK(std::equal(buf.begin(), buf.begin() + std::ptrdiff_t(n), bytes.begin() + std::ptrdiff_t(offset)));
          if (n < buf.size()) CHECK(buf[n] == std::byte{0xEE});  // nothing written past what it returned
        }
      }
      CHECK(cd::read_all(*r, 4097) == std::vector<std::byte>(bytes.begin(), bytes.end()));
    }
    // Durable at commit: a reopen without any flush still has it.
    auto& s = place.open();
    CHECK(s.load().entries.empty());
    cd::check_current(s, meta, bytes);
  }

  SUBCASE("snapshot: a writer destroyed before commit leaves nothing") {
    auto holder = make();
    auto& place = cd::deref(holder);
    const buffer a = cd::payload(1, 5000), b = cd::payload(2, 7000);
    {
      auto& s = place.open();
      (void)s.load();
      {
        auto w = s.create_snapshot(cd::snap_meta(5, 1));
        w.write(a.bytes());
      }
      CHECK_FALSE(s.open_snapshot().has_value());
    }
    {
      auto& s = place.open();
      (void)s.load();
      CHECK_FALSE(s.open_snapshot().has_value());
      cd::put_snapshot(s, cd::snap_meta(5, 1), a.bytes());
      {
        auto w = s.create_snapshot(cd::snap_meta(9, 2));  // a newer one, abandoned
        w.write(b.bytes());
        auto moved = std::move(w);  // writers are movable; the moved-to one is abandoned too
        moved.write(b.bytes());
      }
      cd::check_current(s, cd::snap_meta(5, 1), a.bytes());
    }
    auto& s = place.open();
    (void)s.load();
    cd::check_current(s, cd::snap_meta(5, 1), a.bytes());
  }

  SUBCASE("snapshot: a newer snapshot replaces the older; an open reader keeps the older bytes") {
    auto holder = make();
    auto& place = cd::deref(holder);
    const buffer a = cd::payload(10, 300'000), b = cd::payload(20, 123'457), c = cd::payload(30, 999);
    auto& s = place.open();
    (void)s.load();
    cd::put_snapshot(s, cd::snap_meta(10, 1), a.bytes());
    auto old_reader = s.open_snapshot();
    REQUIRE(old_reader.has_value());
    cd::put_snapshot(s, cd::snap_meta(20, 2), b.bytes());
    cd::check_current(s, cd::snap_meta(20, 2), b.bytes());
    // The reader opened before still reads the older snapshot, whole.
    CHECK(snapshot_meta((*old_reader).meta()) == cd::snap_meta(10, 1));
    REQUIRE((*old_reader).size() == a.size());
    CHECK(cd::read_all(*old_reader, 7777) == std::vector<std::byte>(a.bytes().begin(), a.bytes().end()));
    // Same index again (another term: a snapshot installed from a leader), then an empty one.
    auto second = s.open_snapshot();
    cd::put_snapshot(s, cd::snap_meta(20, 3), c.bytes());
    cd::check_current(s, cd::snap_meta(20, 3), c.bytes());
    CHECK(cd::read_all(*second) == std::vector<std::byte>(b.bytes().begin(), b.bytes().end()));
    cd::put_snapshot(s, cd::snap_meta(21, 3), std::span<const std::byte>{});
    cd::check_current(s, cd::snap_meta(21, 3), std::span<const std::byte>{});
    auto& again = place.open();
    (void)again.load();
    cd::check_current(again, cd::snap_meta(21, 3), std::span<const std::byte>{});
  }

  SUBCASE("snapshot: compact_through, then load reports the base and the later entries") {
    auto holder = make();
    auto& place = cd::deref(holder);
    std::vector<log_entry> log = cd::entries(index_t{1}, 100, term_t{1});
    const auto tail = cd::entries(index_t{101}, 10, term_t{2});
    const buffer img = cd::payload(60, 2000);
    {
      auto& s = place.open();
      (void)s.load();
      s.append(log);
      cd::flush(s);
      cd::put_snapshot(s, cd::snap_meta(60, 1), img.bytes());
      s.compact_through(index_t{60}, term_t{1});
      s.compact_through(index_t{40}, term_t{1});  // at or below the base: nothing
      s.append(tail);  // appends after a compaction in the same flush
      cd::flush(s);
    }
    std::vector<log_entry> want(log.begin() + 60, log.end());
    want.insert(want.end(), tail.begin(), tail.end());
    {
      auto& s = place.open();
      const persistent_state ps = s.load();
      CHECK(ps.base_index == index_t{60});
      CHECK(ps.base_term == term_t{1});
      cd::check_same(ps.entries, want);
      cd::check_current(s, cd::snap_meta(60, 1), img.bytes());
      // A truncation above the base, then appends, then a compaction through what remains.
      s.truncate_after(index_t{80});
      const auto more = cd::entries(index_t{81}, 5, term_t{3});
      s.append(more);
      want.resize(20);
      want.insert(want.end(), more.begin(), more.end());
      cd::flush(s);
      cd::put_snapshot(s, cd::snap_meta(85, 3), img.bytes().first(10));
      s.compact_through(index_t{85}, term_t{3});  // exactly the last entry: the log is empty
      cd::flush(s);
    }
    {
      auto& s = place.open();
      const persistent_state ps = s.load();
      CHECK(ps.base_index == index_t{85});
      CHECK(ps.base_term == term_t{3});
      CHECK(ps.entries.empty());
      // Past the end (a snapshot from a leader that is far ahead): the log continues after it.
      cd::put_snapshot(s, cd::snap_meta(200, 4), img.bytes());
      s.compact_through(index_t{200}, term_t{4});
      const auto after = cd::entries(index_t{201}, 7, term_t{4});
      s.append(after);
      cd::flush(s);
      want = after;
    }
    {
      auto& s = place.open();
      const persistent_state ps = s.load();
      CHECK(ps.base_index == index_t{200});
      CHECK(ps.base_term == term_t{4});
      cd::check_same(ps.entries, want);
      // Entries appended, not flushed, then compaction past them: one flush.
      const auto loose = cd::entries(index_t{208}, 3, term_t{4});
      s.append(loose);
      cd::put_snapshot(s, cd::snap_meta(300, 5), img.bytes());
      s.compact_through(index_t{300}, term_t{5});
      const auto next = cd::entries(index_t{301}, 2, term_t{5});
      s.append(next);
      cd::flush(s);
      want = next;
    }
    auto& s = place.open();
    const persistent_state ps = s.load();
    CHECK(ps.base_index == index_t{300});
    CHECK(ps.base_term == term_t{5});
    cd::check_same(ps.entries, want);
    cd::check_current(s, cd::snap_meta(300, 5), img.bytes());
  }

  SUBCASE("snapshot: a reopen after a compaction and appends that were not flushed") {
    const auto log = cd::entries(index_t{1}, 50, term_t{1});
    const buffer img = cd::payload(5, 100);
    // Through the middle of the log, its last entry, and past its end.
    for (const std::uint64_t through : {std::uint64_t{30}, std::uint64_t{50}, std::uint64_t{70}}) {
      CAPTURE(through);
      const auto later = cd::entries(index_t{std::max<std::uint64_t>(through, 50) + 1}, 5, term_t{2});
      std::map<std::uint64_t, log_entry> requested;  // every entry ever requested, by index
      for (const auto& e : log) requested[e.index.value] = e;
      for (const auto& e : later) requested[e.index.value] = e;
      auto holder = make();
      auto& place = cd::deref(holder);
      {
        auto& s = place.open();
        (void)s.load();
        s.append(log);
        cd::flush(s);
        cd::put_snapshot(s, cd::snap_meta(through, 1), img.bytes());
        s.compact_through(index_t{through}, term_t{1});
        s.append(later);
        // no flush: a crash
      }
      auto& s = place.open();
      const persistent_state ps = s.load();
      cd::check_current(s, cd::snap_meta(through, 1), img.bytes());  // committed: kept
      // The compaction is lost (base 0) or kept whole; the appends after it are lost or kept as
      // a prefix. Whatever is there is what was requested, index by index, from base + 1 on.
      INFO("base " << ps.base_index << ", " << ps.entries.size() << " entries");
      REQUIRE((ps.base_index == index_t{0} || ps.base_index == index_t{through}));
      CHECK(ps.base_term == (ps.base_index == index_t{0} ? term_t{0} : term_t{1}));
      for (std::size_t k = 0; k < ps.entries.size(); ++k) {
        const index_t i = ps.base_index + 1 + k;
        INFO("entry at index " << i);
        const auto it = requested.find(i.value);
        REQUIRE(it != requested.end());
        CHECK(ps.entries[k].index == i);
        CHECK(ps.entries[k].term == it->second.term);
        CHECK(ps.entries[k].kind == it->second.kind);
        CHECK(ps.entries[k].data == it->second.data);
      }
      // What was flushed is not lost: without the compaction, the whole flushed log is there.
      if (ps.base_index == index_t{0}) CHECK(ps.entries.size() >= 50);
    }
  }

  SUBCASE("snapshot: a commit is durable without any flush, together with what was flushed") {
    auto holder = make();
    auto& place = cd::deref(holder);
    const auto log = cd::entries(index_t{1}, 20, term_t{1});
    const buffer img = cd::payload(9, 40'000);
    {
      auto& s = place.open();
      (void)s.load();
      s.save_hard_state(hard_state{term_t{2}, node_id{1}});
      s.append(log);
      cd::flush(s);
      s.append(cd::entries(index_t{21}, 3, term_t{2}));  // not flushed
      cd::put_snapshot(s, cd::snap_meta(15, 1), img.bytes());
    }
    auto& s = place.open();
    const persistent_state ps = s.load();
    CHECK(ps.state == hard_state{term_t{2}, node_id{1}});
    CHECK(ps.base_index == index_t{0});
    REQUIRE(ps.entries.size() >= 20);
    cd::check_same(std::vector<log_entry>(ps.entries.begin(), ps.entries.begin() + 20), log);
    cd::check_current(s, cd::snap_meta(15, 1), img.bytes());
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
