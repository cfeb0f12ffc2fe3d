// raft::shared_log: the storage conformance suite run on one group (reopening the whole log, or
// only the group's handle, or with other groups of the log writing between the suite's calls),
// group commit across groups, segment reclamation, remove_group, crash recovery (torn tail,
// corruption, failed sync), a randomized test of several groups against a model, and a 3-node
// cluster whose nodes each keep their log in a group of their own shared_log.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "raft/raft.hpp"
#include "raft/storage/shared_log.hpp"
#include "raft/testing/kv_state_machine.hpp"
#include "raft/testing/storage_conformance.hpp"
#include "storage_support.hpp"

using namespace raft;
namespace cd = raft::testing::conformance_detail;

namespace {

std::vector<std::filesystem::path> segment_files(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  for (const auto& de : std::filesystem::directory_iterator(dir))
    if (detail::shared_format::parse_segment_name(de.path().filename().string())) out.push_back(de.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::uint64_t bytes_in(const std::filesystem::path& p) { return std::filesystem::file_size(p); }

void flip_byte(const std::filesystem::path& p, std::uint64_t at) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(std::streamoff(at));
  char c = 0;
  f.read(&c, 1);
  c = char(c ^ 0x5A);
  f.seekp(std::streamoff(at));
  f.write(&c, 1);
}

void truncate_file(const std::filesystem::path& p, std::uint64_t size) { std::filesystem::resize_file(p, size); }

/// The byte offsets of the records in a segment file (after its header; round records too),
/// up to the zeros written ahead of the tail, if any.
std::vector<std::uint64_t> record_offsets(const std::filesystem::path& p) {
  const auto bytes = detail::read_whole_file(p);
  std::vector<std::uint64_t> out;
  for (std::size_t at = detail::shared_format::segment_header_bytes; at + 8 <= bytes.size();) {
    const auto length = detail::load_u32(bytes.data() + at);
    if (length == 0) break;
    out.push_back(at);
    at += 8 + length;
  }
  return out;
}

/// Where the records of a segment file end (zeros written ahead may follow).
std::uint64_t records_end(const std::filesystem::path& p) {
  const auto offsets = record_offsets(p);
  if (offsets.empty()) return detail::shared_format::segment_header_bytes;
  const auto bytes = detail::read_whole_file(p);
  return offsets.back() + 8 + detail::load_u32(bytes.data() + offsets.back());
}

/// The type of the record at `at` of a segment file.
detail::shared_format::record_type record_type_at(const std::filesystem::path& p, std::uint64_t at) {
  const auto bytes = detail::read_whole_file(p);
  return static_cast<detail::shared_format::record_type>(bytes.at(at + 16));
}

/// What opening the log in `dir` throws, if it refuses the directory.
std::optional<file_storage_corruption> refusal(const std::filesystem::path& dir, shared_log_options o = {}) {
  try {
    shared_log log(dir, std::move(o));
  } catch (const file_storage_corruption& e) {
    return e;
  }
  return std::nullopt;
}

/// Two rounds: group 1 appends and flushes `e1`, then group 2 `e2`.
void write_two_groups(const std::filesystem::path& dir, const std::vector<log_entry>& e1,
                      const std::vector<log_entry>& e2) {
  shared_log log(dir);
  auto a = log.open_group(raft::group_id{1}), b = log.open_group(raft::group_id{2});
  (void)a.load();
  (void)b.load();
  a.append(e1);
  cd::flush(a);
  b.append(e2);
  cd::flush(b);
}

/// Overwrites bytes [at, at + n) of a file with zeros: a page that never reached the disk.
void zero_bytes(const std::filesystem::path& p, std::uint64_t at, std::size_t n) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(std::streamoff(at));
  const std::string zeros(n, '\0');
  f.write(zeros.data(), std::streamsize(n));
}

// ---- conformance places ------------------------------------------------------------------------

/// Reopens the whole shared_log on every open() and hands out one group's handle.
class log_place {
 public:
  explicit log_place(shared_log_options o) : options_(std::move(o)) {}
  shared_log_group& open() {
    group_.reset();
    log_.reset();
    log_.emplace(dir_.path() / "data", options_);
    group_.emplace(log_->open_group(raft::group_id{7}));
    return *group_;
  }

 private:
  storage_test::temp_dir dir_;
  shared_log_options options_;
  std::optional<shared_log> log_;
  std::optional<shared_log_group> group_;
};

/// Keeps the log open and reopens only the group's handle: load() then reads the entries back
/// from the segments (the path a group reopened in a running process takes).
class handle_place {
 public:
  explicit handle_place(shared_log_options o) : log_(dir_.path() / "data", std::move(o)) {}
  shared_log_group& open() {
    group_.reset();
    group_.emplace(log_.open_group(raft::group_id{7}));
    return *group_;
  }

 private:
  storage_test::temp_dir dir_;
  shared_log log_;
  std::optional<shared_log_group> group_;
};

/// Other groups of the same log, each changed (and flushed) at random between the suite's calls,
/// and checked against a model whenever the log is reopened.
class neighbours {
 public:
  explicit neighbours(std::uint64_t seed) : rng_(seed) {}

  void open(shared_log& log) {
    handles_.clear();
    for (std::uint64_t id = 1; id <= 3; ++id) {
      auto& h = handles_.emplace_back(log.open_group(raft::group_id{id}));
      const persistent_state ps = h.load();
      const model& m = models_[id];
      CHECK(ps.state == m.hs);
      CHECK(ps.base_index == m.base);
      CHECK(ps.base_term == m.base_term);
      cd::check_same(ps.entries, m.entries);
    }
  }

  void close() { handles_.clear(); }

  /// One random change of one neighbour, made durable.
  void act() {
    const std::uint64_t id = 1 + rng_() % 3;
    shared_log_group& h = handles_[id - 1];
    model& m = models_[id];
    const auto r = rng_() % 10;
    const index_t last = m.base + m.entries.size();
    if (r < 6) {
      const auto batch = cd::entries(last.next(), 1 + rng_() % 4, term_t{m.term}, 200);
      h.append(batch);
      m.entries.insert(m.entries.end(), batch.begin(), batch.end());
    } else if (r < 7 && last > m.base) {
      const index_t at = m.base + rng_() % (last - m.base);
      h.truncate_after(at);
      m.entries.resize(at - m.base);
      ++m.term;
    } else if (r < 9 && last > m.base) {
      const index_t through = m.base + 1 + rng_() % (last - m.base);
      const term_t t = m.entries[through - m.base - 1].term;
      h.compact_through(through, t);
      m.entries.erase(m.entries.begin(), m.entries.begin() + std::ptrdiff_t(through - m.base));
      m.base = through;
      m.base_term = t;
    } else {
      m.hs = hard_state{term_t{m.hs.term.value + 1}, node_id{id}};
      h.save_hard_state(m.hs);
    }
    cd::flush(h);
  }

 private:
  struct model {
    hard_state hs;
    index_t base{0};
    term_t base_term{0};
    std::vector<log_entry> entries;
    std::uint64_t term = 1;
  };
  std::mt19937_64 rng_;
  std::map<std::uint64_t, model> models_;
  std::vector<shared_log_group> handles_;
};

/// Group 7's storage, with the neighbours changing their groups around every call.
class noisy_group {
 public:
  noisy_group(shared_log_group& g, neighbours& n) : g_(g), n_(n) {}
  persistent_state load() {
    n_.act();
    return g_.load();
  }
  void save_hard_state(const hard_state& hs) {
    n_.act();
    g_.save_hard_state(hs);
  }
  void append(std::span<const log_entry> entries) {
    g_.append(entries);
    n_.act();
  }
  void truncate_after(index_t i) {
    n_.act();
    g_.truncate_after(i);
  }
  asio::awaitable<void> flush() {
    n_.act();
    co_await g_.flush();
  }
  void compact_through(index_t i, term_t t) {
    g_.compact_through(i, t);
    n_.act();
  }
  shared_log_snapshot_writer create_snapshot(const snapshot_meta& meta) {
    n_.act();
    return g_.create_snapshot(meta);
  }
  std::optional<shared_log_snapshot_reader> open_snapshot() const { return g_.open_snapshot(); }

