// Helpers for tests of the node's operations beyond async_propose(): membership changes, leadership
// transfer, reads. Each starts an operation with a callback and runs the simulation until it
// completes.
#pragma once

#include <optional>
#include <string>

#include "node_support.hpp"

namespace node_test {

/// Starts an operation (`start(handler)`) and runs `c` until it completes or `limit` passes.
template <class T, class Cluster, class Start>
std::optional<result<T>> await_op(Cluster& c, Start start, std::chrono::nanoseconds limit = std::chrono::seconds(10)) {
  auto out = std::make_shared<std::optional<result<T>>>();
  start([out](result<T> r) { *out = std::move(r); });
  c.run_until([&] { return out->has_value(); }, std::chrono::duration_cast<virtual_clock::duration>(limit));
  return *out;
}

/// The error code of an operation that failed; errc{} when it succeeded or did not finish.
template <class T>
errc error_of(const std::optional<result<T>>& r) {
  return r && !r->has_value() ? r->error().code : errc{};
}

/// Proposes `n` puts through whoever leads, one every `gap` of virtual time (keeps load on).
template <class Cluster>
std::size_t write_some(Cluster& c, const std::string& prefix, std::size_t n,
                       std::chrono::nanoseconds gap = std::chrono::milliseconds(2)) {
  std::vector<std::shared_ptr<proposal<std::string>>> ps;
  for (std::size_t i = 0; i < n; ++i) {
    if (auto l = c.leader()) ps.push_back(c.propose(*l, kv_state_machine::put(prefix + std::to_string(i), "v")));
    c.run_for(std::chrono::duration_cast<virtual_clock::duration>(gap));
  }
  c.run_until([&] { return std::all_of(ps.begin(), ps.end(), [](auto& p) { return p->done(); }); },
              std::chrono::seconds(5));
  return static_cast<std::size_t>(std::count_if(ps.begin(), ps.end(), [](auto& p) { return p->succeeded(); }));
}

/// Runs until every node in `ids` that is up has the same configuration as the leader, not
/// joint, and applied the leader's commit index.
template <class Cluster>
bool settle(Cluster& c, const std::vector<node_id>& ids, std::chrono::nanoseconds limit = std::chrono::seconds(10)) {
  return c.run_until(
      [&] {
        auto l = c.leader();
        if (!l) return false;
        const auto& lead = c.node(*l);
        if (lead.status().config.joint() || lead.commit_index() < lead.log().last_index()) return false;
        for (node_id id : ids) {
          if (!c.is_up(id)) continue;
          const auto& n = c.node(id);
          if (n.status().config != lead.status().config || n.applied_index() < lead.commit_index()) return false;
        }
        return true;
      },
      std::chrono::duration_cast<virtual_clock::duration>(limit));
}

inline std::vector<node_id> sorted_ids(std::vector<node_id> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace node_test
