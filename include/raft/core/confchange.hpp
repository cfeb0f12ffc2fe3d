// raft/core/confchange.hpp - what a membership change appends, as pure functions.
//
// A change from configuration C_old to a target C_new (thesis §4.3) appends one entry when the
// voters stay the same (learners added or removed), and otherwise two: the joint configuration
// C_old,new, whose decisions need a majority of both halves, then C_new once C_old,new committed.
//
// A voter that the target makes a learner (a demotion) stays a voter of the outgoing half while
// the configuration is joint, and is listed among the learners too: it votes with C_old until
// C_old,new is replaced, then it is only a learner. This is the one case where a node is in two
// sets at once; validate() accepts it only that way (a learner may be in `outgoing`, never in
// `voters`).
//
// Every configuration these functions return passes validate(), so the entry a leader appends
// can always be decoded again.
#pragma once

#include <span>
#include <utility>

#include "raft/core/configuration.hpp"
#include "raft/detail/heap_sort.hpp"

namespace raft {
inline namespace v1 {

/// `c` with each set sorted: two configurations with the same members compare equal.
[[nodiscard]] inline configuration sorted(configuration c) {
  for (auto* set : {&c.voters, &c.outgoing, &c.learners}) detail::heap_sort(std::span<node_id>(*set));
  return c;
}

/// The first entry of a membership change, or why there is none.
struct membership_step {
  const char* refused = nullptr;  ///< why the change cannot be made; null when it can
  bool unchanged = false;         ///< the target is the current configuration: nothing to append
  configuration entry;            ///< what to append: C_old,new (joint), or C_new in one step
};

/// The entry a leader appends to move from `current` to `target` (voters and learners; its
/// `outgoing` must be empty). `current` must not be joint: one change at a time.
[[nodiscard]] inline membership_step plan_membership_change(const configuration& current,
                                                            configuration target) {
  membership_step step;
  if (current.joint()) {
    step.refused = "a membership change is already in progress";
    return step;
  }
  if (target.joint()) {
    step.refused = "the target configuration must not have an outgoing half";
    return step;
  }
  if (const char* why = validate(target)) {
    step.refused = why;
    return step;
  }
  configuration now = sorted(current);
  target = sorted(std::move(target));
  if (target == now) {
    step.unchanged = true;
    return step;
  }
  if (target.voters != now.voters) target.outgoing = std::move(now.voters);  // C_old,new
  if (const char* why = validate(target)) {  // cannot happen for a valid target; never append it
    step.refused = why;
    return step;
  }
  step.entry = std::move(target);
  return step;
}

/// The configuration that ends joint consensus: C_new, the incoming voters and the learners
/// (a demoted voter is a learner from here on).
[[nodiscard]] inline configuration leave_joint(const configuration& joint) {
  return configuration{joint.voters, {}, joint.learners};
}

}  // namespace v1
}  // namespace raft
