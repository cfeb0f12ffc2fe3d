// See odr.hpp.
#include <cstdio>
#include <cstring>

#include "odr.hpp"

int main() {
  const odr::facts a = odr::from_a();
  const odr::facts b = odr::from_b();
  int failures = 0;
  auto check = [&](bool ok, const char* what) {
    if (!ok) {
      std::printf("FAIL: %s\n", what);
      ++failures;
    }
  };
  check(a.category == b.category, "raft::error_category() is one object in both TUs");
  check(a.node_ran && b.node_ran, "a node starts and stops in both TUs");
  check(a.majority_of_5 == 3 && b.majority_of_5 == 3, "majority(5) == 3");
  check(a.last_index == 4 && b.last_index == 4, "in_memory_log and quorum_index agree");
  check(std::strcmp(a.leader_name, b.leader_name) == 0, "to_string(role) agrees");
  if (failures == 0) std::printf("odr: both TUs agree\n");
  return failures == 0 ? 0 : 1;
}
