#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "raft/detail/unique_function.hpp"

using raft::detail::unique_function;

namespace {
// Counts live instances, so a leak or a double destruction shows up as a wrong count.
struct counted {
  static inline int live = 0;
  counted() { ++live; }
  counted(const counted&) { ++live; }
  counted(counted&&) noexcept { ++live; }
  ~counted() { --live; }
};
}  // namespace

TEST_CASE("unique_function calls a small move-only callable stored inline") {
  unique_function<int(int)> f = [p = std::make_unique<int>(40)](int x) { return *p + x; };
  CHECK(static_cast<bool>(f));
  CHECK(f(2) == 42);
}

TEST_CASE("unique_function holds a callable larger than its inline buffer") {
  std::string big(300, 'x');
  unique_function<std::size_t()> f = [big] { return big.size(); };
  unique_function<std::size_t()> g = std::move(f);
  CHECK_FALSE(static_cast<bool>(f));
  CHECK(g() == 300);
}

TEST_CASE("unique_function destroys what it holds exactly once, through moves and assignment") {
  counted::live = 0;
  {
    struct big_counted {
      counted c;
      char pad[200];
    };
    unique_function<int()> a = [c = counted{}] { return 1; };
    unique_function<int()> b = [bc = big_counted{}] { return 2; };
    CHECK(counted::live == 2);
    unique_function<int()> c = std::move(a);
    CHECK(counted::live == 2);
    c = std::move(b);  // the inline one is destroyed, the heap one moves in
    CHECK(counted::live == 1);
    CHECK(c() == 2);
  }
  CHECK(counted::live == 0);
}
