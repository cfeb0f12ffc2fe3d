// raft::file_storage: its format, crash recovery (torn tails at every byte of the last record,
// garbled bytes, corruption in the middle), the directory lock, fail-stop on sync errors,
// compaction, and group commit.
#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "raft/storage/detail/crc32c.hpp"
#include "raft/storage/file.hpp"
#include "storage_support.hpp"

using namespace raft;
using storage_test::no_sync;
using storage_test::read_file;
using storage_test::temp_dir;
using storage_test::write_file;
namespace fs = std::filesystem;

namespace {

log_entry sized_entry(std::uint64_t index, std::uint64_t term, std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t k = 0; k < size; ++k) s[k] = char('a' + (index * 7 + k) % 26);
  return log_entry{term_t{term}, index_t{index}, entry_kind::command, buffer::from_string(s)};
}

std::vector<log_entry> sized_entries(std::uint64_t first, std::uint64_t count, std::uint64_t term, std::size_t size) {
  std::vector<log_entry> out;
  for (std::uint64_t i = first; i < first + count; ++i) out.push_back(sized_entry(i, term, size));
  return out;
}

void flush(file_storage& s) { storage_test::run(s.flush()); }

std::vector<fs::path> segments(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& de : fs::directory_iterator(dir))
    if (de.path().extension() == ".seg") out.push_back(de.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("crc32c: standard check value and chaining") {
  const char* text = "123456789";
  CHECK(detail::crc32c(text, 9) == 0xE3069283u);
  CHECK(detail::crc32c_update(detail::crc32c(text, 4), text + 4, 5) == 0xE3069283u);
  CHECK(detail::crc32c(text, 0) == 0u);
  std::vector<unsigned char> zeros(32, 0);
  CHECK(detail::crc32c(zeros.data(), zeros.size()) == 0x8A9136AAu);  // RFC 3720 B.4
}

TEST_CASE("file_storage: segment and snapshot file names, written and parsed") {
  namespace ff = detail::file_format;
  using ff::indexed_file;
  CHECK(ff::file_name(indexed_file::segment, index_t{1}) == "log-00000000000000000001.seg");
  CHECK(ff::file_name(indexed_file::snapshot, index_t{0}) == "snapshot-00000000000000000000.snap");
  CHECK(ff::file_name(indexed_file::snapshot, index_t{1234567890}) == "snapshot-00000000001234567890.snap");
  CHECK(ff::file_name(indexed_file::segment, index_t{~std::uint64_t{0}}) == "log-18446744073709551615.seg");

  for (std::uint64_t i : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{10}, std::uint64_t{999},
                          std::uint64_t{1} << 40, ~std::uint64_t{0} - 1, ~std::uint64_t{0}}) {
    INFO("index " << i);
    for (auto kind : {indexed_file::segment, indexed_file::snapshot}) {
      const auto name = ff::file_name(kind, index_t{i});
      CHECK(ff::parse_file_name(kind, name) == index_t{i});
      // Each kind reads only its own names.
      const auto other = kind == indexed_file::segment ? indexed_file::snapshot : indexed_file::segment;
      CHECK_FALSE(ff::parse_file_name(other, name).has_value());
    }
  }

  // Anything else is not one of these files: load() leaves it alone.
  for (const char* name : {
           "log-00000000000000000001.seg.tmp",     // an interrupted creation
           "snapshot-00000000000000000009.snap.tmp",
           "log-0000000000000000001.seg",          // 19 digits
           "log-000000000000000000001.seg",        // 21 digits
           "log-0000000000000000000x.seg",         // not a digit
           "log-+0000000000000000001.seg",         // a sign
           "log- 0000000000000000001.seg",         // a space
           "log-18446744073709551616.seg",         // u64 max + 1
           "log-99999999999999999999.seg",         // beyond u64
           "LOG-00000000000000000001.seg",         // case matters
           "log-00000000000000000001.SEG",
           "log-00000000000000000001",
           "00000000000000000001.seg",
           "snapshot-notes.txt",
           "hard_state",
           "",
       }) {
    INFO("name '" << name << "'");
    CHECK_FALSE(ff::parse_file_name(indexed_file::segment, name).has_value());
    CHECK_FALSE(ff::parse_file_name(indexed_file::snapshot, name).has_value());
  }
}

TEST_CASE("file_storage: files on disk have the documented headers") {
  temp_dir dir;
  {
    file_storage s(dir.path(), no_sync);
    (void)s.load();
    s.save_hard_state(hard_state{term_t{4}, node_id{2}});
    s.append(sized_entries(1, 3, 1, 10));
    flush(s);
  }
  const auto hs = read_file(dir.path() / "hard_state");
  REQUIRE(hs.size() == 40);
  CHECK(std::string(hs.data(), 8) == "RAFTHARD");
  CHECK(hs[8] == 1);  // format version 1, little-endian
  CHECK(hs[16] == 4);  // term
  CHECK(hs[24] == 2);  // voted_for
  const auto segs = segments(dir.path());
  REQUIRE(segs.size() == 1);
  CHECK(segs[0].filename() == "log-00000000000000000001.seg");
  const auto seg = read_file(segs[0]);
  REQUIRE(seg.size() == 32 + 3 * (8 + 17 + 10));
  CHECK(std::string(seg.data(), 8) == "RAFTSEGM");
  CHECK(seg[8] == 1);
  CHECK(seg[32] == 27);  // first record's length: 17 + 10 payload bytes
  CHECK(seg[32 + 8 + 8] == 1);  // its index, after the term

  // A future format version is refused with a clear message.
  auto bumped = seg;
  bumped[8] = 2;
  write_file(segs[0], bumped);
  file_storage s(dir.path(), no_sync);
  CHECK_THROWS_WITH_AS(s.load(), doctest::Contains("unsupported format version 2"), file_storage_corruption);
}

