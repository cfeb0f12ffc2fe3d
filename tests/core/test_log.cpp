// Tests for raft/core/log.hpp: the in-memory view of the replicated log.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "raft/core/log.hpp"
#include "test_support.hpp"

using namespace raft;
using raft_test::make_entry;
using raft_test::make_log;

namespace {

constexpr std::size_t unlimited = std::numeric_limits<std::size_t>::max();

/// Indices of the copied entries, for compact comparisons.
std::vector<std::uint64_t> indices(const std::vector<log_entry>& entries) {
  std::vector<std::uint64_t> out;
  for (const auto& e : entries) out.push_back(e.index.value);
  return out;
}

/// A log of `n` entries of term 1, each with a `payload`-byte payload.
in_memory_log log_of_sized_entries(std::uint64_t n, std::size_t payload) {
  in_memory_log log;
  for (std::uint64_t i = 1; i <= n; ++i)
    log.append(log_entry{term_t{1}, index_t{i}, entry_kind::command, buffer::from_string(std::string(payload, 'x'))});
  return log;
}

}  // namespace

// ---- basic shape -----------------------------------------------------------------------------

TEST_CASE("an empty log sits before index 1, at term 0") {
  const in_memory_log log;
  CHECK(log.empty());
  CHECK(log.first_index() == index_t{1});
  CHECK(log.last_index() == index_t{0});
  CHECK(log.last_term() == term_t{0});
  CHECK(log.term_at(index_t{0}) == term_t{0});
  CHECK_FALSE(log.term_at(index_t{1}).has_value());
}

TEST_CASE("appending extends the log by one index and records the entry's term") {
  in_memory_log log;
  log.append(make_entry(1, 1));
  CHECK(log.last_index() == index_t{1});
  CHECK(log.last_term() == term_t{1});

  log.append(make_entry(2, 1));
  log.append(make_entry(3, 4));
  CHECK_FALSE(log.empty());
  CHECK(log.first_index() == index_t{1});
  CHECK(log.last_index() == index_t{3});
  CHECK(log.last_term() == term_t{4});
  CHECK(log.term_at(index_t{2}) == term_t{1});
  CHECK(log.term_at(index_t{3}) == term_t{4});
  CHECK(log.at(index_t{2}) == make_entry(2, 1));
  CHECK(log.at(index_t{3}) == make_entry(3, 4));
}

TEST_CASE("term_at knows nothing past the last entry") {
  const in_memory_log log = make_log({1, 1, 2});
  CHECK(log.term_at(index_t{3}) == term_t{2});
  CHECK_FALSE(log.term_at(index_t{4}).has_value());
  CHECK_FALSE(log.term_at(index_t{std::numeric_limits<std::uint64_t>::max()}).has_value());
}

TEST_CASE("the log shares an entry's payload instead of copying it") {
  in_memory_log log;
  const buffer payload = buffer::from_string("command bytes");
  log.append(log_entry{term_t{1}, index_t{1}, entry_kind::command, payload});
  CHECK(log.at(index_t{1}).data.bytes().data() == payload.bytes().data());
}

TEST_CASE("a copy of a log is independent of the original") {
  const in_memory_log original = make_log({1, 2, 3});
  in_memory_log copy = original;
  copy.truncate_after(index_t{1});
  copy.append(make_entry(2, 5));
  CHECK(original.last_index() == index_t{3});
  CHECK(original.term_at(index_t{2}) == term_t{2});
  CHECK(copy.last_index() == index_t{2});
  CHECK(copy.term_at(index_t{2}) == term_t{5});
}

// ---- truncate_after --------------------------------------------------------------------------

TEST_CASE("truncate_after keeps the given index and drops everything after it") {
  in_memory_log log = make_log({1, 1, 2, 2, 3});
  log.truncate_after(index_t{3});
  CHECK(log.last_index() == index_t{3});
  CHECK(log.last_term() == term_t{2});
  CHECK(log.at(index_t{3}) == make_entry(3, 2));
  CHECK_FALSE(log.term_at(index_t{4}).has_value());
}

TEST_CASE("truncate_after at or past the last index changes nothing") {
  in_memory_log log = make_log({1, 2, 3});
  log.truncate_after(index_t{3});
  CHECK(log.last_index() == index_t{3});
  log.truncate_after(index_t{10});
  CHECK(log.last_index() == index_t{3});
  CHECK(log.last_term() == term_t{3});
}