 private:
  shared_log_group& g_;
  neighbours& n_;
};

/// The seed of a randomized test here: RAFT_SHARED_LOG_SEED if set, else a fresh one; printed.
std::uint64_t shared_log_seed(const char* what) {
  std::uint64_t seed = std::random_device{}();
  if (const char* env = std::getenv("RAFT_SHARED_LOG_SEED")) seed = std::strtoull(env, nullptr, 10);
  std::printf("shared_log: %s: random seed %llu (RAFT_SHARED_LOG_SEED=%llu replays it)\n", what,
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  return seed;
}

class noisy_place {
 public:
  explicit noisy_place(shared_log_options o)
      : options_(std::move(o)), neighbours_(shared_log_seed("the neighbour groups' writes")) {}
  noisy_group& open() {
    wrapper_.reset();
    group_.reset();
    neighbours_.close();
    log_.reset();
    log_.emplace(dir_.path() / "data", options_);
    neighbours_.open(*log_);
    group_.emplace(log_->open_group(raft::group_id{7}));
    wrapper_.emplace(*group_, neighbours_);
    return *wrapper_;
  }
  ~noisy_place() {
    wrapper_.reset();
    group_.reset();
    neighbours_.close();  // handles go before the log
  }

 private:
  storage_test::temp_dir dir_;
  shared_log_options options_;
  std::optional<shared_log> log_;
  neighbours neighbours_;
  std::optional<shared_log_group> group_;
  std::optional<noisy_group> wrapper_;
};

static_assert(snapshot_storage<noisy_group>);

shared_log_options small_segments(bool fsync, std::size_t bytes = 16 << 10) {
  shared_log_options o;
  o.fsync = fsync;
  o.segment_bytes = bytes;
  return o;
}

}  // namespace

TEST_CASE("shared_log: the group handle models raft::storage and raft::snapshot_storage") {
  static_assert(storage<shared_log_group>);
  static_assert(snapshot_storage<shared_log_group>);
  static_assert(std::movable<shared_log_group>);
  static_assert(!std::copyable<shared_log_group>);
}

TEST_CASE("conformance: shared_log group, log reopened each time, 16 KiB segments, fsync on") {
  raft::testing::run_storage_conformance([] { return std::make_unique<log_place>(small_segments(true)); });
}

TEST_CASE("conformance: shared_log group, only the handle reopened, 16 KiB segments, fsync off") {
  raft::testing::run_storage_conformance([] { return std::make_unique<handle_place>(small_segments(false)); });
}

TEST_CASE("conformance: shared_log group while other groups write between its calls, 4 KiB segments") {
  raft::testing::run_storage_conformance([] { return std::make_unique<noisy_place>(small_segments(false, 4 << 10)); });
}

TEST_CASE("shared_log: groups that flush in one executor turn share one round and one fdatasync") {
  storage_test::temp_dir dir;
  shared_log log(dir.path());
  constexpr std::size_t groups = 32, per_group = 10;
  std::vector<shared_log_group> handles;
  for (std::uint64_t g = 0; g < groups; ++g) {
    handles.push_back(log.open_group(raft::group_id{100 + g}));
    (void)handles.back().load();
  }
  const auto before = log.stats();
  asio::io_context io;
  std::size_t done = 0;
  // Every group's flush is handed over in one turn of the io_context (the handlers the co_spawns
  // posted, one after the other). The writer's wake-up is posted behind them, so no round
  // starts in the middle of the turn: no timing involved.
  for (std::uint64_t g = 0; g < groups; ++g) {
    asio::co_spawn(
        io,
        [&, g]() -> asio::awaitable<void> {
          handles[g].append(cd::entries(index_t{1}, per_group, term_t{1}));
          co_await handles[g].flush();
        },
        [&](std::exception_ptr e) {
          REQUIRE_FALSE(e);
          ++done;
        });
  }
  for (std::size_t k = 0; k < groups; ++k) io.run_one();  // the turn: every flush handed over
  CHECK(log.stats().flushes - before.flushes == groups);
  CHECK(log.stats().write_rounds == before.write_rounds);  // the writer waits for the turn's end
  std::size_t handlers = 0;  // what the io_context ran after the turn
  while (done < groups) handlers += io.run_one();
  // The log's thread releases each handler's outstanding work just after posting the handler:
  // run() returns once it has, and only then may the io_context go (Asio's rule for executors
  // that track work on another thread).
  io.run();
  const auto after = log.stats();
  CHECK(after.flushes - before.flushes == groups);
  CHECK(after.entries_written - before.entries_written == groups * per_group);
  CHECK(after.write_rounds - before.write_rounds == 1);
  CHECK(after.syncs - before.syncs == 1);
  // The writer's wake-up, then the round's completions on this executor as one handler, not one
  // per group.
  CHECK(handlers == 2);
  handles.clear();
}

TEST_CASE("shared_log: a flush handed over while another executor's turn holds the writer back completes") {
  // A thread blocked inside one io_context's turn, running a second io_context until a flush
  // submitted there completes (as a nested run loop does): the first context's wake-up for the
  // writer cannot run, so the second's must wake it.
  storage_test::temp_dir dir;
  shared_log log(dir.path());
  auto a = log.open_group(raft::group_id{1});
  auto b = log.open_group(raft::group_id{2});
  (void)a.load();
  (void)b.load();
  asio::io_context outer, inner;
  bool a_done = false, b_done = false;
  // Appends `n` entries to `g` and flushes them on `io`; `done` is set once the flush completed.
  const auto append_and_flush = [](asio::io_context& io, shared_log_group& g, std::size_t n, bool& done) {
    asio::co_spawn(
        io,
        [&g, n]() -> asio::awaitable<void> {
          g.append(cd::entries(index_t{1}, n, term_t{1}));
          co_await g.flush();
        },
        [&done](std::exception_ptr e) {
          REQUIRE_FALSE(e);
          done = true;
        });
  };
  append_and_flush(outer, a, 3, a_done);
  outer.run_one();  // a's flush handed over; the outer context's wake-up for the writer is queued
  append_and_flush(inner, b, 2, b_done);
  inner.run_for(std::chrono::seconds(60));
  CHECK(b_done);
  outer.run_for(std::chrono::seconds(60));
  CHECK(a_done);
  CHECK(log.stats().entries_written == 5);
}

TEST_CASE("shared_log: a segment is deleted once no group needs it, and not before") {
  storage_test::temp_dir dir;
  const auto data = dir.path() / "data";
  const shared_log_options o = small_segments(true, 2048);
  std::map<std::uint64_t, std::vector<log_entry>> logs;
  {
    shared_log log(data, o);
    std::vector<shared_log_group> g;
    for (std::uint64_t id = 1; id <= 3; ++id) {
      g.push_back(log.open_group(raft::group_id{id}));
      (void)g.back().load();
      g.back().save_hard_state(hard_state{term_t{id}, node_id{id}});
    }
    // Interleaved: every segment holds entries of every group.
    for (std::uint64_t round = 0; round < 20; ++round)
      for (std::uint64_t id = 1; id <= 3; ++id) {
        const auto batch = cd::entries(index_t{round * 5 + 1}, 5, term_t{1}, 60);
        g[id - 1].append(batch);
        cd::flush(g[id - 1]);
        logs[id].insert(logs[id].end(), batch.begin(), batch.end());
      }
    const auto first_segments = segment_files(data);
    REQUIRE(first_segments.size() >= 6);
    CHECK(log.stats().segments_removed == 0);

    // Groups 1 and 2 compact everything; group 3 has not compacted: every segment stays.
    for (std::uint64_t id = 1; id <= 2; ++id) {
      g[id - 1].compact_through(index_t{100}, term_t{1});
      cd::flush(g[id - 1]);
      logs[id].clear();
    }
    CHECK(segment_files(data) == first_segments);
    CHECK(log.stats().segments_removed == 0);

    // Group 3 compacts its first half: the segments that held only that half (and the other
    // groups' dead entries) go, oldest first; those holding its later entries stay.
    g[2].compact_through(index_t{50}, term_t{1});
    cd::flush(g[2]);
    logs[3].erase(logs[3].begin(), logs[3].begin() + 50);
    const auto after_half = segment_files(data);
    CHECK(after_half.size() < first_segments.size());
    CHECK(std::find(after_half.begin(), after_half.end(), first_segments.front()) == after_half.end());
    CHECK(after_half.back() == first_segments.back());
    CHECK(log.stats().segments_removed == first_segments.size() - after_half.size());
    // Everything is still readable through a reopened handle (read back from the segments).
    g[2] = log.open_group(raft::group_id{99});  // closes group 3's handle
    auto again = log.open_group(raft::group_id{3});
    const auto ps = again.load();
    CHECK(ps.base_index == index_t{50});
    cd::check_same(ps.entries, logs[3]);
    g[2] = std::move(again);

    // Group 3 compacts the rest: only the tail segment is left.
    g[2].compact_through(index_t{100}, term_t{1});
    cd::flush(g[2]);
    logs[3].clear();
    CHECK(segment_files(data).size() == 1);
    g.clear();
  }
  shared_log log(data, o);
  for (std::uint64_t id = 1; id <= 3; ++id) {
    auto h = log.open_group(raft::group_id{id});
    const auto ps = h.load();
    CHECK(ps.state == hard_state{term_t{id}, node_id{id}});
    CHECK(ps.base_index == index_t{100});
    CHECK(ps.base_term == term_t{1});
    CHECK(ps.entries.empty());
    h.append(cd::entries(index_t{101}, 3, term_t{2}));  // the log continues after the base
    cd::flush(h);
  }
}

TEST_CASE("shared_log: a crash in the middle of reclamation loses nothing") {
  // Reclamation deletes the oldest segments one by one. Whatever prefix of them a crash let it
  // delete, the segments left must give back every group's state.
  storage_test::temp_dir dir, backup;
  const auto data = dir.path() / "data";
  const shared_log_options o = small_segments(true, 1500);
  std::vector<log_entry> a_log, b_log;
  {
    shared_log log(data, o);
    auto a = log.open_group(raft::group_id{1}), b = log.open_group(raft::group_id{2});
    (void)a.load();
    (void)b.load();
    a.save_hard_state(hard_state{term_t{3}, node_id{1}});
    b.save_hard_state(hard_state{term_t{4}, node_id{2}});
    for (std::uint64_t k = 0; k < 40; ++k) {
      const auto ea = cd::entries(index_t{k + 1}, 1, term_t{1}, 80), eb = cd::entries(index_t{k + 1}, 1, term_t{2}, 80);
      a.append(ea);
      b.append(eb);
      cd::flush(a);
      cd::flush(b);
      a_log.push_back(ea[0]);
      b_log.push_back(eb[0]);
    }
    b.compact_through(index_t{35}, term_t{2});  // group 2 no longer needs most segments
    cd::flush(b);
    b_log.erase(b_log.begin(), b_log.begin() + 35);
    std::filesystem::copy(data, backup.path() / "all");  // before group 1's compaction
    a.compact_through(index_t{30}, term_t{1});
    cd::flush(a);
    a_log.erase(a_log.begin(), a_log.begin() + 30);
    CHECK(log.stats().segments_removed >= 2);
  }
  const auto kept = segment_files(data);
  std::vector<std::filesystem::path> deleted;
  for (const auto& p : segment_files(backup.path() / "all"))
    if (std::find(kept.begin(), kept.end(), data / p.filename()) == kept.end()) deleted.push_back(p);
  REQUIRE(deleted.size() >= 2);
  for (std::size_t left = deleted.size(); left-- > 0;) {
    CAPTURE(left);
    // The crash came after deleting deleted[0 .. left): deleted[left ..] are still there.
    for (std::size_t k = left; k < deleted.size(); ++k)
      std::filesystem::copy_file(deleted[k], data / deleted[k].filename(),
                                 std::filesystem::copy_options::overwrite_existing);
    {
      shared_log log(data, o);
      auto a = log.open_group(raft::group_id{1}), b = log.open_group(raft::group_id{2});
      const auto pa = a.load(), pb = b.load();
      CHECK(pa.state == hard_state{term_t{3}, node_id{1}});
      CHECK(pb.state == hard_state{term_t{4}, node_id{2}});
      CHECK(pa.base_index == index_t{30});
      CHECK(pb.base_index == index_t{35});
      cd::check_same(pa.entries, a_log);
      cd::check_same(pb.entries, b_log);
    }
    for (std::size_t k = left; k < deleted.size(); ++k) std::filesystem::remove(data / deleted[k].filename());
  }
}

namespace {

/// Group 1 keeps writing and compacting; group 2 wrote 3 entries once, long ago, and never
/// compacts; group 3's hard state was saved once, in the first segment.
struct lagging_group_run {
  std::vector<log_entry> g1;  // group 1's live entries at the end
  index_t g1_base{0};
  std::map<index_t, log_entry> g1_written;  // every entry group 1 ever wrote
  std::vector<log_entry> g2 = cd::entries(index_t{1}, 3, term_t{4}, 40);

