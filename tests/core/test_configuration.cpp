// Tests for raft/core/configuration.hpp: membership queries, validate() and the entry encoding.
#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <random>
#include <string_view>
#include <vector>

#include "raft/core/configuration.hpp"
#include "test_support.hpp"

using namespace raft;
using raft_test::ids;

namespace {

configuration config(std::initializer_list<std::uint64_t> voters,
                     std::initializer_list<std::uint64_t> outgoing = {},
                     std::initializer_list<std::uint64_t> learners = {}) {
  return configuration{ids(voters), ids(outgoing), ids(learners)};
}

/// The reason validate() gives, or "" when it accepts.
std::string_view reason(const configuration& c) {
  const char* why = validate(c);
  return why == nullptr ? std::string_view{} : std::string_view{why};
}

std::vector<std::byte> bytes_of(const buffer& b) { return {b.bytes().begin(), b.bytes().end()}; }

void put_u64(std::vector<std::byte>& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xff));
}

/// Hand-made encoding: three sets, each a little-endian u64 count then little-endian u64 ids.
std::vector<std::byte> encoding(std::initializer_list<std::uint64_t> voters,
                                std::initializer_list<std::uint64_t> outgoing,
                                std::initializer_list<std::uint64_t> learners) {
  std::vector<std::byte> out;
  for (const auto* set : {&voters, &outgoing, &learners}) {
    put_u64(out, set->size());
    for (auto id : *set) put_u64(out, id);
  }
  return out;
}

}  // namespace

// ---- membership queries ----------------------------------------------------------------------

TEST_CASE("a configuration is joint only while it has an outgoing half") {
  CHECK_FALSE(config({1, 2, 3}).joint());
  CHECK(config({1, 2, 3}, {1, 2}).joint());
  CHECK_FALSE(config({1}, {}, {4}).joint());
}

TEST_CASE("voters of either half vote, learners are members that do not vote") {
  const configuration c = config({1, 2}, {2, 3}, {4});
  CHECK(c.is_voter(node_id{1}));
  CHECK(c.is_voter(node_id{2}));
  CHECK(c.is_voter(node_id{3}));
  CHECK_FALSE(c.is_voter(node_id{4}));
  CHECK(c.is_member(node_id{4}));
  CHECK(c.is_member(node_id{3}));
  CHECK_FALSE(c.is_member(node_id{5}));
  CHECK_FALSE(c.is_member(no_node));
}

TEST_CASE("all_members lists every voter and learner once, sorted") {
  const configuration c = config({5, 2}, {2, 9, 1}, {7});
  CHECK(c.all_members() == ids({1, 2, 5, 7, 9}));
}

// ---- validate() ------------------------------------------------------------------------------

TEST_CASE("validate accepts simple, joint and learner configurations") {
  CHECK(validate(config({1})) == nullptr);
  CHECK(validate(config({1, 2, 3})) == nullptr);
  CHECK(validate(config({1, 2, 3}, {3, 4, 5})) == nullptr);  // overlapping halves
  CHECK(validate(config({1, 2}, {3, 4})) == nullptr);        // disjoint halves
  CHECK(validate(config({1, 2}, {1, 2})) == nullptr);        // identical halves
  CHECK(validate(config({1}, {}, {2, 3})) == nullptr);
}

TEST_CASE("validate refuses a configuration without voters") {
  CHECK(reason(config({})).find("at least one voter") != std::string_view::npos);
  // An outgoing half alone is not enough: C_new must have voters.
  CHECK(reason(config({}, {1, 2, 3})).find("at least one voter") != std::string_view::npos);
  CHECK(reason(config({}, {}, {1})).find("at least one voter") != std::string_view::npos);
}

TEST_CASE("validate refuses node id 0 in any set") {
  CHECK(reason(config({1, 0})).find("reserved") != std::string_view::npos);
  CHECK(reason(config({1}, {0, 2})).find("reserved") != std::string_view::npos);
  CHECK(reason(config({1}, {}, {0})).find("reserved") != std::string_view::npos);
}

TEST_CASE("validate refuses a node listed twice in the same set") {
  CHECK(reason(config({1, 2, 1})).find("twice") != std::string_view::npos);
  CHECK(reason(config({1}, {2, 3, 2})).find("twice") != std::string_view::npos);
  CHECK(reason(config({1}, {}, {4, 4})).find("twice") != std::string_view::npos);
}

TEST_CASE("validate refuses a learner among the incoming voters") {
  CHECK(reason(config({1, 2}, {}, {2})).find("both a voter and a learner") != std::string_view::npos);
  CHECK(reason(config({1, 3}, {3}, {3})).find("both a voter and a learner") != std::string_view::npos);
}