TEST_CASE("truncate_after 0 empties the log") {
  in_memory_log log = make_log({1, 2, 3});
  log.truncate_after(index_t{0});
  CHECK(log.empty());
  CHECK(log.last_index() == index_t{0});
  CHECK(log.last_term() == term_t{0});
}

TEST_CASE("after a truncation, new entries continue at the cut, possibly in a newer term") {
  in_memory_log log = make_log({1, 1, 2, 2});
  log.truncate_after(index_t{2});
  log.append(make_entry(3, 3));
  CHECK(log.last_index() == index_t{3});
  CHECK(log.term_at(index_t{2}) == term_t{1});
  CHECK(log.term_at(index_t{3}) == term_t{3});
}

// ---- a log with a nonzero base (after compaction) --------------------------------------------

TEST_CASE("a log with a compaction base starts right after it and knows only the base's term") {
  const in_memory_log log{index_t{10}, term_t{3}};
  CHECK(log.empty());
  CHECK(log.first_index() == index_t{11});
  CHECK(log.last_index() == index_t{10});
  CHECK(log.last_term() == term_t{3});
  CHECK(log.term_at(index_t{10}) == term_t{3});
  CHECK_FALSE(log.term_at(index_t{9}).has_value());
  CHECK_FALSE(log.term_at(index_t{0}).has_value());  // index 0 is compacted away too
  CHECK_FALSE(log.term_at(index_t{11}).has_value());
}

TEST_CASE("a log with a compaction base appends, reads and truncates at its own indices") {
  in_memory_log log = make_log(10, 3, {3, 4, 4});
  CHECK(log.first_index() == index_t{11});
  CHECK(log.last_index() == index_t{13});
  CHECK(log.at(index_t{11}) == make_entry(11, 3));
  CHECK(log.at(index_t{13}) == make_entry(13, 4));
  CHECK(log.term_at(index_t{12}) == term_t{4});

  log.truncate_after(index_t{11});
  CHECK(log.last_index() == index_t{11});
  CHECK(log.last_term() == term_t{3});

  log.truncate_after(index_t{10});
  CHECK(log.empty());
  CHECK(log.last_index() == index_t{10});
  CHECK(log.last_term() == term_t{3});  // the base's term again
}

// ---- copy ------------------------------------------------------------------------------------

TEST_CASE("copy returns at most max_count entries starting at from") {
  const in_memory_log log = make_log({1, 1, 2, 2, 3});
  std::vector<log_entry> out;
  log.copy(index_t{2}, 3, unlimited, out);
  CHECK(indices(out) == std::vector<std::uint64_t>{2, 3, 4});
  CHECK(out[0] == log.at(index_t{2}));
}

TEST_CASE("copy stops at the end of the log") {
  const in_memory_log log = make_log({1, 1, 2, 2, 3});
  std::vector<log_entry> out;
  log.copy(index_t{4}, 100, unlimited, out);
  CHECK(indices(out) == std::vector<std::uint64_t>{4, 5});
}

TEST_CASE("copy from just past the end, or with max_count 0, returns nothing") {
  const in_memory_log log = make_log({1, 1, 2});
  std::vector<log_entry> out;
  log.copy(index_t{4}, 100, unlimited, out);
  CHECK(out.empty());
  log.copy(index_t{1}, 0, unlimited, out);
  CHECK(out.empty());
}

TEST_CASE("copy stops before the byte limit would be exceeded") {
  const std::size_t each = 10 + entry_overhead_bytes;
  const in_memory_log log = log_of_sized_entries(5, 10);
  std::vector<log_entry> exact;
  log.copy(index_t{2}, 100, 2 * each, exact);  // two entries fit exactly
  CHECK(indices(exact) == std::vector<std::uint64_t>{2, 3});

  std::vector<log_entry> one_byte_short;
  log.copy(index_t{2}, 100, 2 * each - 1, one_byte_short);
  CHECK(indices(one_byte_short) == std::vector<std::uint64_t>{2});
}

TEST_CASE("copy returns one entry even if that entry alone exceeds the byte limit") {
  const in_memory_log log = log_of_sized_entries(3, 1000);
  std::vector<log_entry> out;
  log.copy(index_t{1}, 100, 1, out);
  CHECK(indices(out) == std::vector<std::uint64_t>{1});
}

TEST_CASE("copied entries share their payload with the log") {
  const in_memory_log log = log_of_sized_entries(2, 64);
  std::vector<log_entry> out;
  log.copy(index_t{1}, 2, unlimited, out);
  REQUIRE(out.size() == 2);
  CHECK(out[1].data.bytes().data() == log.at(index_t{2}).data.bytes().data());
}