  /// `started` runs once group 2's entries and group 3's hard state are durable.
  void write(shared_log& log, std::uint64_t count = 200, const std::function<void()>& started = {}) {
    auto a = log.open_group(raft::group_id{1}), b = log.open_group(raft::group_id{2}), c = log.open_group(raft::group_id{3});
    (void)a.load();
    (void)b.load();
    (void)c.load();
    c.save_hard_state(hard_state{term_t{9}, node_id{3}});
    b.append(g2);
    cd::flush(b);
    if (started) started();
    for (std::uint64_t k = 0; k < count; ++k) {
      const auto e = cd::entries(index_t{k + 1}, 1, term_t{1}, 50);
      a.append(e);
      g1.push_back(e[0]);
      g1_written[e[0].index] = e[0];
      if (k % 10 == 9) {
        const index_t through{k - 4};
        a.compact_through(through, term_t{1});
        g1.erase(g1.begin(), g1.begin() + std::ptrdiff_t(through - g1_base));
        g1_base = through;
      }
      cd::flush(a);
    }
  }

  /// What a reopened log gives back: group 1 exactly, or (`prefix_only`: a copy taken part way)
  /// entries group 1 wrote, as it wrote them.
  void check_reopened(const std::filesystem::path& dir, const shared_log_options& o, bool prefix_only = false) const {
    shared_log log(dir, o);
    auto a = log.open_group(raft::group_id{1}), b = log.open_group(raft::group_id{2}), c = log.open_group(raft::group_id{3});
    const auto pa = a.load(), pb = b.load(), pc = c.load();
    if (prefix_only) {
      for (const log_entry& e : pa.entries) {
        REQUIRE(g1_written.count(e.index) == 1);
        CHECK(e == g1_written.at(e.index));
      }
    } else {
      CHECK(pa.base_index == g1_base);
      cd::check_same(pa.entries, g1);
    }
    CHECK(pb.base_index == index_t{0});
    cd::check_same(pb.entries, g2);
    CHECK(pc.state == hard_state{term_t{9}, node_id{3}});
  }
};

}  // namespace

TEST_CASE("shared_log: without relocation, a lagging group keeps every segment after its entries") {
  storage_test::temp_dir dir;
  shared_log_options o = small_segments(false, 1024);
  o.relocate_bytes = 0;
  lagging_group_run run;
  {
    shared_log log(dir.path(), o);
    run.write(log);
    // Group 2's entries pin the first segment and so every later one.
    CHECK(log.stats().segments_removed == 0);
    CHECK(log.stats().entries_relocated == 0);
    CHECK(segment_files(dir.path()).size() > 10);
    auto b = log.open_group(raft::group_id{2});
    (void)b.load();
    b.compact_through(index_t{3}, term_t{4});
    cd::flush(b);
    CHECK(log.stats().segments_removed > 0);
    CHECK(segment_files(dir.path()).size() <= 3);
  }
  shared_log log(dir.path(), o);
  auto b = log.open_group(raft::group_id{2});
  const auto pb = b.load();
  CHECK(pb.base_index == index_t{3});
  CHECK(pb.base_term == term_t{4});
  CHECK(pb.entries.empty());
}

TEST_CASE("shared_log: a lagging group's few live entries are copied forward, and its old segments go") {
  storage_test::temp_dir dir;
  const shared_log_options o = small_segments(false, 1024);  // 256 bytes of copies per new segment
  lagging_group_run run;
  {
    shared_log log(dir.path(), o);
    run.write(log);
    const auto st = log.stats();
    CHECK(st.groups_relocated > 0);
    CHECK(st.entries_relocated >= 3 * st.groups_relocated / 2);  // group 2's 3 each time, group 1's 0-15
    CHECK(st.segments_removed > 0);
    // Never compacted, group 2 no longer holds the log's segments back.
    CHECK(segment_files(dir.path()).size() <= 4);
    CHECK(st.segments_created - st.segments_removed == segment_files(dir.path()).size());
  }
  run.check_reopened(dir.path(), o);
  // And it goes on from there: more writes after the reopen, another reopen.
  {
    shared_log log(dir.path(), o);
    auto b = log.open_group(raft::group_id{2});
    (void)b.load();
    const auto more = cd::entries(index_t{4}, 2, term_t{5}, 40);
    b.append(more);
    cd::flush(b);
    run.g2.insert(run.g2.end(), more.begin(), more.end());
  }
  run.check_reopened(dir.path(), o);
}

TEST_CASE("shared_log: a crash at any sync while entries are copied forward loses nothing") {
  // The directory as it is at every sync of the directory itself (a new segment renamed, a
  // segment deleted) is what a crash just after it leaves: among them, the moment the new
  // segment with the copies has its name and the segments with the originals are still there.
  storage_test::temp_dir dir, backups;
  shared_log_options o = small_segments(true, 1024);
  o.prefill_bytes = 0;  // so every backup holds only what was written
  std::vector<std::filesystem::path> taken;
  o.sync_hook = [&](int fd) {
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
      const auto to = backups.path() / std::to_string(taken.size());
      std::filesystem::create_directories(to);
      for (const auto& f : segment_files(dir.path())) std::filesystem::copy_file(f, to / f.filename());
      taken.push_back(to);
    }
    return 0;
  };
  lagging_group_run run;
  std::size_t from = 0;  // the first copy taken with group 2's entries durable
  {
    shared_log log(dir.path(), o);
    run.write(log, 120, [&] { from = taken.size(); });
    CHECK(log.stats().groups_relocated > 0);
    CHECK(log.stats().segments_removed > 0);
  }
  REQUIRE(taken.size() > from + 20);
  o.sync_hook = nullptr;
  for (std::size_t k = from; k < taken.size(); ++k) {
    CAPTURE(k);
    run.check_reopened(taken[k], o, true);
  }
  run.check_reopened(dir.path(), o);
}

