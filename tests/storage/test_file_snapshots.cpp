// raft::file_storage snapshots: the file format, recovery (a damaged snapshot file, cut or
// garbled at every byte, is refused; a temporary file is ignored and removed; leftovers of an
// interrupted cleanup are deleted), commit's sync off the executor, fail-stop, and the rules of
// create_snapshot. The conformance suite (test_conformance.cpp) covers the behaviour every
// snapshot storage shares.
#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include "raft/core/snapshot.hpp"
#include "raft/storage/detail/crc32c.hpp"
#include "raft/storage/file.hpp"
#include "storage_support.hpp"

using namespace raft;
using storage_test::bytes_of;
using storage_test::no_sync;
using storage_test::read_file;
using storage_test::run;
using storage_test::temp_dir;
using storage_test::write_file;
namespace fs = std::filesystem;

namespace {

log_entry entry(std::uint64_t index, std::uint64_t term) {
  return log_entry{term_t{term}, index_t{index}, entry_kind::command,
                   buffer::from_string("entry " + std::to_string(index))};
}
std::vector<log_entry> entries(std::uint64_t first, std::uint64_t count, std::uint64_t term) {
  std::vector<log_entry> out;
  for (std::uint64_t i = first; i < first + count; ++i) out.push_back(entry(i, term));
  return out;
}

snapshot_meta meta(std::uint64_t index, std::uint64_t term) {
  configuration c;
  c.voters = {node_id{1}, node_id{2}, node_id{3}};
  return snapshot_meta{index_t{index}, term_t{term}, c};
}

void commit(file_storage& s, const snapshot_meta& m, std::span<const std::byte> data) {
  auto w = s.create_snapshot(m);
  w.write(data);
  run(w.commit());
}

std::vector<std::byte> read_all(const file_snapshot_reader& r) {
  std::vector<std::byte> out(std::size_t(r.size()));
  REQUIRE(r.read_at(0, out) == out.size());
  return out;
}

/// Names of the files in `dir` that contain `part`, sorted.
std::vector<std::string> files_with(const fs::path& dir, const std::string& part) {
  std::vector<std::string> out;
  for (const auto& de : fs::directory_iterator(dir)) {
    const auto name = de.path().filename().string();
    if (name.find(part) != std::string::npos) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::uint32_t u32_at(const std::vector<char>& f, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t(std::uint8_t(f[at + std::size_t(i)])) << (8 * i);
  return v;
}
std::uint64_t u64_at(const std::vector<char>& f, std::size_t at) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t(std::uint8_t(f[at + std::size_t(i)])) << (8 * i);
  return v;
}

const char* const snap7 = "snapshot-00000000000000000007.snap";

}  // namespace

TEST_CASE("file_storage snapshot: the file has the documented layout") {
  temp_dir dir;
  const auto data = bytes_of("the state machine's bytes");
  {
    file_storage s(dir.path(), no_sync);
    (void)s.load();
    commit(s, meta(7, 2), data);
  }
  CHECK(files_with(dir.path(), "snapshot") == std::vector<std::string>{snap7});
  CHECK(files_with(dir.path(), ".tmp").empty());
  const auto f = read_file(dir.path() / snap7);
  const buffer m = encode(meta(7, 2));
  REQUIRE(f.size() == 32 + m.size() + data.size() + 12);
  CHECK(std::string(f.data(), 8) == "RAFTSNAP");
  CHECK(u32_at(f, 8) == 1);  // format version
  CHECK(u32_at(f, 12) == m.size());
  CHECK(u32_at(f, 16) == detail::crc32c(f.data(), 16));
  for (std::size_t k = 20; k < 32; ++k) CHECK(f[k] == 0);  // reserved
  CHECK(std::memcmp(f.data() + 32, m.bytes().data(), m.size()) == 0);
  CHECK(std::memcmp(f.data() + 32 + m.size(), data.data(), data.size()) == 0);
  CHECK(u64_at(f, f.size() - 12) == data.size());
  CHECK(u32_at(f, f.size() - 4) == detail::crc32c(f.data(), f.size() - 4));

  // A future format version is refused with a clear message (header checksum fixed up).
  auto bumped = f;
  bumped[8] = 2;
  write_file(dir.path() / snap7, bumped);
  file_storage s(dir.path(), no_sync);
  CHECK_THROWS_WITH_AS(s.load(), doctest::Contains("unsupported format version 2"), file_storage_corruption);
}

TEST_CASE("file_storage snapshot: a snapshot file cut or garbled at any byte is refused, naming file and offset") {
  temp_dir dir;
  std::string text;
  for (int i = 0; i < 40; ++i) text += char('A' + i % 26);
  const auto data = bytes_of(text);
  std::vector<char> older_file;
  {
    file_storage s(dir.path(), no_sync);
    (void)s.load();
    s.append(entries(1, 10, 1));
    run(s.flush());
    commit(s, meta(5, 1), bytes_of("older"));
    older_file = read_file(dir.path() / "snapshot-00000000000000000005.snap");
    commit(s, meta(7, 1), data);
  }
  const fs::path path = dir.path() / snap7;
  const auto full = read_file(path);
  REQUIRE(full.size() > 60);

  auto check_refused = [&](const char* what, std::size_t at, const std::vector<char>& content) {
    INFO(what << " at byte " << at << " of " << full.size());
    write_file(path, content);
    file_storage s(dir.path(), no_sync);
    try {
      (void)s.load();
      FAIL("load accepted a damaged snapshot file");
    } catch (const file_storage_corruption& e) {
      INFO(e.what());
      CHECK(e.file() == path);
      CHECK(std::string(e.what()).find(snap7) != std::string::npos);
      CHECK(std::string(e.what()).find("at byte offset " + std::to_string(e.offset())) != std::string::npos);
      CHECK(e.offset() <= full.size());
    }
    CHECK(read_file(path) == content);  // left as it was, for an operator to look at
  };
  for (std::size_t len = 0; len < full.size(); ++len)
    check_refused("cut", len, std::vector<char>(full.begin(), full.begin() + std::ptrdiff_t(len)));
  for (std::size_t at = 0; at < full.size(); ++at) {
    auto garbled = full;
    garbled[at] = char(garbled[at] ^ 0x10);
    check_refused("garbled", at, garbled);
  }
  auto longer = full;
  longer.push_back('x');
  check_refused("extended", full.size(), longer);

  // An older, valid snapshot left behind (a crash before the cleanup) changes nothing: the newest
  // is damaged, so load refuses rather than fall back to stale state; the older file is kept.
  write_file(dir.path() / "snapshot-00000000000000000005.snap", older_file);
  auto garbled = full;
  garbled[full.size() / 2] = char(garbled[full.size() / 2] ^ 0x01);
  check_refused("garbled, with an older snapshot present", full.size() / 2, garbled);
  CHECK(fs::exists(dir.path() / "snapshot-00000000000000000005.snap"));

  // Put back intact, everything loads again, and the leftover older file is removed.
  write_file(path, full);
  file_storage s(dir.path(), no_sync);
  CHECK(s.load().entries == entries(1, 10, 1));
  auto r = s.open_snapshot();
  REQUIRE(r.has_value());
  CHECK(r->meta() == meta(7, 1));
  CHECK(read_all(*r) == data);
  CHECK(files_with(dir.path(), "snapshot") == std::vector<std::string>{snap7});
}

TEST_CASE("file_storage snapshot: a temporary file (a commit a crash interrupted) is ignored and removed") {
  temp_dir dir;
  temp_dir other;
  std::vector<char> complete;  // a whole, valid snapshot file for index 9
  {
    file_storage s(other.path(), no_sync);
    (void)s.load();
    commit(s, meta(9, 2), bytes_of("newer state, never committed here"));
    complete = read_file(other.path() / "snapshot-00000000000000000009.snap");
  }
  const auto data = bytes_of("committed state");
  {
    file_storage s(dir.path(), no_sync);
    (void)s.load();
    s.append(entries(1, 12, 2));
    run(s.flush());
    commit(s, meta(5, 2), data);
  }
  const fs::path tmp = dir.path() / "snapshot-00000000000000000009.snap.tmp";
  for (const std::size_t len : {std::size_t{0}, std::size_t{1}, std::size_t{31}, std::size_t{32}, complete.size() / 2,
                                complete.size() - 1, complete.size()}) {
    INFO("temporary file of " << len << " bytes");
    write_file(tmp, std::vector<char>(complete.begin(), complete.begin() + std::ptrdiff_t(len)));
    file_storage s(dir.path(), no_sync);
    CHECK(s.load().entries == entries(1, 12, 2));
    CHECK_FALSE(fs::exists(tmp));
    auto r = s.open_snapshot();
    REQUIRE(r.has_value());
    CHECK(r->meta() == meta(5, 2));
    CHECK(read_all(*r) == data);
  }
  // Without any committed snapshot, a temporary file leaves none.
  temp_dir fresh;
  {
    file_storage s(fresh.path(), no_sync);
    (void)s.load();
  }
  write_file(fresh.path() / "snapshot-00000000000000000009.snap.tmp", complete);
  file_storage s(fresh.path(), no_sync);
  (void)s.load();
  CHECK_FALSE(s.open_snapshot().has_value());
  CHECK(files_with(fresh.path(), "snapshot").empty());

  // A writer destroyed before commit removes its temporary file at once, also after it wrote
  // more than its buffer (so the file had data on disk).
  {
    auto w = s.create_snapshot(meta(3, 1));
    const std::vector<std::byte> big(3 << 20, std::byte{0x42});
    w.write(big);
    CHECK(files_with(fresh.path(), "snapshot") == std::vector<std::string>{"snapshot-00000000000000000003.snap.tmp"});
  }
  CHECK(files_with(fresh.path(), "snapshot").empty());
  CHECK_FALSE(s.open_snapshot().has_value());
}

TEST_CASE("file_storage snapshot: commit deletes older snapshots; load deletes leftovers; a reader outlives both") {
  temp_dir dir;
  const auto a = bytes_of("snapshot A"), b = bytes_of("snapshot B, a little longer");
  std::optional<file_snapshot_reader> old_reader;
  std::vector<char> a_file;
  {
    file_storage s(dir.path(), no_sync);
    (void)s.load();
    commit(s, meta(5, 1), a);
    a_file = read_file(dir.path() / "snapshot-00000000000000000005.snap");
    old_reader = s.open_snapshot();
    commit(s, meta(9, 1), b);
    CHECK(files_with(dir.path(), "snapshot") == std::vector<std::string>{"snapshot-00000000000000000009.snap"});
    CHECK(read_all(*old_reader) == a);  // its file is gone; the reader holds it open
    CHECK(old_reader->path().filename() == "snapshot-00000000000000000005.snap");
  }
  CHECK(read_all(*old_reader) == a);  // and the storage is gone too
  CHECK(old_reader->meta() == meta(5, 1));

  // A crash between a commit's rename and its cleanup leaves the older file: load removes it.
  write_file(dir.path() / "snapshot-00000000000000000005.snap", a_file);
  // Files with other names are not snapshots and are left alone.
  write_file(dir.path() / "snapshot-notes.txt", {'h', 'i'});
  file_storage s(dir.path(), no_sync);
  (void)s.load();
  auto r = s.open_snapshot();
  REQUIRE(r.has_value());
  CHECK(r->meta() == meta(9, 1));
  CHECK(read_all(*r) == b);
  CHECK(files_with(dir.path(), "snapshot") ==
        std::vector<std::string>{"snapshot-00000000000000000009.snap", "snapshot-notes.txt"});
}

TEST_CASE("file_storage snapshot: a log compacted past the newest snapshot is refused") {
  temp_dir dir;
  temp_dir other;
  std::vector<char> at40;
  {
    file_storage s(other.path(), no_sync);
    (void)s.load();
    commit(s, meta(40, 1), bytes_of("forty"));
    at40 = read_file(other.path() / "snapshot-00000000000000000040.snap");
  }
  {
    file_storage s(dir.path(), no_sync);
    (void)s.load();
    s.append(entries(1, 60, 1));
    run(s.flush());
    commit(s, meta(50, 1), bytes_of("fifty"));
    s.compact_through(index_t{50}, term_t{1});
    run(s.flush());
  }
  {
    file_storage s(dir.path(), no_sync);
    const auto ps = s.load();
    CHECK(ps.base_index == index_t{50});
    CHECK(ps.entries == entries(51, 10, 1));
  }
  // The snapshot at 50 lost, one at 40 in its place: entries 41..50 exist nowhere.
  fs::remove(dir.path() / "snapshot-00000000000000000050.snap");
  write_file(dir.path() / "snapshot-00000000000000000040.snap", at40);
  file_storage s(dir.path(), no_sync);
  CHECK_THROWS_WITH_AS(s.load(), doctest::Contains("a newer snapshot is missing"), file_storage_corruption);
}

TEST_CASE("file_storage snapshot: commit syncs on another thread; the executor keeps running meanwhile") {
  temp_dir dir;
  std::mutex m;
  std::condition_variable cv;
  bool block = false, entered = false, release = false;
  std::thread::id sync_thread;
  std::atomic<int> syncs{0};
  const auto test_thread = std::this_thread::get_id();
  file_storage_options o;
  o.sync_hook = [&](int fd) {
    ++syncs;
    std::unique_lock lock(m);
    if (block && !entered) {
      entered = true;
      sync_thread = std::this_thread::get_id();
      cv.notify_all();
      // Block until released, unless this is the test's own thread (a regression: then the
      // checks below fail instead of the test hanging).
      if (sync_thread != test_thread) cv.wait(lock, [&] { return release; });
    }
    return ::fsync(fd);
  };
  file_storage s(dir.path(), o);
  (void)s.load();
  const auto data = bytes_of("state");
  auto w = s.create_snapshot(meta(4, 1));
  w.write(data);
  {
    std::lock_guard lock(m);
    block = true;
  }
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
  {
    // Run the io_context until the commit's first sync is in progress (and blocked).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
      io.poll();
      std::unique_lock lock(m);
      if (cv.wait_for(lock, std::chrono::milliseconds(5), [&] { return entered; })) break;
      REQUIRE(std::chrono::steady_clock::now() < deadline);
    }
  }
  CHECK(sync_thread != std::this_thread::get_id());
  // The sync is blocked, yet the executor runs other work, and the commit has not completed.
  bool other_work = false;
  asio::post(io, [&] { other_work = true; });
  io.poll();
  CHECK(other_work);
  CHECK_FALSE(done);
  CHECK_FALSE(s.open_snapshot().has_value());  // not current before commit completes
  {
    std::lock_guard lock(m);
    release = true;
  }
  cv.notify_all();
  io.run_for(std::chrono::seconds(30));
  REQUIRE(done);
  if (error) std::rethrow_exception(error);
  CHECK(on_executor);
  CHECK(syncs.load() >= 2);  // the file, then the directory
  REQUIRE(s.open_snapshot().has_value());
  CHECK(read_all(*s.open_snapshot()) == data);
}

