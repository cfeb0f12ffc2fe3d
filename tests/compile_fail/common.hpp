// Shared by the compile-fail cases: concept-constrained function templates, so a type that does
// not model a concept fails with the constraint that names the missing expression.
#pragma once

#include <raft/concepts.hpp>

template <raft::state_machine SM>
void require_state_machine() {}

template <raft::storage S>
void require_storage() {}

template <raft::transport T>
void require_transport() {}