TEST_CASE("shared_log: remove_group deletes a group's data and snapshots; others are unaffected") {
  storage_test::temp_dir dir;
  const shared_log_options o = small_segments(true, 4096);
  const auto e1 = cd::entries(index_t{1}, 30, term_t{2});
  const auto e2 = cd::entries(index_t{1}, 20, term_t{3});
  const buffer img = cd::payload(3, 5000);
  {
    shared_log log(dir.path(), o);
    auto a = log.open_group(raft::group_id{1});
    auto b = log.open_group(raft::group_id{2});
    (void)a.load();
    (void)b.load();
    a.save_hard_state(hard_state{term_t{2}, node_id{1}});
    b.save_hard_state(hard_state{term_t{3}, node_id{2}});
    a.append(e1);
    b.append(e2);
    cd::flush(a);
    cd::flush(b);
    cd::put_snapshot(a, cd::snap_meta(10, 2), img.bytes());
    cd::put_snapshot(b, cd::snap_meta(5, 3), img.bytes());
    CHECK(std::filesystem::exists(log.snapshot_directory(1)));

    CHECK_THROWS_AS(log.remove_group(raft::group_id{1}), std::logic_error);  // its handle is open
    CHECK_THROWS_AS((void)log.open_group(raft::group_id{1}), std::logic_error);  // a second handle
    a = log.open_group(raft::group_id{99});  // closes group 1's handle
    log.remove_group(raft::group_id{1});
    CHECK_FALSE(std::filesystem::exists(log.snapshot_directory(1)));
    CHECK(log.groups() == std::vector<raft::group_id>{raft::group_id{2}, raft::group_id{99}});
    // Reopened in the same process: empty.
    auto again = log.open_group(raft::group_id{1});
    const auto ps = again.load();
    CHECK(ps.state == hard_state{});
    CHECK(ps.base_index == index_t{0});
    CHECK(ps.entries.empty());
    CHECK_FALSE(again.open_snapshot().has_value());
  }
  shared_log log(dir.path(), o);
  auto a = log.open_group(raft::group_id{1});
  const auto pa = a.load();
  CHECK(pa.state == hard_state{});
  CHECK(pa.entries.empty());
  CHECK_FALSE(a.open_snapshot().has_value());
  // Group 1 starts over: its old entries do not come back under the new ones.
  const auto fresh = cd::entries(index_t{1}, 5, term_t{7});
  a.append(fresh);
  cd::flush(a);
  auto b = log.open_group(raft::group_id{2});
  const auto pb = b.load();
  CHECK(pb.state == hard_state{term_t{3}, node_id{2}});
  cd::check_same(pb.entries, e2);
  cd::check_current(b, cd::snap_meta(5, 3), img.bytes());
  a = log.open_group(raft::group_id{98});
  auto a2 = log.open_group(raft::group_id{1});
  cd::check_same(a2.load().entries, fresh);
}