TEST_CASE("copy works from the first entry of a log with a compaction base") {
  const in_memory_log log = make_log(20, 2, {2, 3, 3});
  std::vector<log_entry> out;
  log.copy(log.first_index(), 2, unlimited, out);
  CHECK(indices(out) == std::vector<std::uint64_t>{21, 22});
}

// ---- conflict hints --------------------------------------------------------------------------

TEST_CASE("first_index_of_term_at scans back to the start of the term") {
  const in_memory_log log = make_log({1, 1, 2, 2, 2, 3});
  CHECK(log.first_index_of_term_at(index_t{5}) == index_t{3});
  CHECK(log.first_index_of_term_at(index_t{3}) == index_t{3});
  CHECK(log.first_index_of_term_at(index_t{2}) == index_t{1});
  CHECK(log.first_index_of_term_at(index_t{1}) == index_t{1});
  CHECK(log.first_index_of_term_at(index_t{6}) == index_t{6});
}

TEST_CASE("first_index_of_term_at stops at the compaction base when the term runs into it") {
  // Base (10, term 2); entries 11..13 have terms 2, 2, 3.
  const in_memory_log log = make_log(10, 2, {2, 2, 3});
  CHECK(log.first_index_of_term_at(index_t{12}) == index_t{10});  // the term may start earlier
  CHECK(log.first_index_of_term_at(index_t{11}) == index_t{10});
  CHECK(log.first_index_of_term_at(index_t{13}) == index_t{13});
  CHECK(log.first_index_of_term_at(index_t{10}) == index_t{10});
}

TEST_CASE("first_index_of_term_at is exact when the term starts right after the compaction base") {
  const in_memory_log log = make_log(10, 1, {2, 2});
  CHECK(log.first_index_of_term_at(index_t{12}) == index_t{11});
}

TEST_CASE("last_index_of_term finds the last entry of a term, or nothing if the term is absent") {
  const in_memory_log log = make_log({1, 1, 2, 2, 2, 3, 5});
  CHECK(log.last_index_of_term(term_t{1}) == index_t{2});
  CHECK(log.last_index_of_term(term_t{2}) == index_t{5});
  CHECK(log.last_index_of_term(term_t{3}) == index_t{6});
  CHECK(log.last_index_of_term(term_t{5}) == index_t{7});
  CHECK_FALSE(log.last_index_of_term(term_t{4}).has_value());  // skipped term
  CHECK_FALSE(log.last_index_of_term(term_t{6}).has_value());  // newer than anything held
  CHECK_FALSE(log.last_index_of_term(term_t{0}).has_value());
}

TEST_CASE("last_index_of_term finds nothing in an empty log") {
  CHECK_FALSE(in_memory_log{}.last_index_of_term(term_t{1}).has_value());
  CHECK_FALSE(in_memory_log{}.last_index_of_term(term_t{0}).has_value());
}

TEST_CASE("last_index_of_term looks only at the entries held after the compaction base") {
  const in_memory_log log = make_log(10, 2, {2, 3});
  CHECK(log.last_index_of_term(term_t{2}) == index_t{11});
  CHECK(log.last_index_of_term(term_t{3}) == index_t{12});
  CHECK_FALSE(log.last_index_of_term(term_t{1}).has_value());
}

