// The wire codec (raft/transport/codec.hpp): round trips, a byte-exact layout, and hostile input
// (truncated at every length, random bytes, mutated frames, huge lengths and counts).
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "raft/transport/codec.hpp"

#ifdef ASIO_DETAIL_CONFIG_HPP
#error "raft/transport/codec.hpp must be usable without Asio"
#endif

// ---- counting allocations on this thread (to prove that hostile lengths allocate nothing) -----
namespace {
thread_local bool counting = false;
thread_local std::size_t allocations = 0;
void* counted_alloc(std::size_t n) {
  if (counting) ++allocations;
  return std::malloc(n ? n : 1);
}
// Out of line, so GCC does not pair the inlined free() with operator new (-Wmismatched-new-delete).
[[gnu::noinline]] void release(void* p) noexcept { std::free(p); }
}  // namespace

void* operator new(std::size_t n) {
  if (void* p = counted_alloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = counted_alloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n); }
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }

using namespace raft;

namespace {

struct count_allocations {
  count_allocations() {
    allocations = 0;
    counting = true;
  }
  ~count_allocations() { counting = false; }
  std::size_t count() const { return allocations; }
};

std::uint64_t test_seed() {
  if (const char* s = std::getenv("RAFT_TEST_SEED")) return std::strtoull(s, nullptr, 0);
  return 0x5EED2024;
}

buffer bytes_of(std::size_t n, std::uint8_t salt) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = std::byte(static_cast<std::uint8_t>(i * 31 + salt));
  return buffer{v};
}

append_request append_with(std::size_t entries, std::size_t payload) {
  append_request a{term_t{7}, index_t{100}, term_t{6}, index_t{99}, {}};
  for (std::size_t i = 0; i < entries; ++i)
    a.entries.push_back(log_entry{term_t{7}, index_t{101 + i}, static_cast<entry_kind>(i % 3),
                                  bytes_of(payload, std::uint8_t(i))});
  return a;
}

std::vector<message> samples() {
  std::vector<message> out;
  const node_id a{1}, b{0xFFFFFFFFFFFFFFFFull};
  out.push_back({a, b, vote_request{term_t{5}, index_t{10}, term_t{4}, false}});
  out.push_back({b, a, vote_request{term_t{~0ull}, index_t{~0ull}, term_t{~0ull}, true}});
  for (bool granted : {false, true})
    for (bool pre : {false, true}) out.push_back({a, b, vote_response{term_t{3}, granted, pre}});
  out.push_back({a, b, append_request{term_t{1}, index_t{0}, term_t{0}, index_t{0}, {}}});  // heartbeat
  out.push_back({a, b, append_with(1, 0)});                                          // empty payload
  out.push_back({a, b, append_with(3, 17)});                                         // every kind
  out.push_back({a, b, append_with(64, 64)});
  out.push_back({a, b, append_response{term_t{9}, true, index_t{55}, index_t{0}, index_t{0}, term_t{0}}});
  out.push_back({a, b, append_response{term_t{9}, false, index_t{0}, index_t{54}, index_t{40}, term_t{8}, 77}});
  out.push_back({a, b, vote_request{term_t{6}, index_t{1}, term_t{1}, false, true}});  // transfer
  append_request with_round = append_with(2, 5);
  with_round.round = 0x0102030405060708ull;
  out.push_back({a, b, with_round});
  const snapshot_meta meta{index_t{100}, term_t{7},
                           configuration{{node_id{1}, node_id{2}}, {node_id{3}}, {node_id{4}}}};
  out.push_back({a, b, install_snapshot_request{term_t{7}, meta, 0, 0, buffer{}}});
  out.push_back({a, b, install_snapshot_request{term_t{7}, meta, 4096, 1u << 20, bytes_of(300, 9)}});
  out.push_back({b, a, install_snapshot_response{term_t{7}, index_t{100}, 4396, false}});
  out.push_back({b, a, install_snapshot_response{term_t{7}, index_t{100}, 1u << 20, true}});
  out.push_back({a, b, timeout_now{term_t{12}}});
  out.push_back({a, b, read_index_request{term_t{12}, 99}});
  out.push_back({b, a, read_index_response{term_t{12}, 99, true, index_t{1234}}});
  out.push_back({b, a, read_index_response{term_t{12}, 98, false, index_t{0}}});
  return out;
}

std::vector<std::byte> frame_of(const message& m) {
  std::vector<std::byte> out;
  codec::encode_frame(m, out);
  return out;
}

}  // namespace