TEST_CASE("shared_log: a staged term and vote are durable with the next flush, in order, and not before") {
  storage_test::temp_dir dir;
  const shared_log_options o = small_segments(true, 4096);
  {
    shared_log log(dir.path(), o);
    auto a = log.open_group(raft::group_id{1});
    (void)a.load();
    a.save_hard_state(hard_state{term_t{2}, node_id{1}});
    a.append(cd::entries(index_t{1}, 3, term_t{2}));
    a.stage_hard_state(hard_state{term_t{3}, node_id{2}});
    a.append(cd::entries(index_t{4}, 2, term_t{3}));
    cd::flush(a);
    a.stage_hard_state(hard_state{term_t{4}, node_id{3}});  // never flushed: lost with the process
  }
  shared_log log(dir.path(), o);
  auto a = log.open_group(raft::group_id{1});
  const auto ps = a.load();
  CHECK(ps.state.term == term_t{3});
  CHECK(ps.state.voted_for == node_id{2});
  CHECK(ps.entries.size() == 5);
  // The staged record ends a run of entries: a truncation after it is a record of its own.
  a.stage_hard_state(hard_state{term_t{5}, node_id{1}});
  a.truncate_after(index_t{3});
  a.append(cd::entries(index_t{4}, 1, term_t{5}));
  cd::flush(a);
  a = log.open_group(raft::group_id{2});  // closes group 1's handle
  auto again = log.open_group(raft::group_id{1});
  const auto back = again.load();
  CHECK(back.state.term == term_t{5});
  REQUIRE(back.entries.size() == 4);
  CHECK(back.entries.back().term == term_t{5});
}

TEST_CASE("shared_log: a torn tail is cut off; the flushed records before it stay") {
  storage_test::temp_dir dir;
  const auto e1 = cd::entries(index_t{1}, 10, term_t{1});
  const auto e2 = cd::entries(index_t{1}, 10, term_t{2});
  write_two_groups(dir.path(), e1, e2);
  const auto segs = segment_files(dir.path());
  REQUIRE(segs.size() == 1);
  const auto offsets = record_offsets(segs[0]);
  const auto last_record = offsets.back();  // group 2's entry 10
  const auto last_end = records_end(segs[0]);
  CHECK(bytes_in(segs[0]) > last_end);  // zeros written ahead
  std::size_t expected = 0;  // entries of group 2 that survive
  SUBCASE("the last record cut short") {
    truncate_file(segs[0], last_record + 11);
    expected = 9;
  }
  SUBCASE("the last record garbled") {
    flip_byte(segs[0], last_record + 30);
    expected = 9;
  }
  SUBCASE("the zeros written ahead after the last record") {
    expected = 10;
  }
  SUBCASE("a tail without zeros (a log written with prefill_bytes = 0)") {
    truncate_file(segs[0], last_end);
    expected = 10;
  }
  shared_log log(dir.path());
  auto a = log.open_group(raft::group_id{1}), b = log.open_group(raft::group_id{2});
  cd::check_same(a.load().entries, e1);
  const auto got = b.load().entries;
  REQUIRE(got.size() == expected);
  cd::check_same(got, std::vector<log_entry>(e2.begin(), e2.begin() + std::ptrdiff_t(expected)));
  CHECK(bytes_in(segs[0]) == (expected == 9 ? last_record : last_end));  // cut where the bad bytes start
  // The log continues after the cut.
  b.append(cd::entries(index_t{expected + 1}, 2, term_t{3}));
  cd::flush(b);
}

TEST_CASE("shared_log: a round that reached the disk only in part is cut where its first hole starts") {
  // A round overwrites zeros written ahead, so before its sync its pages may reach the disk in
  // any order: a crash can leave a hole with valid records of the same round after it.
  storage_test::temp_dir dir;
  const auto e1 = cd::entries(index_t{1}, 10, term_t{1});
  const auto e2 = cd::entries(index_t{1}, 10, term_t{2});
  write_two_groups(dir.path(), e1, e2);  // each round: a round record, then a group's ten entries
  const auto segs = segment_files(dir.path());
  REQUIRE(segs.size() == 1);
  // The segment's first round record (it ends the empty checkpoint), then the two rounds.
  const auto offsets = record_offsets(segs[0]);
  REQUIRE(offsets.size() == 23);
  const std::uint64_t round1 = offsets[1], round2 = offsets[12];
  for (const auto at : {offsets[0], round1, round2})
    REQUIRE(record_type_at(segs[0], at) == detail::shared_format::record_type::round);
  auto entry_at = [&](std::size_t round, std::size_t k) { return offsets[round == 1 ? 1 + k : 12 + k]; };  // k = 1..10

  SUBCASE("a hole in the middle of the last round: the records before it stay") {
    zero_bytes(segs[0], entry_at(2, 4), std::size_t(entry_at(2, 6) - entry_at(2, 4)));  // entries 4 and 5
    {
      shared_log log(dir.path());
      auto a = log.open_group(raft::group_id{1}), b = log.open_group(raft::group_id{2});
      cd::check_same(a.load().entries, e1);
      cd::check_same(b.load().entries, std::vector<log_entry>(e2.begin(), e2.begin() + 3));
      CHECK(bytes_in(segs[0]) == entry_at(2, 4));  // cut where the hole starts: entries 6-10 are gone
      b.append(cd::entries(index_t{4}, 2, term_t{3}));
      cd::flush(b);
    }
    shared_log log(dir.path());
    auto b = log.open_group(raft::group_id{2});
    const auto got = b.load().entries;
    REQUIRE(got.size() == 5);
    CHECK(got.back().term == term_t{3});
  }
  SUBCASE("the last round's own round record lost: the whole round goes") {
    zero_bytes(segs[0], round2, std::size_t(entry_at(2, 1) - round2));
    shared_log log(dir.path());
    auto a = log.open_group(raft::group_id{1}), b = log.open_group(raft::group_id{2});
    cd::check_same(a.load().entries, e1);
    CHECK(b.load().entries.empty());
    CHECK(bytes_in(segs[0]) == round2);
  }
  SUBCASE("the segment's first round record damaged: refused, it was synced with the segment") {
    flip_byte(segs[0], offsets[0] + 20);
    CHECK_THROWS_WITH_AS(shared_log(dir.path()), doctest::Contains("in the segment's checkpoint"),
                         file_storage_corruption);
  }
  SUBCASE("a hole in a round before the last is refused: that round was synced") {
    zero_bytes(segs[0], entry_at(1, 4), std::size_t(entry_at(1, 6) - entry_at(1, 4)));
    const auto e = refusal(dir.path());
    REQUIRE_MESSAGE(e, "a hole in a synced round was accepted");
    CHECK(e->file() == segs[0]);
    CHECK(e->offset() == entry_at(1, 4));
    CHECK(std::string(e->what()).find("a later round follows") != std::string::npos);
  }
}

