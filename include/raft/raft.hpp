// raft/raft.hpp - the whole public library: the node, its concepts, and the shipped policies.
//
//   #include <raft/raft.hpp>
//   using my_node = raft::node<my_state_machine, raft::memory_storage, raft::local_transport>;
//
// The deterministic simulation lives under raft/testing/ and is not included here.
#pragma once

#include "raft/concepts.hpp"
#include "raft/core/buffer.hpp"
#include "raft/core/configuration.hpp"
#include "raft/core/entry.hpp"
#include "raft/core/errors.hpp"
#include "raft/core/log.hpp"
#include "raft/core/messages.hpp"
#include "raft/core/persistent_state.hpp"
#include "raft/core/quorum.hpp"
#include "raft/core/rules.hpp"
#include "raft/core/status.hpp"
#include "raft/core/types.hpp"
#include "raft/logger.hpp"
#include "raft/multi/group_router.hpp"
#include "raft/node.hpp"
#include "raft/options.hpp"
#include "raft/storage/memory.hpp"
#include "raft/transport/local.hpp"