TEST_CASE("codec: every message type round-trips, as a body and as a frame") {
  for (const auto& m : samples()) {
    CAPTURE(m.body.index());
    std::vector<std::byte> body;
    codec::encode_body(m, body);
    CHECK(body.size() == codec::body_size(m));
    message back;
    REQUIRE(codec::decode_body(body, back) == std::error_code{});
    CHECK(back == m);

    const auto frame = frame_of(m);
    CHECK(frame.size() == codec::frame_size(m));
    message back2;
    REQUIRE(codec::decode_frame(frame, back2) == std::error_code{});
    CHECK(back2 == m);
  }
}

TEST_CASE("codec: large payloads and many entries round-trip") {
  for (auto shape : {std::pair<std::size_t, std::size_t>{1, std::size_t{4} << 20},
                     {20000, 3}, {0, 0}, {256, 4096}}) {
    const std::size_t entries = shape.first, payload = shape.second;
    CAPTURE(entries);
    CAPTURE(payload);
    const message m{node_id{2}, node_id{3}, append_with(entries, payload)};
    const auto frame = frame_of(m);
    message back;
    REQUIRE(codec::decode_frame(frame, back, std::size_t{64} << 20) == std::error_code{});
    CHECK(back == m);
  }
}

TEST_CASE("codec: encoding appends to a reused vector without disturbing its contents") {
  std::vector<std::byte> out{std::byte{0xAA}, std::byte{0xBB}};
  const auto ms = samples();
  for (const auto& m : ms) codec::encode_frame(m, out);
  CHECK(out[0] == std::byte{0xAA});
  CHECK(out[1] == std::byte{0xBB});
  // The frames follow each other; each decodes to its message.
  std::size_t at = 2;
  for (const auto& m : ms) {
    const auto len = codec::read_frame_length(std::span<const std::byte, 4>(out.data() + at, 4));
    message back;
    REQUIRE(codec::decode_frame({out.data() + at, 4 + len}, back) == std::error_code{});
    CHECK(back == m);
    at += 4 + len;
  }
  CHECK(at == out.size());

  // Once the vector has the capacity, encoding allocates nothing.
  const auto capacity = out.capacity();
  out.clear();
  count_allocations counter;
  for (const auto& m : ms) codec::encode_frame(m, out);
  CHECK(counter.count() == 0);
  CHECK(out.capacity() == capacity);
}

TEST_CASE("codec: the layout is little-endian with a fixed field order") {
  message m{node_id{0x0102}, node_id{3}, vote_request{term_t{0x0A0B0C0D}, index_t{5}, term_t{4}, true}};
  m.group = raft::group_id{0x0708};
  const auto f = frame_of(m);
  const std::vector<std::uint8_t> expected = {
      51, 0, 0, 0,                                  // body length
      3,                                            // codec version
      1,                                            // type: vote_request
      0x08, 0x07, 0, 0, 0, 0, 0, 0,                 // group
      0x02, 0x01, 0, 0, 0, 0, 0, 0,                 // from
      3, 0, 0, 0, 0, 0, 0, 0,                       // to
      0x0D, 0x0C, 0x0B, 0x0A, 0, 0, 0, 0,           // term
      5, 0, 0, 0, 0, 0, 0, 0,                       // last_log_index
      4, 0, 0, 0, 0, 0, 0, 0,                       // last_log_term
      1,                                            // flags: pre_vote
  };
  REQUIRE(f.size() == expected.size());
  for (std::size_t i = 0; i < f.size(); ++i) CHECK(static_cast<std::uint8_t>(f[i]) == expected[i]);
  message back;
  REQUIRE(codec::decode_frame(f, back) == std::error_code{});
  CHECK(back.group == raft::group_id{0x0708});
  CHECK(back == m);

  // An entry: term, index, kind, u32 length, payload.
  const message a{node_id{1}, node_id{2},
                  append_request{term_t{2}, index_t{3}, term_t{1}, index_t{3},
                                 {log_entry{term_t{2}, index_t{4}, entry_kind::noop, buffer::from_string("xy")}}}};
  const auto g = frame_of(a);
  REQUIRE(g.size() == 4 + 26 + 45 + 21 + 2);
  const std::size_t e = 4 + 26 + 41;  // after term, prev index, prev term, commit, round, flags
  CHECK(static_cast<std::uint8_t>(g[e - 1]) == 0);  // flags: not a quiescing heartbeat
  CHECK(static_cast<std::uint8_t>(g[e]) == 1);      // u32 count
  CHECK(static_cast<std::uint8_t>(g[e + 4]) == 2);  // entry term
  CHECK(static_cast<std::uint8_t>(g[e + 12]) == 4); // entry index
  CHECK(static_cast<std::uint8_t>(g[e + 20]) == 1); // kind: noop
  CHECK(static_cast<std::uint8_t>(g[e + 21]) == 2); // payload length
  CHECK(static_cast<char>(g[e + 25]) == 'x');
}