TEST_CASE("shared_log: segments of format version 1 are read; new records go to a new segment") {
  namespace sf = detail::shared_format;
  storage_test::temp_dir dir;
  const auto e = cd::entries(index_t{1}, 3, term_t{2});
  std::vector<std::byte> bytes;
  const auto header = sf::encode_segment_header(1, 1);
  bytes.insert(bytes.end(), header.begin(), header.end());
  sf::put_record(bytes, 1, sf::record_type::hard_state, {2, 1});
  for (const auto& x : e) sf::put_entry(bytes, 1, x);
  const auto first = dir.path() / sf::segment_name(1);
  const std::uint64_t second_entry = sf::segment_header_bytes + sf::record_header_bytes +
                                     sf::body_bytes(sf::record_type::hard_state) + sf::record_header_bytes +
                                     sf::entry_fixed + e[0].data.bytes().size();
  {
    std::ofstream out(first, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  }
  SUBCASE("read, continued in a version 2 segment, read again") {
    {
      shared_log log(dir.path());
      auto a = log.open_group(raft::group_id{1});
      const auto ps = a.load();
      CHECK(ps.state.term == term_t{2});
      CHECK(ps.state.voted_for == node_id{1});
      cd::check_same(ps.entries, e);
      a.append(cd::entries(index_t{4}, 2, term_t{2}));
      cd::flush(a);
    }
    const auto segs = segment_files(dir.path());
    REQUIRE(segs.size() == 2);
    CHECK(bytes_in(first) == bytes.size());  // left as it was
    CHECK(detail::load_u32(detail::read_whole_file(segs[1]).data() + 8) == sf::version);
    shared_log log(dir.path());
    auto a = log.open_group(raft::group_id{1});
    CHECK(a.load().entries.size() == 5);
  }
  SUBCASE("version 1 keeps its rule: a bad record with valid records after it is refused") {
    flip_byte(first, second_entry + 20);  // entry 2 of 3: entry 3 is valid after it
    const auto x = refusal(dir.path());
    REQUIRE_MESSAGE(x, "a version 1 segment with a hole was accepted");
    CHECK(x->offset() == second_entry);
    CHECK(std::string(x->what()).find("valid records follow") != std::string::npos);
  }
  SUBCASE("a version the build does not know is refused") {
    const auto newer = sf::encode_segment_header(1, sf::version + 1);
    std::fstream f(first, std::ios::in | std::ios::out | std::ios::binary);
    f.write(reinterpret_cast<const char*>(newer.data()), std::streamsize(newer.size()));
    f.close();
    CHECK_THROWS_WITH_AS(shared_log(dir.path()), doctest::Contains("unsupported format version"),
                         file_storage_corruption);
  }
}

TEST_CASE("shared_log: zeros are written ahead of the tail (with fsync), and a closed segment is trimmed to its records") {
  storage_test::temp_dir dir;
  struct setting {
    std::size_t prefill;
    bool fsync;
  };
  for (const setting set : {setting{0, true}, setting{4096, true}, setting{4096, false}}) {
    const std::size_t prefill = set.prefill;
    const bool fsync = set.fsync;
    CAPTURE(prefill);
    CAPTURE(fsync);
    const bool zeros_ahead = prefill > 0 && fsync;
    const auto where = dir.path() / (std::to_string(prefill) + (fsync ? "-fsync" : ""));
    auto o = small_segments(fsync, 8 << 10);
    o.prefill_bytes = prefill;
    shared_log_stats stats;
    {
      shared_log log(where, o);
      auto a = log.open_group(raft::group_id{1});
      (void)a.load();
      for (std::uint64_t k = 0; k < 40; ++k) {
        a.append(cd::entries(index_t{k * 4 + 1}, 4, term_t{1}, 200));
        cd::flush(a);
      }
      stats = log.stats();
    }
    const auto segs = segment_files(where);
    REQUIRE(segs.size() >= 3);
    for (std::size_t k = 0; k + 1 < segs.size(); ++k) CHECK(bytes_in(segs[k]) == records_end(segs[k]));
    if (!zeros_ahead) {
      CHECK(stats.zeros_written == 0);
      CHECK(bytes_in(segs.back()) == records_end(segs.back()));
    } else {
      CHECK(stats.zeros_written >= segs.size() * prefill);
      CHECK(bytes_in(segs.back()) > records_end(segs.back()));
      CHECK(bytes_in(segs.back()) <= std::max<std::uint64_t>(records_end(segs.back()) + prefill, 8 << 10));
    }
    shared_log log(where, o);
    auto a = log.open_group(raft::group_id{1});
    CHECK(a.load().entries.size() == 160);
  }
}

TEST_CASE("shared_log: entries a checkpoint promises are counted, not stored, however many") {
  // A checkpoint's entries that a deleted segment held are dropped by a later compaction; until
  // then replay only counts them. It had reserved a slot for each: a checkpoint promising 2^62
  // entries threw std::length_error, and 2^24 took 830 MB before the refusal.
  namespace sf = detail::shared_format;
  storage_test::temp_dir dir;
  const std::uint64_t huge = std::uint64_t{1} << 62;
  auto write_segment = [&](bool compacted) {
    std::vector<std::byte> bytes;
    const auto header = sf::encode_segment_header(1);
    bytes.insert(bytes.end(), header.begin(), header.end());
    sf::put_record(bytes, 1, sf::record_type::checkpoint, {3, 2, 0, 0, huge});
    sf::put_record(bytes, 0, sf::record_type::round, {1});
    if (compacted) sf::put_record(bytes, 1, sf::record_type::compact, {huge, 3});
    std::ofstream out(dir.path() / sf::segment_name(1), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  };
  SUBCASE("still promised at the end: refused") {
    write_segment(false);
    const std::string why = "promises entries up to " + std::to_string(huge);
    CHECK_THROWS_WITH_AS(shared_log(dir.path()), doctest::Contains(why.c_str()), file_storage_corruption);
  }
  SUBCASE("dropped by a compaction: the group starts at its base") {
    write_segment(true);
    shared_log log(dir.path());
    auto a = log.open_group(raft::group_id{1});
    const auto ps = a.load();
    CHECK(ps.state.term == term_t{3});
    CHECK(ps.base_index == index_t{huge});
    CHECK(ps.entries.empty());
  }
}

TEST_CASE("shared_log: segment and round numbers never wrap around") {
  namespace sf = detail::shared_format;
  storage_test::temp_dir dir;
  auto write_empty_segment = [&](std::uint64_t seq, std::uint32_t format) {
    const auto header = sf::encode_segment_header(seq, format);
    std::vector<std::byte> bytes(header.begin(), header.end());
    if (format >= 2) sf::put_record(bytes, 0, sf::record_type::round, {1});
    std::ofstream out(dir.path() / sf::segment_name(seq), std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  };
  SUBCASE("a segment with the largest number is refused") {
    write_empty_segment(sf::last_segment_number, 2);
    CHECK_THROWS_AS(shared_log(dir.path()), file_storage_corruption);
  }
  SUBCASE("a round record with the largest number is refused") {
    const auto header = sf::encode_segment_header(1);
    std::vector<std::byte> bytes(header.begin(), header.end());
    sf::put_record(bytes, 0, sf::record_type::round, {sf::last_round_number});
    std::ofstream(dir.path() / sf::segment_name(1), std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    CHECK_THROWS_WITH_AS(shared_log(dir.path()), doctest::Contains("a round number the log never uses"),
                         file_storage_corruption);
  }
  SUBCASE("a log with no round number left fails its next write, and still opens") {
    const auto header = sf::encode_segment_header(1);
    std::vector<std::byte> bytes(header.begin(), header.end());
    sf::put_record(bytes, 0, sf::record_type::round, {sf::last_round_number - 1});
    std::ofstream(dir.path() / sf::segment_name(1), std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    {
      shared_log log(dir.path());
      auto a = log.open_group(raft::group_id{1});
      (void)a.load();
      a.append(cd::entries(index_t{1}, 1, term_t{1}));
      try {
        cd::flush(a);
        FAIL("a round was written with the largest number");
      } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::value_too_large);
      }
    }
    CHECK_NOTHROW(shared_log(dir.path()));
  }
  SUBCASE("a version 1 tail with no number left after it is refused, not continued as segment 0") {
    write_empty_segment(sf::last_segment_number - 1, 1);
    CHECK_THROWS_WITH_AS(shared_log(dir.path()), doctest::Contains("no segment number is left"),
                         file_storage_corruption);
    CHECK(segment_files(dir.path()).size() == 1);
  }
}

TEST_CASE("shared_log: a bad record in a segment that is not the last is refused, naming file and offset") {
  storage_test::temp_dir dir;
  {
    shared_log log(dir.path(), small_segments(false, 2048));
    auto a = log.open_group(raft::group_id{1}), b = log.open_group(raft::group_id{2});
    (void)a.load();
    (void)b.load();
    for (std::uint64_t k = 0; k < 10; ++k) {
      a.append(cd::entries(index_t{k * 4 + 1}, 4, term_t{1}, 100));
      b.append(cd::entries(index_t{k * 4 + 1}, 4, term_t{1}, 100));
      cd::flush(a);
      cd::flush(b);
    }
  }
  const auto segs = segment_files(dir.path());
  REQUIRE(segs.size() >= 3);
  const auto offsets = record_offsets(segs[1]);
  REQUIRE(offsets.size() >= 3);
  const std::uint64_t bad = offsets[offsets.size() / 2];
  flip_byte(segs[1], bad + 20);
  const auto e = refusal(dir.path(), small_segments(false, 2048));
  REQUIRE_MESSAGE(e, "a corrupted record was accepted");
  CHECK(e->file() == segs[1]);
  CHECK(e->offset() == bad);
  CHECK(std::string(e->what()).find(segs[1].filename().string()) != std::string::npos);
  flip_byte(segs[1], bad + 20);  // repaired
  // The last segment's checkpoint was synced before the segment got its name: damage there is
  // refused too, even where no round was written after the round record that ends it (a crash
  // just after the segment was created: the segment is cut there).
  const auto last = record_offsets(segs.back());
  REQUIRE(record_type_at(segs.back(), last[0]) == detail::shared_format::record_type::checkpoint);
  std::size_t ends = 0;  // the round record that ends the checkpoint; the first write's follows it
  while (record_type_at(segs.back(), last[ends]) == detail::shared_format::record_type::checkpoint) ++ends;
  REQUIRE(ends + 1 < last.size());
  REQUIRE(record_type_at(segs.back(), last[ends]) == detail::shared_format::record_type::round);
  REQUIRE(record_type_at(segs.back(), last[ends + 1]) == detail::shared_format::record_type::round);
  truncate_file(segs.back(), last[ends + 1]);
  flip_byte(segs.back(), last[0] + 20);
  const auto damaged = refusal(dir.path(), small_segments(false, 2048));
  REQUIRE_MESSAGE(damaged, "a damaged checkpoint was accepted");
  CHECK(damaged->file() == segs.back());
  CHECK(damaged->offset() == last[0]);
  flip_byte(segs.back(), last[0] + 20);  // repaired
  CHECK_NOTHROW(shared_log(dir.path(), small_segments(false, 2048)));
  // A missing segment in the middle is refused too.
  std::filesystem::remove(segs[1]);
  CHECK_THROWS_AS(shared_log(dir.path(), small_segments(false, 2048)), file_storage_corruption);
}

TEST_CASE("shared_log: a failed sync fails the flush and every later call of every group") {
  storage_test::temp_dir dir;
  std::atomic<bool> fail{false};
  shared_log_options o;
  o.sync_hook = [&](int fd) {
    if (fail.load()) {
      errno = EIO;
      return -1;
    }
    return ::fdatasync(fd);
  };
  shared_log log(dir.path(), o);
  auto a = log.open_group(raft::group_id{1}), b = log.open_group(raft::group_id{2});
  (void)a.load();
  (void)b.load();
  a.append(cd::entries(index_t{1}, 3, term_t{1}));
  cd::flush(a);
  fail = true;
  a.append(cd::entries(index_t{4}, 3, term_t{1}));
  CHECK_THROWS_AS(cd::flush(a), std::system_error);
  fail = false;  // the disk "recovers": the log stays failed, nothing is retried
  CHECK_THROWS_AS(a.append(cd::entries(index_t{7}, 1, term_t{1})), std::system_error);
  CHECK_THROWS_AS(cd::flush(a), std::system_error);
  CHECK_THROWS_AS(b.save_hard_state(hard_state{term_t{1}, node_id{1}}), std::system_error);
  CHECK_THROWS_AS(b.append(cd::entries(index_t{1}, 1, term_t{1})), std::system_error);
  CHECK_THROWS_AS(cd::flush(b), std::system_error);
  CHECK_THROWS_AS((void)b.create_snapshot(cd::snap_meta(1, 1)), std::system_error);
  CHECK_THROWS_AS((void)log.open_group(raft::group_id{3}), std::system_error);
}

TEST_CASE("shared_log: a failed hard-state sync throws from save_hard_state") {
  storage_test::temp_dir dir;
  std::atomic<bool> fail{false};
  shared_log_options o;
  o.sync_hook = [&](int fd) {
    if (fail.load()) {
      errno = EIO;
      return -1;
    }
    return ::fdatasync(fd);
  };
  shared_log log(dir.path(), o);
  auto a = log.open_group(raft::group_id{1});
  (void)a.load();
  fail = true;
  CHECK_THROWS_AS(a.save_hard_state(hard_state{term_t{1}, node_id{1}}), std::system_error);
  CHECK_THROWS_AS(cd::flush(a), std::system_error);
}

TEST_CASE("shared_log: a second shared_log on the same directory is refused") {
  storage_test::temp_dir dir;
  shared_log log(dir.path());
  CHECK_THROWS_AS(shared_log(dir.path()), std::system_error);
  CHECK_THROWS_AS(file_storage(dir.path()), std::system_error);
}

TEST_CASE("shared_log: randomized groups against a model, with reopens, compactions and removals") {
  const std::uint64_t seed = shared_log_seed("groups against a model");
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  storage_test::temp_dir dir;
  const shared_log_options o = small_segments(false, 3000 + rng() % 6000);

  struct model {
    hard_state hs;
    index_t base{0};
    term_t base_term{0};
    std::vector<log_entry> entries;
    [[nodiscard]] index_t last() const { return base + entries.size(); }
  };
  constexpr std::uint64_t groups = 5;
  std::vector<model> durable(groups + 1), pending(groups + 1);
  std::uint64_t term = 1;

  std::optional<shared_log> log;
  std::vector<std::optional<shared_log_group>> h(groups + 1);
  auto check = [&](std::uint64_t id, const persistent_state& ps) {
    INFO("group " << id);
    CHECK(ps.state == durable[id].hs);
    CHECK(ps.base_index == durable[id].base);
    CHECK(ps.base_term == durable[id].base_term);
    cd::check_same(ps.entries, durable[id].entries);
  };
  auto open_handle = [&](std::uint64_t id) {
    h[id].reset();
    h[id].emplace(log->open_group(raft::group_id{id}));
    check(id, h[id]->load());
    pending[id] = durable[id];  // what was not flushed is gone
  };
  std::uint64_t segments_removed = 0;
  auto reopen_log = [&] {
    for (auto& x : h) x.reset();
    if (log) segments_removed += log->stats().segments_removed;
    log.reset();
    log.emplace(dir.path(), o);
    for (std::uint64_t id = 1; id <= groups; ++id) open_handle(id);
  };
  reopen_log();
  for (int step = 0; step < 1500; ++step) {
    const std::uint64_t id = 1 + rng() % groups;
    shared_log_group& s = *h[id];
    model& m = pending[id];
    const auto r = rng() % 100;
    if (r < 40) {
      if (rng() % 5 == 0) ++term;
      const auto batch = cd::entries(m.last().next(), 1 + rng() % 12, term_t{term}, 1 + rng() % 400);
      s.append(batch);
      m.entries.insert(m.entries.end(), batch.begin(), batch.end());
    } else if (r < 50) {
      const index_t at = m.base + rng() % (m.entries.size() + 3);
      s.truncate_after(at);
      if (at < m.last()) m.entries.resize(at - m.base);
      ++term;
    } else if (r < 60) {
      const index_t through = m.base + 1 + rng() % (m.entries.size() + 4);
      const term_t t = through <= m.last() ? m.entries[through - m.base - 1].term : term_t{term};
      s.compact_through(through, t);
      if (through >= m.last())
        m.entries.clear();
      else
        m.entries.erase(m.entries.begin(), m.entries.begin() + std::ptrdiff_t(through - m.base));
      m.base = through;
      m.base_term = t;
    } else if (r < 64) {
      const hard_state hs{term_t{term}, node_id{1 + rng() % 3}};
      s.save_hard_state(hs);
      m.hs = durable[id].hs = hs;
    } else if (r < 88) {
      cd::flush(s);
      durable[id] = m;
    } else if (r < 93) {
      open_handle(id);  // the log stays open: entries are read back from the segments
    } else if (r < 98) {
      if (rng() % 2 == 0)
        for (std::uint64_t g = 1; g <= groups; ++g) {
          cd::flush(*h[g]);
          durable[g] = pending[g];
        }
      reopen_log();  // a crash for the changes not flushed
    } else {
      h[id].reset();
      log->remove_group(raft::group_id{id});
      durable[id] = model{};
      open_handle(id);
    }
  }
  for (std::uint64_t g = 1; g <= groups; ++g) {
    cd::flush(*h[g]);
    durable[g] = pending[g];
  }
  reopen_log();
  for (auto& x : h) x.reset();
  CHECK(segments_removed > 0);  // reclamation ran, and the reopens found everything
}

// ---- a cluster on shared logs ------------------------------------------------------------------

namespace {

using kv = raft::testing::kv_state_machine;
using shared_node = node<kv, shared_log_group, local_transport>;

struct cluster_run {
  std::vector<std::string> replies;
  std::vector<std::uint64_t> hashes;         ///< each node's state machine at the end
  bool had_leader = false;
};

/// Three nodes, each keeping its log in group 42 of its own shared_log (under `dirs[k]`), on real
/// time. Waits for a leader and for every node to have applied `replay_to`, proposes `commands`
/// through the leader, waits until every node has applied them, then stops.
cluster_run run_cluster(const std::vector<std::filesystem::path>& dirs, index_t replay_to,
                        const std::vector<buffer>& commands) {
  using namespace std::chrono_literals;
  asio::io_context io;
  local_network net;
  std::vector<std::unique_ptr<shared_log>> logs;
  std::vector<std::unique_ptr<shared_log_group>> stores;
  std::vector<std::unique_ptr<kv>> sms;
  std::vector<std::unique_ptr<local_transport>> transports;
  std::vector<std::unique_ptr<shared_node>> nodes;
  for (std::uint64_t k = 0; k < 3; ++k) {
    logs.push_back(std::make_unique<shared_log>(dirs[k]));
    stores.push_back(std::make_unique<shared_log_group>(logs[k]->open_group(raft::group_id{42})));
    sms.push_back(std::make_unique<kv>());
    transports.push_back(std::make_unique<local_transport>(net, node_id{k + 1}, io.get_executor()));
    options o;
    o.id = node_id{k + 1};
    o.bootstrap = configuration{{node_id{1}, node_id{2}, node_id{3}}, {}, {}};
    o.election_timeout_min = 50ms;
    o.election_timeout_max = 100ms;
    o.heartbeat_interval = 10ms;
    o.snapshot_entries = 8;  // snapshots and compactions go through the shared log too
    o.snapshot_trailing_entries = 2;
    nodes.push_back(std::make_unique<shared_node>(io.get_executor(), o, *sms[k], *stores[k], *transports[k]));
  }
  cluster_run out;
  bool finished = false;
  std::exception_ptr error;
  auto leader = [&]() -> shared_node* {
    for (auto& n : nodes)
      if (n->role() == role::leader) return n.get();
    return nullptr;
  };
  auto all_applied = [&](index_t i) {
    return std::all_of(nodes.begin(), nodes.end(), [&](auto& n) { return n->applied_index() >= i; });
  };
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (auto& n : nodes) n->start();
        asio::steady_timer t(io);
        const auto deadline = std::chrono::steady_clock::now() + 30s;
        while ((!leader() || !all_applied(replay_to)) && std::chrono::steady_clock::now() < deadline) {
          t.expires_after(2ms);
          co_await t.async_wait(asio::use_awaitable);
        }
        out.had_leader = leader() != nullptr;
        for (const auto& c : commands) {
          shared_node* l = leader();
          while (!l && std::chrono::steady_clock::now() < deadline) {
            t.expires_after(2ms);
            co_await t.async_wait(asio::use_awaitable);
            l = leader();
          }
          if (!l) break;
          auto r = co_await l->async_propose(c.bytes());
          out.replies.push_back(r ? *r : "error");
        }
        const index_t target = leader() ? leader()->commit_index() : index_t{0};
        while (!all_applied(target) && std::chrono::steady_clock::now() < deadline) {
          t.expires_after(2ms);
          co_await t.async_wait(asio::use_awaitable);
        }
        for (auto& sm : sms) out.hashes.push_back(sm->hash());
        for (auto& n : nodes) co_await n->async_stop();
      },
      [&](std::exception_ptr e) {
        error = e;
        finished = true;
      });
  io.run_for(60s);
  REQUIRE(finished);
  if (error) std::rethrow_exception(error);
  for (auto& n : nodes) CHECK_FALSE(n->failure());
  nodes.clear();
  stores.clear();  // handles before their logs
  return out;
}

}  // namespace

TEST_CASE("a 3-node cluster on shared_log groups commits, restarts and recovers its log") {
  storage_test::temp_dir root;
  const std::vector<std::filesystem::path> dirs{root.path() / "n1", root.path() / "n2", root.path() / "n3"};
  std::vector<buffer> first;
  for (int k = 0; k < 30; ++k) first.push_back(kv::put("k" + std::to_string(k % 5), "v" + std::to_string(k)));
  const cluster_run a = run_cluster(dirs, index_t{0}, first);
  REQUIRE(a.had_leader);
  REQUIRE(a.replies.size() == first.size());
  CHECK(a.replies[0] == "");
  CHECK(a.replies[5] == "v0");  // put k0 again: the previous value
  REQUIRE(a.hashes.size() == 3);
  CHECK(a.hashes[0] == a.hashes[1]);
  CHECK(a.hashes[1] == a.hashes[2]);

  // Restart every node on its directory: each recovers its hard state, its snapshot and the log
  // after it, and ends with the same state as before once it has applied what it holds.
  const std::vector<buffer> second{kv::get("k0"), kv::put("k1", "new")};
  const cluster_run b = run_cluster(dirs, index_t{32}, second);
  REQUIRE(b.had_leader);
  REQUIRE(b.replies.size() == 2);
  CHECK(b.replies[0] == "v25");
  CHECK(b.replies[1] == "v26");
  REQUIRE(b.hashes.size() == 3);
  CHECK(b.hashes[0] == b.hashes[1]);
  CHECK(b.hashes[1] == b.hashes[2]);
}