TEST_CASE("file_storage snapshot: with fsync off nothing is synced, and the snapshot still survives a reopen") {
  temp_dir dir;
  std::atomic<int> syncs{0};
  file_storage_options o{false, std::size_t{64} << 20, [&](int) {
                           ++syncs;
                           return 0;
                         }};
  const auto data = bytes_of("unsynced but written");
  {
    file_storage s(dir.path(), o);
    (void)s.load();
    s.append(entries(1, 3, 1));
    run(s.flush());
    commit(s, meta(2, 1), data);
    s.compact_through(index_t{2}, term_t{1});
    run(s.flush());
  }
  CHECK(syncs.load() == 0);
  file_storage s(dir.path(), o);
  const auto ps = s.load();
  CHECK(ps.base_index == index_t{2});
  CHECK(ps.entries == entries(3, 1, 1));
  REQUIRE(s.open_snapshot().has_value());
  CHECK(read_all(*s.open_snapshot()) == data);
}

TEST_CASE("file_storage snapshot: a failed sync in commit is fatal; the previous snapshot stays") {
  temp_dir dir;
  std::atomic<bool> fail{false};
  file_storage_options o;
  o.sync_hook = [&](int fd) {
    if (fail.load()) {
      errno = EIO;
      return -1;
    }
    return ::fsync(fd);
  };
  const auto a = bytes_of("good"), b = bytes_of("never durable");
  {
    file_storage s(dir.path(), o);
    (void)s.load();
    s.append(entries(1, 5, 1));
    run(s.flush());
    commit(s, meta(3, 1), a);
    auto w = s.create_snapshot(meta(5, 1));
    w.write(b);
    fail = true;
    try {
      run(w.commit());
      FAIL("commit succeeded although the sync failed");
    } catch (const std::system_error& e) {
      CHECK(e.code() == std::errc::io_error);
      CHECK(std::string(e.what()).find("snapshot-00000000000000000005.snap.tmp") != std::string::npos);
    }
    fail = false;  // never retried: the storage stays failed
    CHECK(s.open_snapshot()->meta() == meta(3, 1));
    CHECK_THROWS_AS(s.append(entries(6, 1, 1)), std::system_error);
    CHECK_THROWS_AS(run(s.flush()), std::system_error);
    CHECK_THROWS_AS((void)s.create_snapshot(meta(6, 1)), std::system_error);
    CHECK_THROWS_AS(s.compact_through(index_t{3}, term_t{1}), std::system_error);
    CHECK_THROWS_AS((void)s.load(), std::system_error);
  }
  file_storage s(dir.path(), o);
  CHECK(s.load().entries == entries(1, 5, 1));
  REQUIRE(s.open_snapshot().has_value());
  CHECK(s.open_snapshot()->meta() == meta(3, 1));
  CHECK(read_all(*s.open_snapshot()) == a);
  CHECK(files_with(dir.path(), ".tmp").empty());
}