TEST_CASE("codec: every truncation of a valid frame or body is rejected") {
  std::size_t checked = 0;
  for (const auto& m : samples()) {
    const auto f = frame_of(m);
    for (std::size_t n = 0; n < f.size(); ++n) {
      message out;
      const auto ec = codec::decode_frame({f.data(), n}, out);
      CHECK(ec == codec_errc::truncated);
      ++checked;
    }
    const std::span<const std::byte> body{f.data() + 4, f.size() - 4};
    for (std::size_t n = 0; n < body.size(); ++n) {
      message out;
      CHECK(codec::decode_body(body.first(n), out) == codec_errc::truncated);
    }
  }
  MESSAGE(checked << " truncated frames rejected");
}

TEST_CASE("codec: unknown type, wrong version, trailing bytes and bad values are rejected") {
  const auto base = frame_of({node_id{1}, node_id{2}, vote_response{term_t{1}, true, false}});
  auto with = [&](std::size_t at, std::uint8_t v) {
    auto f = base;
    f[at] = std::byte{v};
    return f;
  };
  message out;
  for (std::uint8_t t : {0, 10, 11, 200, 255}) CHECK(codec::decode_frame(with(5, t), out) == codec_errc::unknown_type);
  for (std::uint8_t v : {0, 1, 2, 4, 255}) CHECK(codec::decode_frame(with(4, v), out) == codec_errc::wrong_version);
  CHECK(codec::decode_frame(with(base.size() - 1, 4), out) == codec_errc::invalid_value);  // flags
  CHECK(codec::decode_frame(with(base.size() - 1, 3), out) == std::error_code{});          // both flags

  // Trailing bytes: after the frame, and inside the frame's length.
  auto after = base;
  after.push_back(std::byte{0});
  CHECK(codec::decode_frame(after, out) == codec_errc::trailing_bytes);
  auto inside = after;
  inside[0] = std::byte(static_cast<std::uint8_t>(inside[0]) + 1);
  CHECK(codec::decode_frame(inside, out) == codec_errc::trailing_bytes);
  std::vector<std::byte> body(base.begin() + 4, base.end());
  body.push_back(std::byte{7});
  CHECK(codec::decode_body(body, out) == codec_errc::trailing_bytes);

  // An unknown entry kind.
  auto f = frame_of({node_id{1}, node_id{2}, append_with(1, 1)});
  f[4 + 26 + 45 + 16] = std::byte{3};
  CHECK(codec::decode_frame(f, out) == codec_errc::invalid_value);

  // The append flags byte has one bit (quiesce); it round-trips, and any other bit is refused.
  auto q = frame_of({node_id{1}, node_id{2}, append_request{term_t{2}, index_t{3}, term_t{1}, index_t{3}, {}, 4, true}});
  CHECK(static_cast<std::uint8_t>(q[4 + 26 + 40]) == 1);
  REQUIRE(codec::decode_frame(q, out) == std::error_code{});
  CHECK(out.body.get_if<append_request>()->quiesce);
  q[4 + 26 + 40] = std::byte{2};
  CHECK(codec::decode_frame(q, out) == codec_errc::invalid_value);

  // Error codes carry a reason.
  CHECK(std::error_code(codec_errc::oversized).message() == "frame length exceeds the limit");
  CHECK(std::string(std::error_code(codec_errc::truncated).category().name()) == "raft.codec");
}

TEST_CASE("codec: hostile lengths and counts are rejected before anything is allocated") {
  message out;
  out.body = vote_request{};  // no allocation left to make for a failing decode of the header
  SUBCASE("a length prefix over the limit") {
    std::vector<std::byte> f = {std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF},
                                std::byte{1}, std::byte{1}};
    count_allocations counter;
    CHECK(codec::decode_frame(f, out) == codec_errc::oversized);
    CHECK(codec::check_frame_length(0xFFFFFFFFu, codec::default_max_frame_bytes) == codec_errc::oversized);
    CHECK(codec::check_frame_length(1001, 1000) == codec_errc::oversized);
    CHECK(codec::check_frame_length(1000, 1000) == std::error_code{});
    CHECK(codec::check_frame_length(3, 1000) == codec_errc::truncated);
    CHECK(counter.count() == 0);
  }
  SUBCASE("an entry count of 2^32 - 1 with 10 bytes left") {
    auto f = frame_of({node_id{1}, node_id{2}, append_with(0, 0)});
    for (int i = 0; i < 4; ++i) f[f.size() - 4 + i] = std::byte{0xFF};
    f.resize(f.size() + 10);
    f[0] = std::byte(static_cast<std::uint8_t>(f[0]) + 10);
    count_allocations counter;
    CHECK(codec::decode_frame(f, out) == codec_errc::truncated);
    CHECK(counter.count() == 0);
  }
  SUBCASE("a payload length of 2^32 - 1 with 3 bytes left") {
    auto f = frame_of({node_id{1}, node_id{2}, append_with(1, 3)});
    for (int i = 0; i < 4; ++i) f[f.size() - 7 + i] = std::byte{0xFF};
    count_allocations counter;
    CHECK(codec::decode_frame(f, out) == codec_errc::truncated);
    CHECK(counter.count() <= 1);  // the entries vector (one entry); never the payload
  }
}

