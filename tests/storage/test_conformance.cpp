// The storage conformance suite (raft/testing/storage_conformance.hpp), run on both shipped
// storages: memory_storage, and file_storage with small segments (so the suite crosses segment
// boundaries), with fsync on and off.
#include <doctest/doctest.h>

#include <memory>

#include "raft/testing/storage_conformance.hpp"
#include "storage_support.hpp"

TEST_CASE("conformance: memory_storage") {
  raft::testing::run_storage_conformance([] { return std::make_unique<raft::testing::memory_storage_place>(); });
}

TEST_CASE("conformance: file_storage, 16 KiB segments, fsync on") {
  raft::testing::run_storage_conformance([] {
    return std::make_unique<storage_test::file_place>(raft::file_storage_options{true, 16 << 10, {}});
  });
}

TEST_CASE("conformance: file_storage, default segments, fsync off") {
  raft::testing::run_storage_conformance([] {
    return std::make_unique<storage_test::file_place>(raft::file_storage_options{false, std::size_t{64} << 20, {}});
  });
}