TEST_CASE("file_storage: a torn last record, cut at every byte, is dropped; the log goes on") {
  temp_dir dir;
  constexpr std::uint64_t n = 5;
  std::uintmax_t before_last = 0;
  {
    file_storage s(dir.path(), no_sync);
    (void)s.load();
    s.append(sized_entries(1, n - 1, 1, 50));
    flush(s);
    before_last = fs::file_size(segments(dir.path()).at(0));
    s.append(sized_entries(n, 1, 1, 70));
    flush(s);
  }
  const fs::path seg = segments(dir.path()).at(0);
  const auto full = read_file(seg);
  REQUIRE(full.size() == before_last + 8 + 17 + 70);

  auto check_recovers = [&](const char* what, std::size_t at) {
    INFO(what << " at byte " << at << " (last record starts at " << before_last << ")");
    {
      file_storage s(dir.path(), no_sync);
      const auto ps = s.load();
      REQUIRE(ps.entries.size() == n - 1);
      CHECK(ps.entries == sized_entries(1, n - 1, 1, 50));
      CHECK(fs::file_size(seg) == before_last);  // the torn tail was cut off the file
      s.append(sized_entries(n, 2, 2, 30));
      flush(s);
    }
    file_storage s(dir.path(), no_sync);
    const auto ps = s.load();
    REQUIRE(ps.entries.size() == n + 1);
    CHECK(ps.entries.back() == sized_entry(n + 1, 2, 30));
  };

  for (std::size_t len = before_last; len < full.size(); ++len) {
    write_file(seg, std::vector<char>(full.begin(), full.begin() + std::ptrdiff_t(len)));
    check_recovers("cut", len);
  }
  for (std::size_t at = before_last; at < full.size(); ++at) {
    auto garbled = full;
    garbled[at] = char(garbled[at] ^ 0x5A);
    write_file(seg, garbled);
    check_recovers("garbled", at);
  }
  // A tail of zeros (a file extended by a crash, its data never written) is a torn tail too.
  auto zeros = std::vector<char>(full.begin(), full.begin() + std::ptrdiff_t(before_last));
  zeros.resize(zeros.size() + 4096, '\0');
  write_file(seg, zeros);
  check_recovers("zero-filled tail", before_last);
}

TEST_CASE("file_storage: a corrupt record in the middle is refused, naming file and offset") {
  temp_dir dir;
  std::uintmax_t third = 0;
  {
    file_storage s(dir.path(), no_sync);
    (void)s.load();
    s.append(sized_entries(1, 2, 1, 40));
    flush(s);
    third = fs::file_size(segments(dir.path()).at(0));
    s.append(sized_entries(3, 8, 1, 40));
    flush(s);
  }
  const fs::path seg = segments(dir.path()).at(0);
  const auto full = read_file(seg);
  for (const std::size_t delta : {std::size_t{0}, std::size_t{5}, std::size_t{30}}) {
    auto bad = full;
    bad[third + delta] = char(bad[third + delta] ^ 0x01);
    write_file(seg, bad);
    file_storage s(dir.path(), no_sync);
    try {
      (void)s.load();
      FAIL("load accepted a corrupt record in the middle of the log");
    } catch (const file_storage_corruption& e) {
      const std::string what = e.what();
      INFO(what);
      CHECK(what.find("log-00000000000000000001.seg") != std::string::npos);
      CHECK(what.find("offset " + std::to_string(third)) != std::string::npos);
      CHECK(e.offset() == third);
      CHECK(e.file() == seg);
    }
    CHECK(read_file(seg) == bad);  // nothing was cut
  }
}

TEST_CASE("file_storage: a damaged segment before the last one is refused") {
  temp_dir dir;
  {
    file_storage s(dir.path(), file_storage_options{false, 1024, {}});
    (void)s.load();
    s.append(sized_entries(1, 100, 1, 50));
    flush(s);
  }
  auto segs = segments(dir.path());
  REQUIRE(segs.size() > 3);
  // A cut in the middle segment: the later segments hold valid entries.
  const auto size = fs::file_size(segs[1]);
  fs::resize_file(segs[1], size - 10);
  file_storage s(dir.path(), no_sync);
  CHECK_THROWS_AS(s.load(), file_storage_corruption);
  // A missing segment: a gap.
  fs::remove(segs[1]);
  CHECK_THROWS_WITH_AS(s.load(), doctest::Contains("gap in the log"), file_storage_corruption);
}