TEST_CASE("codec: the handshake round-trips and rejects strangers") {
  std::array<std::byte, codec::hello_bytes> h{};
  codec::encode_hello({0xC1D, node_id{42}}, h);
  codec::hello back;
  REQUIRE(codec::decode_hello(h, back) == std::error_code{});
  CHECK(back.cluster_id == 0xC1D);
  CHECK(back.id == node_id{42});
  auto bad = h;
  bad[0] = std::byte{'r'};
  CHECK(codec::decode_hello(bad, back) == codec_errc::bad_magic);
  bad = h;
  bad[4] = std::byte{1};
  CHECK(codec::decode_hello(bad, back) == codec_errc::wrong_version);
  bad = h;
  bad[6] = std::byte{1};
  CHECK(codec::decode_hello(bad, back) == codec_errc::invalid_value);
}

TEST_CASE("codec: random and mutated input never crashes; what decodes re-encodes to the same bytes") {
  const auto seed = test_seed();
  MESSAGE("seed " << seed << " (set RAFT_TEST_SEED to replay)");
  std::mt19937_64 rng(seed);
  const auto valid = samples();
  std::size_t accepted = 0, rejected = 0;
  std::vector<std::byte> input, again;
  message out;
  for (int i = 0; i < 100000; ++i) {
    input.clear();
    switch (i % 3) {
      case 0: {  // random bytes, often starting like a body
        const std::size_t n = rng() % 160;
        for (std::size_t k = 0; k < n; ++k) input.push_back(std::byte(static_cast<std::uint8_t>(rng())));
        if (n >= 2 && rng() % 2) {
          input[0] = std::byte{codec::version};
          input[1] = std::byte(static_cast<std::uint8_t>(1 + rng() % codec::max_message_type));
        }
        break;
      }
      default: {  // a valid body with a few random bytes changed, cut or extended
        codec::encode_body(valid[rng() % valid.size()], input);
        const int edits = 1 + int(rng() % 4);
        for (int e = 0; e < edits; ++e) {
          switch (rng() % 4) {
            case 0: case 1:
              input[rng() % input.size()] = std::byte(static_cast<std::uint8_t>(rng()));
              break;
            case 2: input.resize(rng() % (input.size() + 1)); break;
            case 3: input.push_back(std::byte(static_cast<std::uint8_t>(rng()))); break;
          }
          if (input.empty()) break;
        }
      }
    }
    const auto ec = codec::decode_body(input, out);
    if (ec) {
      ++rejected;
      continue;
    }
    ++accepted;
    again.clear();
    codec::encode_body(out, again);
    if (again != input) {
      FAIL("input " << i << " decoded but re-encoded differently (seed " << seed << ")");
    }
  }
  MESSAGE(accepted << " accepted, " << rejected << " rejected of 100000");
  CHECK(accepted > 0);
  CHECK(rejected > 0);
}

TEST_CASE("codec: a snapshot chunk with an impossible configuration or flags is rejected") {
  const snapshot_meta meta{index_t{5}, term_t{2}, configuration{{node_id{1}, node_id{2}}, {}, {}}};
  auto f = frame_of({node_id{1}, node_id{2}, install_snapshot_request{term_t{2}, meta, 0, 3, bytes_of(3, 1)}});
  message out;
  REQUIRE(codec::decode_frame(f, out) == std::error_code{});
  // The second voter's id (after header, term, index, term, voter count, first id) becomes 1.
  const std::size_t second_voter = 4 + 26 + 8 + 8 + 8 + 4 + 8;
  auto dup = f;
  dup[second_voter] = std::byte{1};
  CHECK(codec::decode_frame(dup, out) == codec_errc::invalid_value);
  // A voter count larger than what is left is cut short before anything is reserved.
  auto big = f;
  big[4 + 26 + 24 + 3] = std::byte{0x7F};
  CHECK(codec::decode_frame(big, out) == codec_errc::truncated);
  // install_snapshot_response has one flag bit (installed); any other bit is refused.
  auto r = frame_of({node_id{2}, node_id{1}, install_snapshot_response{term_t{2}, index_t{5}, 3, true}});
  r.back() = std::byte{2};
  CHECK(codec::decode_frame(r, out) == codec_errc::invalid_value);
}
