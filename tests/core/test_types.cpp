// Tests for the vocabulary of the library: raft/core/types.hpp, buffer.hpp, entry.hpp and
// messages.hpp.
#include <doctest/doctest.h>

#include <concepts>
#include <cstdint>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_set>

#include "raft/core/buffer.hpp"
#include "raft/core/entry.hpp"
#include "raft/core/messages.hpp"
#include "raft/core/types.hpp"

using namespace raft;

// The numbers are usable in constant expressions.
static_assert(index_t{1}.next() == index_t{2});
static_assert(term_t{5}.prev() == term_t{4});
static_assert(index_t{7} - index_t{3} == 4);

// ---- types.hpp -------------------------------------------------------------------------------

TEST_CASE("terms, indices and node ids are distinct types that never convert into one another") {
  CHECK_FALSE(std::is_convertible_v<term_t, index_t>);
  CHECK_FALSE(std::is_convertible_v<index_t, term_t>);
  CHECK_FALSE(std::is_convertible_v<node_id, index_t>);
  CHECK_FALSE(std::is_constructible_v<index_t, term_t>);
  CHECK_FALSE(std::is_constructible_v<node_id, term_t>);
  CHECK_FALSE(std::equality_comparable_with<term_t, index_t>);
  CHECK_FALSE(std::totally_ordered_with<index_t, node_id>);
}

TEST_CASE("a raw integer becomes a term or index only when wrapped explicitly") {
  CHECK(std::is_constructible_v<term_t, std::uint64_t>);
  CHECK_FALSE(std::is_convertible_v<std::uint64_t, term_t>);
  CHECK_FALSE(std::is_convertible_v<index_t, std::uint64_t>);
  CHECK_FALSE(std::equality_comparable_with<index_t, std::uint64_t>);
}

TEST_CASE("a default number is zero and no_node is node id zero") {
  CHECK(term_t{}.value == 0);
  CHECK(index_t{}.value == 0);
  CHECK(no_node.value == 0);
  CHECK(node_id{1} != no_node);
}

TEST_CASE("numbers compare by their value") {
  CHECK(term_t{2} == term_t{2});
  CHECK(term_t{2} != term_t{3});
  CHECK(term_t{2} < term_t{3});
  CHECK(index_t{10} > index_t{9});
  CHECK(index_t{4} <= index_t{4});
  CHECK((term_t{1} <=> term_t{7}) == std::strong_ordering::less);
  CHECK((index_t{std::numeric_limits<std::uint64_t>::max()} <=> index_t{0}) == std::strong_ordering::greater);
}

TEST_CASE("next and prev step by one, and adding or subtracting a count moves by that count") {
  CHECK(index_t{3}.next() == index_t{4});
  CHECK(index_t{3}.prev() == index_t{2});
  CHECK(index_t{0}.next() == index_t{1});
  CHECK(index_t{3} + 5 == index_t{8});
  CHECK(index_t{8} - 5 == index_t{3});
  CHECK(term_t{1} + 0 == term_t{1});
}

TEST_CASE("the distance between two indices is a plain count") {
  const std::uint64_t d = index_t{12} - index_t{5};
  CHECK(d == 7);
  CHECK(index_t{5} - index_t{5} == 0);
}

TEST_CASE("numbers print as their value") {
  std::ostringstream os;
  os << term_t{42} << ' ' << index_t{0} << ' ' << node_id{7};
  CHECK(os.str() == "42 0 7");
}

TEST_CASE("numbers hash by value and can key unordered containers") {
  CHECK(std::hash<node_id>{}(node_id{9}) == std::hash<std::uint64_t>{}(9));
  std::unordered_set<node_id> ids{node_id{1}, node_id{2}, node_id{1}};
  CHECK(ids.size() == 2);
  CHECK(ids.count(node_id{2}) == 1);
  CHECK(ids.count(node_id{3}) == 0);
}

TEST_CASE("every role has its own readable name") {
  CHECK(std::string_view{to_string(role::follower)} == "follower");
  CHECK(std::string_view{to_string(role::pre_candidate)} == "pre-candidate");
  CHECK(std::string_view{to_string(role::candidate)} == "candidate");
  CHECK(std::string_view{to_string(role::leader)} == "leader");
  CHECK(std::string_view{to_string(static_cast<role>(200))} == "?");
}

// ---- buffer.hpp ------------------------------------------------------------------------------

TEST_CASE("a buffer copies the bytes it is made from") {
  std::string text = "hello";
  const buffer b = buffer::from_string(text);

  text[0] = 'J';

  CHECK(b.as_string() == "hello");
  CHECK(b.size() == 5);
  CHECK_FALSE(b.empty());
}

TEST_CASE("copying a buffer shares the payload instead of duplicating it") {
  const buffer a = buffer::from_string("payload");
  const buffer b = a;  // NOLINT(performance-unnecessary-copy-initialization): the copy is the point
  CHECK(b.bytes().data() == a.bytes().data());
  CHECK(b.as_string() == "payload");
}

