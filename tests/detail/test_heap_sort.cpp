// detail::heap_sort: sorts exactly as std::sort does, for the short lists the library sorts (ids
// and indexes) and for long ones (a configuration decoded from untrusted bytes can be long).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "raft/core/types.hpp"
#include "raft/detail/heap_sort.hpp"

TEST_CASE("heap_sort sorts like std::sort: every length up to 40, many value ranges, duplicates") {
  const std::uint64_t seed = 20261126;
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (std::size_t n = 0; n <= 40; ++n) {
    for (std::uint64_t range : {std::uint64_t{1}, std::uint64_t{3}, n + 1, std::uint64_t{1} << 40}) {
      for (int round = 0; round < 25; ++round) {
        std::vector<raft::index_t> v(n);
        for (auto& x : v) x = raft::index_t{rng() % range};
        std::vector<raft::index_t> expected = v;
        std::sort(expected.begin(), expected.end());
        raft::detail::heap_sort(std::span<raft::index_t>(v));
        INFO("n " << n << ", range " << range);
        REQUIRE(v == expected);
      }
    }
  }
}

TEST_CASE("heap_sort handles sorted, reversed and long inputs") {
  std::vector<raft::node_id> up, down;
  for (std::uint64_t i = 0; i < 5000; ++i) {
    up.push_back(raft::node_id{i});
    down.push_back(raft::node_id{5000 - i});
  }
  std::vector<raft::node_id> sorted_up = up;
  raft::detail::heap_sort(std::span<raft::node_id>(sorted_up));
  CHECK(sorted_up == up);
  raft::detail::heap_sort(std::span<raft::node_id>(down));
  CHECK(std::is_sorted(down.begin(), down.end()));
  CHECK(down.front() == raft::node_id{1});
  CHECK(down.back() == raft::node_id{5000});
}