namespace {
/// Counts live instances, to check that chunked_deque destroys every element exactly once.
struct counted {
  static inline long live = 0;
  std::uint64_t value = 0;
  explicit counted(std::uint64_t v) : value(v) { ++live; }
  counted(const counted& o) : value(o.value) { ++live; }
  counted(counted&& o) noexcept : value(o.value) { ++live; }
  counted& operator=(const counted&) = default;
  counted& operator=(counted&&) noexcept = default;
  ~counted() { --live; }
};

/// A random walk of pushes, pops, truncations and front erases (immediate and deferred) on one
/// chunked_deque<counted>, checked after every step against the values it must hold; pushes add
/// up to `push_bound` - 1 elements at a time.
void random_walk_of_chunked_deque(raft::detail::chunked_deque<counted>& d, std::uint64_t& rng, std::size_t push_bound, int steps) {
  auto next = [&](std::uint64_t bound) {
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (rng >> 33) % bound;
  };
  std::uint64_t first = 0, end = 0;  // d holds first..end-1
  for (int step = 0; step < steps; ++step) {
    switch (next(7)) {
      case 0:
      case 1:
        for (std::uint64_t k = next(push_bound); k > 0; --k) d.push_back(counted(end++));
        break;
      case 2: {
        const std::size_t n = next(d.size() + 1);
        d.erase_front_deferred(n);
        first += n;
        break;
      }
      case 3:
        d.reclaim(next(2 * push_bound));
        break;
      case 4: {
        const std::size_t n = next(d.size() + 1);
        d.erase_front(n);
        first += n;
        break;
      }
      case 5:
        if (!d.empty() && next(4) == 0) {
          const std::size_t keep = next(d.size() + 1);
          d.truncate(keep);
          end = first + keep;
        }
        break;
      case 6:
        for (std::uint64_t k = std::min<std::uint64_t>(next(4), d.size()); k > 0; --k) {
          d.pop_back();
          --end;
        }
        break;
    }
    REQUIRE(d.size() == end - first);
    REQUIRE(counted::live == static_cast<long>(d.size() + d.waiting()));
    if (!d.empty()) {
      REQUIRE(d.front().value == first);
      REQUIRE(d.back().value == end - 1);
      const std::size_t i = next(d.size());
      REQUIRE(d[i].value == first + i);
    }
  }
}
}  // namespace

TEST_CASE("chunked_deque: a deferred front erase destroys the dropped elements by reclaim(), each once") {
  using deque = raft::detail::chunked_deque<counted>;
  std::uint64_t rng = 12345;
  {
    deque d;
    random_walk_of_chunked_deque(d, rng, 3 * deque::chunk_size, 3000);
    d.reclaim(d.waiting());
    CHECK(d.waiting() == 0);
    CHECK(counted::live == static_cast<long>(d.size()));
    d.erase_front_deferred(d.size() / 2);
    deque moved(std::move(d));  // what waits moves along, and is destroyed with it
  }
  CHECK(counted::live == 0);
}

TEST_CASE("chunked_deque: a new deque starts in a small chunk and crosses into full ones, elements in place") {
  using deque = raft::detail::chunked_deque<counted>;
  static_assert(deque::first_chunk_size < deque::chunk_size);
  std::uint64_t rng = 777;
  for (int round = 0; round < 200; ++round) {
    CAPTURE(round);
    deque d;
    // Around the small chunk's size, so that walks empty it, refill it and cross out of it.
    random_walk_of_chunked_deque(d, rng, 2 * deque::first_chunk_size + 2, 60);
    if (round % 4 == 0) {  // and past the first full chunk, which frees the small one
      for (std::size_t k = 0; k < deque::chunk_size + deque::first_chunk_size; ++k) d.push_back(counted(k));
      d.erase_front(d.size() - 1);
      CHECK(d.front().value == deque::chunk_size + deque::first_chunk_size - 1);
    }
    deque copy(d);
    REQUIRE(copy.size() == d.size());
    for (std::size_t i = 0; i < d.size(); ++i) REQUIRE(copy[i].value == d[i].value);
    deque moved(std::move(d));
    d = deque{};  // a moved-from deque can be reused
    d.push_back(counted(1));
    CHECK(d.back().value == 1);
  }
  CHECK(counted::live == 0);
}

// Elements keep their address while others are added and removed around them: the log and the
// node's queues hand out references.
TEST_CASE("chunked_deque: elements never move, across the small first chunk and the full ones") {
  raft::detail::chunked_deque<std::uint64_t> d;
  std::vector<const std::uint64_t*> where;
  const std::size_t n = 3 * decltype(d)::chunk_size;
  for (std::uint64_t k = 0; k < n; ++k) where.push_back(&d.emplace_back(k));
  for (std::size_t i = 0; i < n; ++i) REQUIRE(&d[i] == where[i]);
  d.erase_front(decltype(d)::first_chunk_size + 1);  // the small chunk is freed
  d.erase_front_deferred(5);
  for (std::size_t i = 0; i < d.size(); ++i) REQUIRE(&d[i] == where[i + decltype(d)::first_chunk_size + 6]);
}

TEST_CASE("compaction frees the dropped entries a slice at a time") {
  in_memory_log log = log_of_sized_entries(50000, 8);
  log.compact_through(index_t{40000}, term_t{1});
  CHECK(log.first_index() == index_t{40001});
  CHECK(log.at(index_t{40001}).index == index_t{40001});
  std::size_t waiting = log.reclaim(0);
  CHECK(waiting > 30000);
  CHECK(waiting <= 40000);
  CHECK(log.reclaim(1000) == waiting - 1000);
  log.compact_through(index_t{50000}, term_t{1});  // everything: the log is empty, entries wait
  CHECK(log.last_index() == index_t{50000});
  while (log.reclaim(4096) > 0) {
  }
  log.append(make_entry(50001, 1));
  CHECK(log.at(index_t{50001}).index == index_t{50001});
}