TEST_CASE("file_storage: unflushed changes are lost at destruction, like a crash") {
  temp_dir dir;
  {
    file_storage s(dir.path());
    (void)s.load();
    s.append(sized_entries(1, 10, 1, 20));
    flush(s);
    s.truncate_after(index_t{4});
    s.append(sized_entries(5, 3, 2, 20));
  }
  file_storage s(dir.path());
  CHECK(s.load().entries == sized_entries(1, 10, 1, 20));
}

TEST_CASE("file_storage: one directory, one storage (flock)") {
  temp_dir dir;
  std::optional<file_storage> a(std::in_place, dir.path(), no_sync);
  CHECK_THROWS_WITH_AS(file_storage(dir.path(), no_sync), doctest::Contains("already in use"), std::system_error);
  a.reset();
  file_storage b(dir.path(), no_sync);
  CHECK(b.load().entries.empty());
}

TEST_CASE("file_storage: a failed sync is fatal: flush throws, and so does every later call") {
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
  {
    file_storage s(dir.path(), o);
    (void)s.load();
    s.append(sized_entries(1, 5, 1, 20));
    flush(s);
    fail = true;
    s.append(sized_entries(6, 5, 1, 20));
    try {
      flush(s);
      FAIL("flush succeeded although fdatasync failed");
    } catch (const std::system_error& e) {
      CHECK(e.code() == std::errc::io_error);
      CHECK(std::string(e.what()).find("fdatasync") != std::string::npos);
    }
    fail = false;  // never retried: the storage stays failed
    CHECK_THROWS_AS(s.append(sized_entries(11, 1, 1, 20)), std::system_error);
    CHECK_THROWS_AS(s.truncate_after(index_t{3}), std::system_error);
    CHECK_THROWS_AS(s.save_hard_state(hard_state{term_t{2}, no_node}), std::system_error);
    CHECK_THROWS_AS(flush(s), std::system_error);
    CHECK_THROWS_AS(s.load(), std::system_error);
  }
  {
    // save_hard_state fails the same way.
    file_storage s(dir.path(), o);
    CHECK(s.load().entries.size() >= 5);
    fail = true;
    CHECK_THROWS_AS(s.save_hard_state(hard_state{term_t{3}, node_id{1}}), std::system_error);
    fail = false;
    CHECK_THROWS_AS(s.append(sized_entries(11, 1, 1, 20)), std::system_error);
  }
}

TEST_CASE("file_storage: compact_through drops whole segments and keeps the base") {
  temp_dir dir;
  const file_storage_options small{true, 4096, {}};
  std::size_t segs_before = 0;
  {
    file_storage s(dir.path(), small);
    (void)s.load();
    s.append(sized_entries(1, 1000, 1, 40));
    flush(s);
    segs_before = segments(dir.path()).size();
    REQUIRE(segs_before > 10);
    s.compact_through(index_t{500}, term_t{1});
    s.compact_through(index_t{400}, term_t{1});  // below the base: nothing
    flush(s);
    s.append(sized_entries(1001, 10, 2, 40));
    flush(s);
  }
  std::vector<log_entry> want = sized_entries(501, 500, 1, 40);
  for (auto& e : sized_entries(1001, 10, 2, 40)) want.push_back(e);
  {
    file_storage s(dir.path(), small);
    const auto ps = s.load();
    CHECK(ps.base_index == index_t{500});
    CHECK(ps.base_term == term_t{1});
    CHECK(ps.entries == want);
    const auto segs = segments(dir.path());
    CHECK(segs.size() < segs_before / 2 + 3);
    CHECK(segs.front().filename().string() <= "log-00000000000000000501.seg");
    CHECK_THROWS_AS(s.truncate_after(index_t{499}), std::invalid_argument);
    // Compacting past the end empties the log; it continues after the new base.
    s.compact_through(index_t{2000}, term_t{7});
    flush(s);
    CHECK(segments(dir.path()).empty());
    s.append(sized_entries(2001, 5, 7, 40));
    flush(s);
  }
  file_storage s(dir.path(), small);
  const auto ps = s.load();
  CHECK(ps.base_index == index_t{2000});
  CHECK(ps.base_term == term_t{7});
  CHECK(ps.entries == sized_entries(2001, 5, 7, 40));
}

TEST_CASE("file_storage: group commit: one write and one sync per flush") {
  temp_dir dir;
  file_storage s(dir.path());
  (void)s.load();
  for (int round = 0; round < 5; ++round) {
    const auto before = s.stats();
    s.append(sized_entries(1 + std::uint64_t(round) * 100, 60, 1, 64));
    s.append(sized_entries(61 + std::uint64_t(round) * 100, 40, 1, 64));
    flush(s);
    const auto after = s.stats();
    CHECK(after.write_calls - before.write_calls == 1);
    CHECK(after.syncs - before.syncs == 1);
    CHECK(after.entries_written - before.entries_written == 100);
  }
  CHECK_THROWS_AS(s.append(sized_entries(1000, 1, 1, 1)), std::invalid_argument);  // not contiguous
}
