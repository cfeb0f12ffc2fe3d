// raft::memory_storage with snapshots and compaction: exactly what crash() keeps (committed
// snapshots; compactions, truncations and appends only once flushed, in order), dead writers after
// a crash, and the argument checks. The conformance suite covers the shared behaviour.
#include <cstddef>  // before any Asio header (raft/detail/asio_check.hpp)

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "raft/concepts.hpp"
#include "raft/storage/memory.hpp"
#include "storage_support.hpp"

using namespace raft;
using storage_test::bytes_of;
using storage_test::run;

namespace {

log_entry term_tagged_entry(std::uint64_t index, std::uint64_t term) {
  return log_entry{term_t{term}, index_t{index}, entry_kind::command,
                   buffer::from_string(std::to_string(index) + "@" + std::to_string(term))};
}
std::vector<log_entry> term_tagged_entries(std::uint64_t first, std::uint64_t count, std::uint64_t term) {
  std::vector<log_entry> out;
  for (std::uint64_t i = first; i < first + count; ++i) out.push_back(term_tagged_entry(i, term));
  return out;
}

snapshot_meta one_voter_meta(std::uint64_t index, std::uint64_t term) {
  configuration c;
  c.voters = {node_id{1}};
  return snapshot_meta{index_t{index}, term_t{term}, c};
}

void commit_memory_snapshot(memory_storage& s, const snapshot_meta& m, const std::string& text) {
  auto w = s.create_snapshot(m);
  w.write(bytes_of(text));
  run(w.commit());
}

std::vector<std::byte> read_memory_snapshot(const memory_snapshot_reader& r) {
  std::vector<std::byte> out(std::size_t(r.size()));
  CHECK(r.read_at(0, out) == out.size());
  return out;
}

}  // namespace

static_assert(snapshot_storage<memory_storage>);

TEST_CASE("memory_storage: crash() loses a compaction and the appends after it until they are flushed") {
  memory_storage s;
  s.append(term_tagged_entries(1, 10, 1));
  run(s.flush());
  commit_memory_snapshot(s, one_voter_meta(6, 1), "six");
  s.compact_through(index_t{6}, term_t{1});
  s.append(term_tagged_entries(11, 2, 1));
  CHECK(s.last_index() == index_t{12});
  s.crash();
  // Exactly the flushed state: no compaction, no new entries; the committed snapshot is kept.
  persistent_state ps = s.load();
  CHECK(ps.base_index == index_t{0});
  CHECK(ps.base_term == term_t{0});
  CHECK(ps.entries == term_tagged_entries(1, 10, 1));
  CHECK(s.last_index() == index_t{10});
  REQUIRE(s.open_snapshot().has_value());
  CHECK(s.open_snapshot()->meta() == one_voter_meta(6, 1));
  CHECK(read_memory_snapshot(*s.open_snapshot()) == bytes_of("six"));

  // The same, flushed: durable in order.
  s.compact_through(index_t{6}, term_t{1});
  s.append(term_tagged_entries(11, 2, 1));
  run(s.flush());
  s.crash();
  ps = s.load();
  CHECK(ps.base_index == index_t{6});
  CHECK(ps.base_term == term_t{1});
  CHECK(ps.entries == term_tagged_entries(7, 6, 1));
}

TEST_CASE("memory_storage: truncation, appends and compaction in one flush apply in call order") {
  memory_storage s;
  s.append(term_tagged_entries(1, 10, 1));
  run(s.flush());
  // A new leader overwrote 9 and 10, then a snapshot at 10 (of the new entries) was installed.
  s.truncate_after(index_t{8});
  s.append(term_tagged_entries(9, 4, 2));
  commit_memory_snapshot(s, one_voter_meta(10, 2), "ten");
  s.compact_through(index_t{10}, term_t{2});
  s.crash();
  CHECK(s.load().entries == term_tagged_entries(1, 10, 1));  // none of it: the old log, whole
  CHECK(s.load().base_index == index_t{0});

  s.truncate_after(index_t{8});
  s.append(term_tagged_entries(9, 4, 2));
  s.compact_through(index_t{10}, term_t{2});
  run(s.flush());
  s.crash();
  const auto ps = s.load();
  CHECK(ps.base_index == index_t{10});
  CHECK(ps.base_term == term_t{2});
  CHECK(ps.entries == term_tagged_entries(11, 2, 2));
  CHECK(s.entries() == term_tagged_entries(11, 2, 2));

  // Past the end: the log empties and continues after the base.
  s.compact_through(index_t{20}, term_t{3});
  CHECK(s.last_index() == index_t{20});
  CHECK_THROWS_AS(s.append(term_tagged_entries(13, 1, 3)), std::invalid_argument);  // not after the base
  s.append(term_tagged_entries(21, 2, 3));
  run(s.flush());
  s.crash();
  CHECK(s.load().base_index == index_t{20});
  CHECK(s.load().entries == term_tagged_entries(21, 2, 3));
}

TEST_CASE("memory_storage: a snapshot writer from before a crash cannot commit") {
  memory_storage s;
  commit_memory_snapshot(s, one_voter_meta(3, 1), "three");
  auto w = s.create_snapshot(one_voter_meta(5, 1));
  w.write(bytes_of("five"));
  s.crash();  // the power went out while it was being written
  CHECK_THROWS_AS(run(w.commit()), std::logic_error);
  CHECK(s.open_snapshot()->meta() == one_voter_meta(3, 1));
  CHECK(read_memory_snapshot(*s.open_snapshot()) == bytes_of("three"));
  // A new writer after the crash works.
  commit_memory_snapshot(s, one_voter_meta(5, 1), "five");
  CHECK(read_memory_snapshot(*s.open_snapshot()) == bytes_of("five"));
}

TEST_CASE("memory_storage: argument checks") {
  memory_storage s;
  s.append(term_tagged_entries(1, 5, 1));
  CHECK_THROWS_AS(s.append(term_tagged_entries(7, 1, 1)), std::invalid_argument);  // a gap
  s.compact_through(index_t{3}, term_t{1});
  CHECK_THROWS_AS(s.truncate_after(index_t{2}), std::invalid_argument);  // below the base
  s.truncate_after(index_t{3});  // at the base: allowed, empties the log
  CHECK(s.last_index() == index_t{3});
  commit_memory_snapshot(s, one_voter_meta(3, 1), "x");
  CHECK_THROWS_AS((void)s.create_snapshot(one_voter_meta(2, 1)), std::invalid_argument);  // older than current
  auto w = s.create_snapshot(one_voter_meta(3, 1));
  run(w.commit());
  CHECK_THROWS_AS(run(w.commit()), std::logic_error);  // twice
  CHECK_THROWS_AS(w.write(bytes_of("y")), std::logic_error);
  CHECK(s.open_snapshot()->size() == 0);
}