TEST_CASE("file_storage snapshot: create_snapshot's rules") {
  temp_dir dir;
  file_storage s(dir.path(), no_sync);
  CHECK_THROWS_AS((void)s.create_snapshot(meta(1, 1)), std::logic_error);  // before load()
  (void)s.load();
  commit(s, meta(10, 2), bytes_of("ten"));
  // Never older than the current snapshot; the same index is allowed (it replaces it).
  CHECK_THROWS_WITH_AS((void)s.create_snapshot(meta(9, 2)), doctest::Contains("below the current snapshot"),
                       std::invalid_argument);
  commit(s, meta(10, 3), bytes_of("ten again"));
  CHECK(s.open_snapshot()->meta() == meta(10, 3));
  // Metadata that load() could not decode is refused up front.
  CHECK_THROWS_AS((void)s.create_snapshot(meta(11, 0)), std::invalid_argument);
  snapshot_meta no_voters = meta(11, 3);
  no_voters.config.voters.clear();
  CHECK_THROWS_AS((void)s.create_snapshot(no_voters), std::invalid_argument);
  // One writer at a time; load() is refused while one is open.
  {
    auto w = s.create_snapshot(meta(12, 3));
    CHECK_THROWS_AS((void)s.create_snapshot(meta(13, 3)), std::logic_error);
    CHECK_THROWS_AS(s.load(), std::logic_error);
    auto moved = std::move(w);
    CHECK_THROWS_AS(w.write(bytes_of("x")), std::logic_error);  // NOLINT: use after move is the point
    moved.write(bytes_of("twelve"));
    run(moved.commit());
    CHECK_THROWS_AS(moved.write(bytes_of("x")), std::logic_error);  // after commit
  }
  auto w = s.create_snapshot(meta(13, 3));  // the previous writer is gone
  w.write(bytes_of("thirteen"));
  run(w.commit());
  CHECK(read_all(*s.open_snapshot()) == bytes_of("thirteen"));
  CHECK(files_with(dir.path(), "snapshot") == std::vector<std::string>{"snapshot-00000000000000000013.snap"});
}
