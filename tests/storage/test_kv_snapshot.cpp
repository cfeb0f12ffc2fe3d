// raft::testing::kv_state_machine as a raft::snapshot_state_machine: round trips in any chunking,
// point-in-time sources, identical future results after a restore, and malformed snapshots
// (cut or garbled at every byte, crafted bad lengths and orders) rejected with
// std::runtime_error without touching the state.
#include <cstddef>  // before any Asio header (raft/detail/asio_check.hpp)

#include <doctest/doctest.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "raft/concepts.hpp"
#include "raft/storage/detail/crc32c.hpp"
#include "raft/testing/kv_state_machine.hpp"

using raft::index_t;
using kv = raft::testing::kv_state_machine;

static_assert(raft::snapshot_state_machine<kv>);
static_assert(raft::snapshot_source<kv::snapshot_source>);
static_assert(raft::snapshot_sink<kv::snapshot_sink>);

namespace {

/// Applies a varied workload: binary keys and values, empty ones, a large value, deletes,
/// appends, gets and a malformed command. Returns the results.
std::vector<std::string> workload(kv& sm, std::uint64_t first, std::uint64_t n) {
  std::vector<std::string> results;
  for (std::uint64_t i = first; i < first + n; ++i) {
    const std::string key = "k" + std::to_string(i % 37);
    raft::buffer cmd;
    switch (i % 9) {
      case 0: cmd = kv::put(key, std::string("v\0\xff", 3) + std::to_string(i)); break;
      case 1: cmd = kv::append(key, "+" + std::to_string(i)); break;
      case 2: cmd = kv::del("k" + std::to_string((i * 7) % 37)); break;
      case 3: cmd = kv::get(key); break;
      case 4: cmd = kv::put("", std::to_string(i)); break;  // the empty key
      case 5: cmd = kv::put(std::string("\0bin\xfe", 5), ""); break;  // an empty value
      case 6: cmd = kv::put("big", std::string(70'000 + i % 5, char('a' + i % 26))); break;
      case 7: cmd = raft::buffer::from_string("\x09garbage"); break;  // malformed: an error result
      default: cmd = kv::put(key + "/x", std::to_string(i * i)); break;
    }
    results.push_back(sm.apply(index_t{i}, cmd.bytes()));
  }
  return results;
}

/// Reads a source to its end `piece` bytes at a time.
std::vector<std::byte> drain(kv::snapshot_source src, std::size_t piece) {
  std::vector<std::byte> out;
  std::vector<std::byte> buf(piece);
  for (;;) {
    const std::size_t n = src.read(buf);
    CHECK(n <= piece);
    if (n == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + std::ptrdiff_t(n));
  }
  CHECK(src.read(buf) == 0);  // stays at the end
  return out;
}

/// Feeds `bytes` to a fresh sink of `sm` in pieces of `piece` bytes, then finishes.
void restore(kv& sm, std::span<const std::byte> bytes, std::size_t piece) {
  auto sink = sm.restore();
  for (std::size_t at = 0; at < bytes.size(); at += piece) sink.write(bytes.subspan(at, std::min(piece, bytes.size() - at)));
  sink.finish();
}

bool same_state(const kv& a, const kv& b) {
  return a.data() == b.data() && a.last_applied() == b.last_applied() && a.applied_count() == b.applied_count() &&
         a.hash() == b.hash();
}

void put_u32(std::vector<std::byte>& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(std::byte(v >> (8 * i)));
}
void put_u64(std::vector<std::byte>& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(std::byte(v >> (8 * i)));
}
/// A snapshot built by hand: header, the given pairs in the given order, the correct checksum.
std::vector<std::byte> crafted(const std::vector<std::pair<std::string, std::string>>& pairs,
                               std::uint64_t declared_count) {
  std::vector<std::byte> out;
  for (char c : std::string("RAFTKVS1")) out.push_back(std::byte(c));
  put_u64(out, 5);
  put_u64(out, 3);
  put_u64(out, 12345);
  put_u64(out, declared_count);
  for (const auto& [k, v] : pairs) {
    put_u32(out, std::uint32_t(k.size()));
    for (char c : k) out.push_back(std::byte(c));
    put_u32(out, std::uint32_t(v.size()));
    for (char c : v) out.push_back(std::byte(c));
  }
  put_u32(out, raft::detail::crc32c(out.data(), out.size()));
  return out;
}

}  // namespace

TEST_CASE("kv_state_machine snapshot: round trip in any chunking; the same future on both") {
  kv original;
  workload(original, 1, 500);
  const auto bytes = original.snapshot_bytes();
  for (const std::size_t read_piece : {std::size_t{1}, std::size_t{3}, std::size_t{4096}, std::size_t{1} << 20}) {
    CAPTURE(read_piece);
    CHECK(drain(original.snapshot(), read_piece) == bytes);
  }
  for (const std::size_t write_piece : {std::size_t{1}, std::size_t{5}, std::size_t{4096}, bytes.size()}) {
    CAPTURE(write_piece);
    kv copy;
    workload(copy, 1, 7);  // some state of its own, which the restore replaces
    restore(copy, bytes, write_piece);
    CHECK(same_state(copy, original));
    CHECK(copy.snapshot_bytes() == bytes);
    // The same commands from here give the same results and the same state.
    kv reference = original;
    CHECK(workload(copy, 501, 200) == workload(reference, 501, 200));
    CHECK(same_state(copy, reference));
  }
  // An empty state machine round-trips too.
  kv empty, target;
  workload(target, 1, 30);
  restore(target, empty.snapshot_bytes(), 7);
  CHECK(same_state(target, empty));
  CHECK(target.data().empty());
  CHECK(empty.snapshot_bytes().size() == 8 + 32 + 4);
}

TEST_CASE("kv_state_machine snapshot: a source is a point-in-time image") {
  kv sm, prefix;
  workload(sm, 1, 300);
  workload(prefix, 1, 300);
  auto src = sm.snapshot();
  std::array<std::byte, 10> head;
  REQUIRE(src.read(head) == head.size());  // reading has begun
  workload(sm, 301, 300);  // later applies: overwrite, delete, add
  const auto later_bytes = sm.snapshot_bytes();
  auto rest = drain(std::move(src), 333);  // a source is movable mid-read
  std::vector<std::byte> got(head.begin(), head.end());
  got.insert(got.end(), rest.begin(), rest.end());
  CHECK(got == prefix.snapshot_bytes());
  CHECK(got != later_bytes);
  // Two snapshots with no apply between them share one image and give the same bytes.
  CHECK(drain(sm.snapshot(), 100) == drain(sm.snapshot(), 7));
  // A source outlives its state machine.
  std::optional<kv> gone(std::in_place);
  workload(*gone, 1, 50);
  auto orphan = gone->snapshot();
  const auto expected = gone->snapshot_bytes();
  gone.reset();
  CHECK(drain(std::move(orphan), 64) == expected);
}

TEST_CASE("kv_state_machine snapshot: a sink that is not finished changes nothing") {
  kv a, b;
  workload(a, 1, 100);
  workload(b, 1, 40);
  const auto before = b.snapshot_bytes();
  {
    auto sink = b.restore();
    const auto bytes = a.snapshot_bytes();
    sink.write(bytes);  // complete, but never finished
  }
  CHECK(b.snapshot_bytes() == before);
  auto sink = b.restore();
  sink.write(a.snapshot_bytes());
  sink.finish();
  CHECK(same_state(a, b));
  CHECK_THROWS_AS(sink.finish(), std::logic_error);
  CHECK_THROWS_AS(sink.write(a.snapshot_bytes()), std::logic_error);
}

TEST_CASE("kv_state_machine snapshot: malformed bytes throw std::runtime_error and change nothing") {
  // Small values, so every byte offset is tried quickly.
  kv small;
  small.apply(index_t{1}, kv::put("alpha", "1").bytes());
  small.apply(index_t{2}, kv::put("", "empty key").bytes());
  small.apply(index_t{3}, kv::put("beta", "").bytes());
  const auto bytes = small.snapshot_bytes();

  kv target;
  workload(target, 1, 20);
  const auto before = target.snapshot_bytes();
  // True if restoring `in` throws std::runtime_error; then the target must be unchanged. If it
  // is accepted, the target is put back as it was.
  auto rejected = [&](std::span<const std::byte> in, std::size_t piece) {
    try {
      restore(target, in, piece);
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()).find("malformed snapshot") != std::string::npos);
      CHECK(target.snapshot_bytes() == before);
      return true;
    }
    restore(target, before, 4096);
    return false;
  };
  for (std::size_t len = 0; len < bytes.size(); ++len) {
    CAPTURE(len);
    CHECK(rejected(std::span(bytes).first(len), 3));  // cut short: "ends early"
  }
  for (std::size_t at = 0; at < bytes.size(); ++at) {
    for (const std::uint8_t flip : {std::uint8_t{0x01}, std::uint8_t{0x80}}) {
      CAPTURE(at);
      auto garbled = bytes;
      garbled[at] ^= std::byte{flip};
      CHECK(rejected(garbled, 1 + at % 7));
    }
  }
  auto longer = bytes;
  longer.push_back(std::byte{0});
  CHECK(rejected(longer, 4096));  // trailing bytes

