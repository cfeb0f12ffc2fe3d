// expect-compile: ok
// Positive control: every state machine, storage, transport and timer the library ships passes
// the checks raft::node runs on its parameters, and raft::node instantiates with them.
#include <raft/raft.hpp>
#include <raft/sessions.hpp>
#include <raft/storage/file.hpp>
#include <raft/testing/kv_state_machine.hpp>
#include <raft/testing/network.hpp>
#include <raft/testing/virtual_time.hpp>
#include <raft/transport/tcp.hpp>

using kv = raft::testing::kv_state_machine;
using sessions = raft::session_state_machine<kv>;

static_assert(raft::snapshot_state_machine<kv>);
static_assert(raft::snapshot_storage<raft::memory_storage>);
static_assert(raft::snapshot_storage<raft::file_storage>);

static_assert(raft::detail::check_policies<kv, raft::memory_storage, raft::local_transport, asio::steady_timer>());
static_assert(raft::detail::check_policies<sessions, raft::file_storage, raft::tcp_transport, asio::steady_timer>());
static_assert(raft::detail::check_policies<kv, raft::memory_storage, raft::testing::sim_transport,
                                           raft::testing::virtual_timer>());

static_assert(sizeof(raft::node<kv, raft::file_storage, raft::tcp_transport>) > 0);
static_assert(sizeof(raft::node<sessions, raft::memory_storage, raft::local_transport>) > 0);
static_assert(sizeof(raft::node<kv, raft::memory_storage, raft::testing::sim_transport, raft::testing::virtual_timer>) > 0);
