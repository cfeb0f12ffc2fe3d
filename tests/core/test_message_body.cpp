// raft::message_body: one message of any kind, a tagged union. Its kinds keep the order of their
// wire tags, and the memory the owning kinds hold (entries, snapshot chunks and configurations)
// is copied, moved and released exactly (the ASan build of this test reports a leak or a double
// free).
#include <doctest/doctest.h>

#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

#include "raft/core/messages.hpp"

using namespace raft;

namespace {

append_request two_entries(std::uint64_t term) {
  append_request a{term_t{term}, index_t{4}, term_t{1}, index_t{3}, {}, 9};
  a.entries.push_back({term_t{term}, index_t{5}, entry_kind::command, buffer::from_string("five")});
  a.entries.push_back({term_t{term}, index_t{6}, entry_kind::command, buffer::from_string("six")});
  return a;
}

install_snapshot_request chunk() {
  install_snapshot_request s{term_t{7}, {index_t{40}, term_t{6}, {}}, 128, 1024, buffer::from_string("bytes")};
  s.meta.config.voters = {node_id{1}, node_id{2}, node_id{3}};
  return s;
}

template <std::size_t I = 0>
void check_every_kind_emplaces_its_default() {
  using T = message_body::alternative<I>;
  CAPTURE(I);
  message_body b = two_entries(3);
  b.emplace_kind(I);
  CHECK(b.index() == I);
  CHECK(b.holds<T>());
  REQUIRE(b.get_if<T>() != nullptr);
  CHECK(*b.get_if<T>() == T{});
  CHECK(b == message_body(T{}));
  if constexpr (I + 1 < message_body::size) check_every_kind_emplaces_its_default<I + 1>();
}

}  // namespace

TEST_CASE("message_body's kinds are in the order of the wire tags") {
  static_assert(message_body::size == 9);
  static_assert(std::is_same_v<message_body::alternative<0>, vote_request>);
  static_assert(std::is_same_v<message_body::alternative<2>, append_request>);
  static_assert(std::is_same_v<message_body::alternative<4>, install_snapshot_request>);
  static_assert(std::is_same_v<message_body::alternative<8>, read_index_response>);
  static_assert(std::is_nothrow_move_constructible_v<message_body>);
  static_assert(std::is_nothrow_move_assignable_v<message_body>);

  const message_body d;
  CHECK(d.index() == 0);
  REQUIRE(d.get_if<vote_request>() != nullptr);
  CHECK(*d.get_if<vote_request>() == vote_request{});
  CHECK(d.get_if<append_request>() == nullptr);

  const message_body r = read_index_response{term_t{2}, 11, true, index_t{8}};
  CHECK(r.index() == 8);
  CHECK(r.holds<read_index_response>());
  CHECK(!r.holds<read_index_request>());
  CHECK(r.get_if<vote_request>() == nullptr);
  CHECK(r.get_if<read_index_response>()->id == 11);
}

TEST_CASE("message_body: emplace_kind(k) holds a default of the k-th kind, whatever it held before") {
  check_every_kind_emplaces_its_default();
}

TEST_CASE("message_body copies and moves the memory its kind owns") {
  message_body a = two_entries(3);
  const message_body copy = a;
  CHECK(copy == a);
  a.get_if<append_request>()->entries[1].index = index_t{60};
  CHECK(copy.get_if<append_request>()->entries[1].index == index_t{6});  // a deep copy
  CHECK(copy != a);

  message_body moved = std::move(a);
  REQUIRE(moved.get_if<append_request>() != nullptr);
  CHECK(moved.get_if<append_request>()->entries.size() == 2);
  CHECK(moved.get_if<append_request>()->entries[1].index == index_t{60});
  CHECK(a.holds<append_request>());  // the source keeps its kind, in a valid state

  const message_body s = chunk();
  const message_body s2 = s;
  CHECK(s2 == s);
  CHECK(s2.get_if<install_snapshot_request>()->meta.config.voters.size() == 3);
  CHECK(s2.get_if<install_snapshot_request>()->data == buffer::from_string("bytes"));
}

TEST_CASE("message_body assigns across kinds, releasing what the old kind held") {
  message_body b = two_entries(3);
  b = chunk();  // an owning kind over an owning kind
  REQUIRE(b.holds<install_snapshot_request>());
  CHECK(b.get_if<install_snapshot_request>()->offset == 128);

  const message_body entries = two_entries(4);
  b = entries;  // copy-assigned
  CHECK(b == entries);
  b = timeout_now{term_t{5}};  // a trivial kind over an owning one
  CHECK(b == message_body(timeout_now{term_t{5}}));
  b = two_entries(6);  // and back
  CHECK(b.get_if<append_request>()->entries[0].term == term_t{6});

  message_body& same = b;
  b = same;  // self-assignment keeps the message
  CHECK(b.get_if<append_request>()->entries.size() == 2);
  b = std::move(same);
  CHECK(b.get_if<append_request>()->entries.size() == 2);
}

TEST_CASE("message_body compares kind first, then the fields") {
  // The same field values under two kinds are different messages.
  CHECK(message_body(read_index_request{term_t{2}, 1}) != message_body(timeout_now{term_t{2}}));
  CHECK(message_body(vote_response{term_t{2}, true, false}) != message_body(vote_response{term_t{2}, false, false}));
  CHECK(message_body(vote_response{term_t{2}, true, false}) == message_body(vote_response{term_t{2}, true, false}));
}

TEST_CASE("message_body::visit calls with the kind held; term_of reads every kind's term") {
  const std::vector<message_body> all = {
      vote_request{term_t{1}, index_t{0}, term_t{0}},
      vote_response{term_t{2}},
      two_entries(3),
      append_response{term_t{4}, true, index_t{1}, index_t{0}, index_t{0}, term_t{0}},
      install_snapshot_request{term_t{5}, {}, 0, 0, {}},
      install_snapshot_response{term_t{6}, index_t{1}},
      timeout_now{term_t{7}},
      read_index_request{term_t{8}},
      read_index_response{term_t{9}, 0, false, index_t{0}},
  };
  REQUIRE(all.size() == message_body::size);
  for (std::size_t k = 0; k < all.size(); ++k) {
    CAPTURE(k);
    CHECK(all[k].index() == k);
    CHECK(term_of(all[k]) == term_t{k + 1});
    const std::size_t entries = all[k].visit([](const auto& b) -> std::size_t {
      if constexpr (std::is_same_v<std::remove_cvref_t<decltype(b)>, append_request>) return b.entries.size();
      return 0;
    });
    CHECK(entries == (k == 2 ? 2u : 0u));
  }
}