TEST_CASE("a buffer outlives the buffer it was copied from") {
  buffer copy;
  {
    const buffer original = buffer::from_string("still here");
    copy = original;
  }
  CHECK(copy.as_string() == "still here");
}

TEST_CASE("buffers compare by content, not by identity") {
  const buffer a = buffer::from_string("abc");
  const buffer same = buffer::from_string("abc");
  REQUIRE(a.bytes().data() != same.bytes().data());
  CHECK(a == same);
  CHECK_FALSE(a == buffer::from_string("abd"));
  CHECK_FALSE(a == buffer::from_string("ab"));
  CHECK_FALSE(a == buffer::from_string("abcd"));
}

TEST_CASE("an empty buffer has no bytes and equals every other empty buffer") {
  const buffer def;
  const buffer from_empty_span{std::span<const std::byte>{}};
  CHECK(def.empty());
  CHECK(def.size() == 0);
  CHECK(def.bytes().empty());
  CHECK(def.as_string().empty());
  CHECK(def == from_empty_span);
  CHECK(def == buffer::from_string(""));
  CHECK_FALSE(def == buffer::from_string("x"));
}

TEST_CASE("a buffer keeps embedded zero bytes") {
  const std::string_view with_nul{"a\0b", 3};
  const buffer b = buffer::from_string(with_nul);
  CHECK(b.size() == 3);
  CHECK(b.bytes()[1] == std::byte{0});
  CHECK(b.as_string() == with_nul);
  CHECK_FALSE(b == buffer::from_string("a"));
}

// ---- entry.hpp -------------------------------------------------------------------------------

TEST_CASE("entry kinds keep the numeric values they are stored with") {
  CHECK(static_cast<int>(entry_kind::command) == 0);
  CHECK(static_cast<int>(entry_kind::noop) == 1);
  CHECK(static_cast<int>(entry_kind::configuration) == 2);
}

TEST_CASE("a log entry is a command unless said otherwise") {
  const log_entry e{};
  CHECK(e.kind == entry_kind::command);
  CHECK(e.data.empty());
  CHECK(e.term == term_t{0});
  CHECK(e.index == index_t{0});
}

TEST_CASE("log entries are equal only when term, index, kind and payload all match") {
  const log_entry e{term_t{2}, index_t{5}, entry_kind::command, buffer::from_string("x")};
  CHECK(e == log_entry{term_t{2}, index_t{5}, entry_kind::command, buffer::from_string("x")});
  CHECK_FALSE(e == log_entry{term_t{3}, index_t{5}, entry_kind::command, buffer::from_string("x")});
  CHECK_FALSE(e == log_entry{term_t{2}, index_t{6}, entry_kind::command, buffer::from_string("x")});
  CHECK_FALSE(e == log_entry{term_t{2}, index_t{5}, entry_kind::noop, buffer::from_string("x")});
  CHECK_FALSE(e == log_entry{term_t{2}, index_t{5}, entry_kind::command, buffer::from_string("y")});
}

TEST_CASE("an entry costs its payload plus a fixed header") {
  CHECK(entry_overhead_bytes > 0);
  CHECK(entry_size(log_entry{term_t{1}, index_t{1}, entry_kind::command, {}}) == entry_overhead_bytes);
  const log_entry e{term_t{1}, index_t{1}, entry_kind::command, buffer::from_string("abcd")};
  CHECK(entry_size(e) == 4 + entry_overhead_bytes);
}

// ---- messages.hpp ----------------------------------------------------------------------------

TEST_CASE("term_of reads the term of every kind of message") {
  CHECK(term_of(vote_request{term_t{3}, index_t{9}, term_t{2}, true}) == term_t{3});
  CHECK(term_of(vote_response{term_t{4}, true, false}) == term_t{4});
  CHECK(term_of(append_request{term_t{5}, index_t{1}, term_t{1}, index_t{0}, {}}) == term_t{5});
  CHECK(term_of(append_response{term_t{6}, true, index_t{3}, {}, {}, {}}) == term_t{6});
}

TEST_CASE("a vote request is a real vote unless marked as a pre-vote") {
  const vote_request r{term_t{2}, index_t{1}, term_t{1}};
  CHECK_FALSE(r.pre_vote);
  CHECK_FALSE(vote_response{}.granted);
  CHECK_FALSE(append_response{}.success);
}

TEST_CASE("messages compare by value, including addresses and carried entries") {
  const auto make = [](std::string_view payload) {
    append_request r{term_t{2}, index_t{4}, term_t{1}, index_t{3}, {}};
    r.entries.push_back(log_entry{term_t{2}, index_t{5}, entry_kind::command, buffer::from_string(payload)});
    return message{node_id{1}, node_id{2}, r};
  };
  CHECK(make("a") == make("a"));
  CHECK_FALSE(make("a") == make("b"));

  message redirected = make("a");
  redirected.to = node_id{3};
  CHECK_FALSE(make("a") == redirected);

  const message vote{node_id{1}, node_id{2}, vote_request{term_t{2}, index_t{4}, term_t{1}}};
  CHECK_FALSE(make("a") == vote);
}
