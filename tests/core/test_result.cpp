// raft::result<T>: a value or an error, with the value's lifetime handled exactly (constructed
// once, destroyed once) through every copy, move and assignment between the two states.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include "raft/core/errors.hpp"

using raft::errc;
using raft::result;

namespace {

/// Counts the instances alive, to catch a value destroyed twice or never.
struct counted {
  static inline int alive = 0;
  int v = 0;
  explicit counted(int x) : v(x) { ++alive; }
  counted(const counted& o) : v(o.v) { ++alive; }
  counted(counted&& o) noexcept : v(o.v) { ++alive; }
  counted& operator=(const counted&) = default;
  counted& operator=(counted&&) = default;
  ~counted() { --alive; }
};

}  // namespace

TEST_CASE("result holds a value or an error; a default one holds errc::stopped") {
  const result<std::string> v(std::string("applied"));
  REQUIRE(v.has_value());
  CHECK(static_cast<bool>(v));
  CHECK(v.value() == "applied");

  const result<std::string> e(raft::error{errc::not_leader, raft::node_id{3}});
  REQUIRE(!e.has_value());
  CHECK(e.error().code == errc::not_leader);
  CHECK(e.error().leader_hint == raft::node_id{3});
  CHECK_THROWS_AS((void)e.value(), std::system_error);
  try {
    (void)e.value();
  } catch (const std::system_error& x) {
    CHECK(x.code() == raft::make_error_code(errc::not_leader));
  }

  const result<int> d;
  REQUIRE(!d.has_value());
  CHECK(d.error().code == errc::stopped);
}

TEST_CASE("result copies, moves and assigns between values and errors without leaking a value") {
  counted::alive = 0;
  {
    result<counted> a(counted(1));
    result<counted> b(raft::error{errc::busy});
    CHECK(counted::alive == 1);

    result<counted> c(a);  // copy of a value
    CHECK(counted::alive == 2);
    CHECK(c.value().v == 1);

    b = a;  // error <- value
    CHECK(counted::alive == 3);
    REQUIRE(b.has_value());
    CHECK(b.value().v == 1);

    a = result<counted>(raft::error{errc::timeout});  // value <- error
    CHECK(counted::alive == 2);
    REQUIRE(!a.has_value());
    CHECK(a.error().code == errc::timeout);

    c = result<counted>(counted(7));  // value <- value
    CHECK(counted::alive == 2);
    CHECK(c.value().v == 7);

    result<counted> m(std::move(c));  // move of a value: the source keeps a moved-from value
    CHECK(m.value().v == 7);
    CHECK(counted::alive == 3);

    a = std::move(m);  // error <- value, by move
    CHECK(a.value().v == 7);
    CHECK(counted::alive == 4);  // b, c and m (moved from) and a

    const result<counted>& same = a;
    a = same;  // self-assignment keeps the value
    CHECK(a.value().v == 7);
    CHECK(counted::alive == 4);
  }
  CHECK(counted::alive == 0);
}

TEST_CASE("result works with a move-only value") {
  result<std::unique_ptr<int>> r(std::make_unique<int>(5));
  REQUIRE(r.has_value());
  CHECK(**r == 5);
  result<std::unique_ptr<int>> s(std::move(r));
  CHECK(*s.value() == 5);
  std::unique_ptr<int> taken = std::move(s).value();
  CHECK(*taken == 5);
  result<std::unique_ptr<int>> t;
  t = result<std::unique_ptr<int>>(std::make_unique<int>(9));
  CHECK(*t.value() == 9);
}