  // Well-formed checksums around bad structure.
  {
    kv control;  // the control: a crafted snapshot that is well formed is accepted
    restore(control, crafted({{"a", "1"}, {"b", "2"}}, 2), 4);
    CHECK(control.find("b") == std::optional<std::string>("2"));
    CHECK(control.last_applied() == index_t{5});
    CHECK(control.applied_count() == 3);
    CHECK(control.hash() == 12345);
  }
  CHECK(rejected(crafted({{"b", "1"}, {"a", "2"}}, 2), 4));   // keys out of order
  CHECK(rejected(crafted({{"a", "1"}, {"a", "2"}}, 2), 4));   // a duplicate key
  CHECK(rejected(crafted({{"a", "1"}}, 2), 4));                // fewer pairs than declared
  CHECK(rejected(crafted({{"a", "1"}, {"b", "2"}}, 1), 4));   // more pairs than declared
  // A length claiming 4 GiB with a few bytes after it: no huge allocation, just "ends early".
  std::vector<std::byte> huge;
  for (char c : std::string("RAFTKVS1")) huge.push_back(std::byte(c));
  put_u64(huge, 1);
  put_u64(huge, 1);
  put_u64(huge, 1);
  put_u64(huge, 1);
  put_u32(huge, 0xFFFFFFFFu);
  huge.insert(huge.end(), 100, std::byte{'x'});
  CHECK(rejected(huge, 16));
  auto wrong_magic = bytes;
  wrong_magic[7] = std::byte{'2'};
  CHECK(rejected(wrong_magic, 64));
}

TEST_CASE("kv_state_machine snapshot: apply after restore keeps its ordering check") {
  kv a;
  workload(a, 1, 50);
  kv b;
  restore(b, a.snapshot_bytes(), 100);
  CHECK(b.last_applied() == index_t{50});
  CHECK_THROWS_AS(b.apply(index_t{50}, kv::put("x", "y").bytes()), std::logic_error);
  CHECK(b.apply(index_t{51}, kv::put("x", "y").bytes()).empty());
  CHECK(b.find("x") == std::optional<std::string>("y"));
}
