// raft/node/snapshots.hpp - raft::node: snapshots.
//
// Taking a snapshot of the state machine, sending one to a follower in chunks, receiving and
// installing one (§5).
// Part of raft/node.hpp, which declares the class and includes every part.
#pragma once

#include "raft/node.hpp"

namespace raft {
inline namespace v1 {

template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::maybe_take_snapshot() {
  if constexpr (snapshots) {
    if (opts_.snapshot_entries == 0 || snapshotting_ || installing_ || incoming_ || stopping_) return;
    if (applied_ - snapshot_index_ < opts_.snapshot_entries) return;
    snapshotting_ = true;
    spawn(take_snapshot());
  }
}

/// Streams the state machine's point-in-time image to storage in chunks, yielding between
/// them so heartbeats and replication go on; then compacts the log behind it.
template <class StateMachine, class Storage, class Transport, class Timer>
inline asio::awaitable<void> node<StateMachine, Storage, Transport, Timer>::take_snapshot() {
  if constexpr (snapshots) {
    const detail::scope_exit clear_flag{[this] { snapshotting_ = false; }};
    const index_t index = applied_;
    snapshot_meta meta{index, *log_.term_at(index), config_at(index).first};
    auto source = sm_.snapshot();
    auto writer = storage_.create_snapshot(meta);
    std::vector<std::byte> chunk(opts_.snapshot_chunk_bytes);
    for (;;) {
      const std::size_t n = source.read(std::span<std::byte>(chunk));
      if (n == 0) break;
      writer.write(std::span<const std::byte>(chunk).first(n));
      co_await detail::yield_to(ex_);
      if (stopping_) co_return;
    }
    co_await writer.commit();
    if (stopping_ || index <= snapshot_index_) co_return;  // an installed snapshot overtook it
    snapshot_index_ = index;
    snapshot_term_ = meta.term;
    snapshot_config_ = std::move(meta.config);
    ++metrics_.snapshots_created;
    log_line(log_level::info, "node ", opts_.id, " took a snapshot through index ", index);
    emit(event_kind::snapshot_created, index);
    const std::uint64_t keep = opts_.snapshot_trailing_entries;
    if (index.value > keep) {
      persist_.compact_later(index - keep);
      schedule_settle();  // its persist_now() hands the compaction to storage
    }
  }
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::send_snapshot_chunk(peer& p) {
  if constexpr (snapshots) {
    if (!p.snapshot) {
      auto r = storage_.open_snapshot();
      if (!r) {
        log_line(log_level::error, "node ", opts_.id, " must send a snapshot to ", p.id,
                 " but storage has none");
        return;
      }
      snapshot_meta meta = r->meta();
      const std::uint64_t size = r->size();
      p.snapshot.emplace(outgoing_snapshot{std::move(*r), std::move(meta), size, 0, false});
      p.forget_inflight();
    }
    auto& s = *p.snapshot;
    std::vector<std::byte> chunk(std::min<std::uint64_t>(opts_.snapshot_chunk_bytes, s.size - s.acked));
    const std::size_t n = s.reader.read_at(s.acked, std::span<std::byte>(chunk));
    chunk.resize(n);
    s.inflight = true;
    ++metrics_.snapshot_chunks_sent;
    send(p.id, install_snapshot_request{term_, s.meta, s.acked, s.size, buffer{chunk}});
  }
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::on(node_id from, install_snapshot_response r) {
  if (role_ != role::leader) return;
  peer* const found = find_peer(from);
  if (found == nullptr) return;
  peer& p = *found;
  p.active = true;
  if (!p.snapshot || r.index != p.snapshot->meta.index) return;
  if (r.installed) {
    ++metrics_.snapshots_sent;
    p.snapshot.reset();
    p.match = std::max(p.match, r.index);
    p.probe(p.match.next());
    maybe_commit();
    if (!still_leading(term_) || p.removed) return;
  } else {
    p.snapshot->acked = std::min(r.next_offset, p.snapshot->size);
    // Everything sent: the follower is installing it. Wait for its answer (or a tick).
    p.snapshot->inflight = p.snapshot->acked == p.snapshot->size;
  }
  p.wake.notify();
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::on(node_id from, install_snapshot_request r) {
  if (!accept_leader_message(from)) return;
  if constexpr (!snapshots) {
    log_line(log_level::warning, "node ", opts_.id, " cannot install a snapshot from ", from,
             ": its state machine or storage does not support snapshots");
  } else {
    auto reply = [&](std::uint64_t next, bool installed) {
      send(from, install_snapshot_response{term_, r.meta.index, next, installed});
    };
    if (r.meta.index <= snapshot_index_ ||
        (log_.term_at(r.meta.index) == r.meta.term && persist_.durable() >= r.meta.index))
      return reply(r.size, true);  // we already have all of it
    // Busy with a snapshot of its own making, or installing this one: no answer; the leader
    // resends on its next heartbeat tick (or hears "installed" when the install is done).
    if (installing_ || snapshotting_) return;
    if (!incoming_ || incoming_->meta != r.meta || incoming_->size != r.size) {
      if (r.offset != 0) return reply(0, false);  // a new snapshot starts from its beginning
      incoming_.reset();  // at most one writer at a time
      incoming_.emplace(incoming_snapshot{r.meta, r.size, 0, storage_.create_snapshot(r.meta)});
    }
    auto& in = *incoming_;
    if (r.offset != in.received) return reply(in.received, false);  // resume from here
    if (r.data.size() > in.size - in.received) {
      log_line(log_level::warning, "node ", opts_.id, " drops a snapshot chunk past the snapshot's end");
      incoming_.reset();
      return reply(0, false);
    }
    in.writer.write(r.data.bytes());
    in.received += r.data.size();
    if (in.received == in.size) {
      installing_ = true;
      spawn(install_snapshot());
    }
    reply(in.received, false);
  }
}

/// Makes the received snapshot durable, resets the log behind it and restores the state
/// machine from it (§5.3: a log that holds the snapshot's last entry keeps what follows).
template <class StateMachine, class Storage, class Transport, class Timer>
inline asio::awaitable<void> node<StateMachine, Storage, Transport, Timer>::install_snapshot() {
  if constexpr (snapshots) {
    const detail::scope_exit clear_flag{[this] { installing_ = false; }};
    incoming_snapshot in = std::move(*incoming_);
    incoming_.reset();
    co_await in.writer.commit();
    if (stopping_) co_return;
    const snapshot_meta& m = in.meta;
    if (m.index <= snapshot_index_) co_return;
    if (applied_ < m.index) complete_skipped_proposals(m.index, m.term);  // before the log changes
    if (log_.term_at(m.index) != m.term) {
      persist_.reset_log(log_.base_index(), m.index, m.term);
      log_ = in_memory_log(m.index, m.term);
      verified_ = m.index;
    } else {
      persist_.compact_later(m.index);
    }
    schedule_settle();  // its persist_now() hands the log's reset or compaction to storage
    if (applied_ < m.index) {
      auto reader = storage_.open_snapshot();
      if (!reader || reader->meta().index != m.index)
        throw std::runtime_error("raft: storage lost the snapshot it just committed");
      restore_state_machine(*reader);
      applied_ = m.index;
    }
    if (commit_ < m.index) advance_commit(m.index);
    snapshot_index_ = m.index;
    snapshot_term_ = m.term;
    snapshot_config_ = m.config;
    reload_configuration();
    ++metrics_.snapshots_installed;
    log_line(log_level::info, "node ", opts_.id, " installed a snapshot through index ", m.index);
    emit(event_kind::snapshot_installed, m.index);
    wake_apply_waiters();
    if (leader_ != no_node) send(leader_, install_snapshot_response{term_, m.index, in.size, true});
  }
}

/// A partly received snapshot that the log has overtaken (the commit index reached its last
/// entry) can never be needed again. Dropped, or this node would never take a snapshot of its
/// own again (maybe_take_snapshot waits while one is being received) and its log would grow
/// without bound.
template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::drop_overtaken_snapshot() {
  log_line(log_level::debug, "node ", opts_.id, " drops the partly received snapshot through index ",
           incoming_->meta.index, ": the log reached it");
  incoming_.reset();
}

/// An installed snapshot through `through` replaces applying the entries it covers: the
/// proposals among them complete now, with what this node knows of them. One whose entry
/// this node knew committed (within its commit index, or within a log that matches the
/// snapshot's last entry, hence the leader's) committed: its result is unknown here, since
/// the state machine jumps past it. Any other may or may not have committed.
template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::complete_skipped_proposals(index_t through, term_t through_term) {
  const bool log_matches = log_.term_at(through) == through_term;
  while (!pending_.empty() && pending_.front().index <= through) {
    pending_proposal p = std::move(pending_.front());
    pending_.pop_front();
    const bool ours = log_.term_at(p.index) == p.term;
    const bool committed = ours && (p.index <= commit_ || log_matches);
    p.done(error{committed ? errc::committed_result_unknown : errc::leadership_lost, leader_});
  }
}

/// Replaces the state machine's state with a stored snapshot's.
template <class StateMachine, class Storage, class Transport, class Timer>
template <class Reader>
inline void node<StateMachine, Storage, Transport, Timer>::restore_state_machine(const Reader& reader) {
  auto sink = sm_.restore();
  std::vector<std::byte> chunk(opts_.snapshot_chunk_bytes);
  for (std::uint64_t offset = 0; offset < reader.size();) {
    const std::size_t n = reader.read_at(offset, std::span<std::byte>(chunk));
    if (n == 0) throw std::runtime_error("raft: a stored snapshot is shorter than its size");
    sink.write(std::span<const std::byte>(chunk).first(n));
    offset += n;
  }
  sink.finish();
}

}  // namespace v1
}  // namespace raft
