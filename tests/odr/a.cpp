// See odr.hpp. Identical to the other TU on purpose: the same entities, instantiated twice.
#include <cstdint>
#include <utility>

#include <raft/raft.hpp>

#include "odr.hpp"

namespace odr {

facts from_a() {
  raft::log_view log;
  for (std::uint64_t i = 1; i <= 2; ++i) {
    raft::log_entry e;
    e.term = raft::term_t{i};
    e.index = raft::index_t{i};
    log.append(std::move(e));
  }
  raft::configuration c;
  c.voters = {raft::node_id{1}, raft::node_id{2}, raft::node_id{3}};
  const auto committed =
      raft::quorum_index(c, [](raft::node_id id) { return raft::index_t{id.value}; });
  return facts{
      &raft::make_error_code(raft::errc::not_leader).category(),
      static_cast<int>(raft::majority(5)),
      log.last_index().value + committed.value,
      raft::to_string(raft::role::leader),
  };
}

}  // namespace odr