TEST_CASE("the log finds its last configuration entry at or before an index, through truncations and compactions") {
  in_memory_log log;
  auto add = [&](std::uint64_t i, entry_kind kind) { log.append(log_entry{term_t{1}, index_t{i}, kind, buffer{}}); };
  for (std::uint64_t i = 1; i <= 100; ++i)
    add(i, i == 1 || i == 40 || i == 70 ? entry_kind::configuration : entry_kind::command);
  CHECK(log.last_configuration_through(index_t{100}) == index_t{70});
  CHECK(log.last_configuration_through(index_t{69}) == index_t{40});
  CHECK(log.last_configuration_through(index_t{40}) == index_t{40});
  CHECK(log.last_configuration_through(index_t{1}) == index_t{1});
  CHECK(log.last_configuration_through(index_t{0}) == std::nullopt);
  log.truncate_after(index_t{69});
  CHECK(log.last_configuration_through(index_t{69}) == index_t{40});
  add(70, entry_kind::command);
  add(71, entry_kind::configuration);
  CHECK(log.last_configuration_through(index_t{100}) == index_t{71});
  log.compact_through(index_t{40}, term_t{1});
  CHECK(log.last_configuration_through(index_t{70}) == std::nullopt);  // 40 is the base now
  CHECK(log.last_configuration_through(index_t{71}) == index_t{71});
  in_memory_log copy = log;
  CHECK(copy.last_configuration_through(index_t{71}) == index_t{71});
  log.compact_through(index_t{71}, term_t{1});
  CHECK(log.last_configuration_through(index_t{71}) == std::nullopt);
}

TEST_CASE("term_at and last_term agree with a plain list of terms through random appends, truncations and compactions") {
  // The log answers lookups in its last term's run without reading the entries; this checks that
  // shortcut against a model through every way the run can move (a new term, a cut into the run
  // or before it, a compaction into it or past it).
  const std::uint64_t seed = raft_test::test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng(seed);
  auto below = [&](std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng); };
  for (int round = 0; round < 200; ++round) {
    in_memory_log log;
    std::uint64_t base = 0, base_term = 0;
    std::vector<std::uint64_t> terms;  // terms[k] is the term of index base + 1 + k
    for (int step = 0; step < 60; ++step) {
      const std::uint64_t last_term = terms.empty() ? base_term : terms.back();
      switch (below(4)) {
        case 0:
        case 1: {  // append a few, in the same term or a newer one
          const std::uint64_t t = last_term + below(3) / 2;
          for (std::uint64_t n = 1 + below(4); n > 0; --n) {
            const std::uint64_t i = base + terms.size() + 1;
            log.append(log_entry{term_t{std::max<std::uint64_t>(t, 1)}, index_t{i}, entry_kind::command, buffer{}});
            terms.push_back(std::max<std::uint64_t>(t, 1));
          }
          break;
        }
        case 2: {  // cut anywhere from the base to the end
          const std::uint64_t keep = below(terms.size() + 1);
          log.truncate_after(index_t{base + keep});
          terms.resize(keep);
          break;
        }
        case 3: {  // compact through any held entry
          if (terms.empty()) break;
          const std::uint64_t k = below(terms.size());
          log.compact_through(index_t{base + k + 1}, term_t{terms[k]});
          base_term = terms[k];
          base += k + 1;
          terms.erase(terms.begin(), terms.begin() + static_cast<std::ptrdiff_t>(k + 1));
          break;
        }
      }
      CAPTURE(round);
      CAPTURE(step);
      REQUIRE(log.last_index() == index_t{base + terms.size()});
      REQUIRE(log.last_term() == term_t{terms.empty() ? base_term : terms.back()});
      REQUIRE(log.term_at(index_t{base}) == term_t{base_term});
      for (std::size_t k = 0; k < terms.size(); ++k) REQUIRE(log.term_at(index_t{base + k + 1}) == term_t{terms[k]});
      REQUIRE(log.term_at(index_t{base + terms.size() + 1}) == std::nullopt);
      if (base > 0) REQUIRE(log.term_at(index_t{base - 1}) == std::nullopt);
    }
  }
}