TEST_CASE("a voter being demoted is in the outgoing half and among the learners, and decodes") {
  // C_old,new of {1,2,3} -> voters {1,3}, learner {2}: node 2 votes with C_old until C_new.
  const configuration demoting = config({1, 3}, {1, 2, 3}, {2});
  CHECK(reason(demoting).empty());
  CHECK(demoting.is_voter(node_id{2}));
  CHECK(demoting.all_members() == ids({1, 2, 3}));
  CHECK(decode_configuration(encode(demoting).bytes()) == demoting);
}

// ---- encoding --------------------------------------------------------------------------------

TEST_CASE("encode writes three counted sets of little-endian ids") {
  const buffer b = encode(config({1, 0x0102030405060708}, {}, {3}));
  CHECK(bytes_of(b) == encoding({1, 0x0102030405060708}, {}, {3}));
  REQUIRE(b.size() == 6 * 8);
  CHECK(b.bytes()[8] == std::byte{1});      // first voter id, lowest byte first
  CHECK(b.bytes()[16] == std::byte{0x08});  // second voter id, lowest byte first
  CHECK(b.bytes()[23] == std::byte{0x01});
}

TEST_CASE("decode returns exactly the configuration that was encoded") {
  const std::vector<configuration> cases = {
      config({1}),
      config({3, 1, 2}),  // order is preserved
      config({1, 2, 3}, {3, 4, 5}, {6}),
      config({10, 20}, {30, 40, 50}),
      config({std::numeric_limits<std::uint64_t>::max()}, {}, {1, 2, 3, 4, 5, 6, 7, 8}),
  };
  for (const configuration& c : cases) {
    const auto decoded = decode_configuration(encode(c).bytes());
    REQUIRE(decoded.has_value());
    CHECK(*decoded == c);
  }
}

TEST_CASE("decode refuses every truncation of a valid encoding") {
  const buffer whole = encode(config({1, 2, 3}, {3, 4}, {5}));
  for (std::size_t n = 0; n < whole.size(); ++n) {
    INFO("prefix length " << n);
    CHECK_FALSE(decode_configuration(whole.bytes().first(n)).has_value());
  }
}

TEST_CASE("decode refuses trailing bytes after the three sets") {
  std::vector<std::byte> bytes = encoding({1, 2}, {}, {});
  REQUIRE(decode_configuration(bytes).has_value());
  bytes.push_back(std::byte{0});
  CHECK_FALSE(decode_configuration(bytes).has_value());
}

TEST_CASE("decode refuses a count larger than the bytes that follow, without allocating it") {
  std::vector<std::byte> bytes;
  put_u64(bytes, std::numeric_limits<std::uint64_t>::max());
  put_u64(bytes, 1);
  CHECK_FALSE(decode_configuration(bytes).has_value());

  std::vector<std::byte> one_short;
  put_u64(one_short, 2);
  put_u64(one_short, 1);  // only one of the two announced ids
  CHECK_FALSE(decode_configuration(one_short).has_value());
}

TEST_CASE("decode refuses well-formed bytes that encode an invalid configuration") {
  CHECK_FALSE(decode_configuration(encoding({}, {}, {})).has_value());
  CHECK_FALSE(decode_configuration(encoding({1, 0}, {}, {})).has_value());
  CHECK_FALSE(decode_configuration(encoding({1, 1}, {}, {})).has_value());
  CHECK_FALSE(decode_configuration(encoding({1}, {}, {1})).has_value());
  // The same layout with valid ids is accepted, so the refusals above are about the ids.
  CHECK(decode_configuration(encoding({1, 2}, {}, {3})).has_value());
}

TEST_CASE("decode of random garbage or corrupted encodings never crashes and never accepts an invalid configuration") {
  const std::uint64_t seed = raft_test::test_seed();
  INFO("seed " << seed << " (replay with RAFT_TEST_SEED=" << seed << ")");
  std::mt19937_64 rng{seed};
  const std::vector<std::byte> valid = bytes_of(encode(config({1, 2, 3}, {2, 4}, {7})));
  std::size_t accepted = 0;

  for (int iteration = 0; iteration < 4000; ++iteration) {
    std::vector<std::byte> bytes;
    if (iteration % 2 == 0) {
      // Garbage: random length, random bytes biased towards small values so counts are plausible.
      bytes.resize(rng() % 80);
      for (auto& b : bytes) b = static_cast<std::byte>(rng() % 4 == 0 ? rng() : rng() % 4);
    } else {
      // A valid encoding with one byte changed, and sometimes cut or extended.
      bytes = valid;
      bytes[rng() % bytes.size()] = static_cast<std::byte>(rng());
      if (rng() % 4 == 0) bytes.resize(rng() % (bytes.size() + 9));
    }
    INFO("iteration " << iteration << ", " << bytes.size() << " bytes");
    const auto decoded = decode_configuration(bytes);
    if (!decoded) continue;
    ++accepted;
    CHECK(validate(*decoded) == nullptr);
    CHECK(bytes_of(encode(*decoded)) == bytes);  // only a canonical encoding is accepted
  }
  // The corruptions include harmless ones (an id changed to another valid id), so some decode.
  CHECK(accepted > 0);
}
