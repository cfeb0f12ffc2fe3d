// raft/fwd.hpp - light forward declarations: ids and the names of the main templates, for
// headers that mention them without needing their definitions.
#pragma once

#include "raft/core/types.hpp"

namespace raft {
inline namespace v1 {

struct options;
struct configuration;
struct log_entry;
struct message;
class buffer;
class log_view;
class memory_storage;
class local_network;
class local_transport;

}  // namespace v1
}  // namespace raft
