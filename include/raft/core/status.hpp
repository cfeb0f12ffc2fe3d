// raft/core/status.hpp - a point-in-time view of a node, for users and tests.
#pragma once

#include "raft/core/configuration.hpp"
#include "raft/core/types.hpp"

namespace raft {
inline namespace v1 {

struct node_status {
  node_id id;
  raft::role role = role::follower;
  term_t term;
  node_id leader;          ///< known leader of `term`, or no_node
  index_t commit_index;    ///< highest entry known committed
  index_t applied_index;   ///< highest entry applied to the state machine
  index_t last_log_index;
  index_t durable_index;   ///< highest entry this node's storage reported durable
  configuration config;    ///< latest configuration in the log
  index_t snapshot_index;  ///< last entry covered by the newest snapshot (0: none)
};

}  // namespace v1
}  // namespace raft
