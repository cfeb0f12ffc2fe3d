// raft/storage/shared_log.hpp - raft::shared_log, one durable log for every Raft group of a
// process (Multi-Raft), and raft::shared_log_group, one group's raft::storage on it.
//
// A process that runs thousands of groups must not pay one fdatasync per group. A shared_log
// owns a directory with one append stream of segment files; every group's changes go into it as
// records that carry the group's id, and one writer thread makes them durable: every flush() of
// any group that arrives while a round is in progress joins the next round, which does one
// write() per segment it touches and ONE fdatasync for all of them (group commit across groups).
// The writer starts a round only once the executor turn that submitted flushes is over (a post
// to that executor wakes it): the groups that an event reached, or that a round's completions
// woke, flush in the same round instead of the first of them in a round of its own.
//
// Layout (docs/storage.md has the byte tables):
//   LOCK                             held with flock(LOCK_EX) while a shared_log has the directory open
//   shared-<sequence>.log            segments, numbered 1, 2, 3, ... (20 digits): a header, a
//                                    checkpoint, then records
//   snapshots/<group>/snapshot-<index>.snap   each group's current snapshot (file_storage's format)
//
// Record: u32 length of the body, u32 CRC-32C of the length field and the body, then the body:
// u64 group id, u8 type, and the type's fields (u64 each unless said otherwise):
//   1 checkpoint   term, vote, base index, base term, last index: a group's whole state
//   2 hard_state   term, vote
//   3 entry        term, index, u8 kind, payload
//   4 truncate     index (remove the entries after it)
//   5 compact      index, term (the new compaction base; at or past the last entry it empties the log)
//   6 remove       (the group is gone: everything before this record about it is garbage)
//   7 round        round number (group id 0): ends the checkpoint, and starts every write to the
//                  tail after it (version 2); the numbers increase through the whole log
// A group's records come in the order its calls were made; records of different groups
// interleave in the order their flushes reached the writer. A round's write comes only after
// the one before it was synced. Past its end, the tail file holds zeros written ahead
// (shared_log_options::prefill_bytes), so most rounds overwrite and do not change the file's size:
// their fdatasync need not commit the file system's journal. A segment is cut to its last record
// when it is closed.
//
// Reclamation. A new segment starts with a checkpoint: one record per group that has any state,
// giving its hard state, base and last index as the records before it left them. So a segment
// that is not the last one holds no hard state or base that is still the latest of its group:
// the next segment's checkpoint repeats it. What it may still hold is live entries: the writer
// keeps, per group, the spans of its live entries (base, last] as (segment, first index, last
// index) triples, updated by every append, truncation, compaction and removal, and per segment
// the number of spans in it. The oldest segment is deleted once no span is in it and it is not
// the last segment; only ever the oldest, so the segments left are always a suffix of the stream
// and replaying them from the first one starts at a checkpoint. So that an idle group's last
// entries do not keep every later segment alive, a new segment also takes copies of the live
// entries of the groups that start in the oldest segments (shared_log_options::relocate_bytes):
// their checkpoint records end their logs at their bases and the copies follow, all synced
// before the segment gets its name. Why a crash cannot lose anything:
// a segment's checkpoint is synced before the segment gets its name, segments are deleted only
// after the round that made their last live data dead was synced, one at a time, oldest first,
// so any crash leaves a suffix of segments whose first checkpoint and later records hold every
// live entry, hard state and base. (Checkpoints cost one 57-byte record per group per segment:
// keep segment_bytes well above that times the number of groups.)
//
// Recovery (the constructor): every segment is read in order and its records replayed into
// each group's state; the entries found are kept for that group's first load(). The first bad
// record of the last segment (zeros too) after its checkpoint is cut off with everything after it
// unless a valid round record follows: that is the last round, which a crash interrupted before its sync (its pages
// may have reached the disk in any order, so records of the same round may follow the hole). A
// bad record followed by a later round, a bad record anywhere else, a bad header, a round number
// that does not increase, a missing segment in the sequence, or an entry that replay needs and
// no segment holds, is refused with raft::file_storage_corruption naming the file and the byte
// offset. Version 1 segments (no round records) are read with their rule, no valid record of any
// kind after a bad one; new records then go to a new segment. A group removed by a record whose
// snapshot directory is still there (a crash in the middle of remove_group) loses it now.
//
// Threading. A shared_log's own members may be called from any thread. Each shared_log_group is
// used from one thread (or executor) at a time, as a node does. save_hard_state() submits its
// record and waits for the round that syncs it (votes are rare). append(), truncate_after() and
// compact_through() encode records into the handle's pending buffer; `co_await flush()` hands
// that buffer to the writer thread and resumes on the awaiting coroutine's executor once its
// round is synced. Snapshot commits (sync, rename, cleanup) run on a second thread. A write or
// sync error fails the whole log: flush() throws std::system_error, and every later call of every
// group throws it again (fail-stop, never retried).
//
// Lifetime: the shared_log must outlive its group handles and their snapshot writers (readers
// may outlive both); destroying it with a handle open is a bug (an assert in debug builds).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raft/detail/asio_check.hpp"
#include "raft/detail/handler_batch.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/use_awaitable.hpp>

#include "raft/concepts.hpp"
#include "raft/core/persistent_state.hpp"
#include "raft/core/snapshot.hpp"
#include "raft/core/types.hpp"
#include "raft/detail/endian.hpp"
#include "raft/detail/unique_function.hpp"
#include "raft/storage/detail/crc32c.hpp"
#include "raft/storage/detail/files.hpp"

namespace raft {
inline namespace v1 {

/// Settings of a shared_log (file_storage_options, and prefill_bytes).
struct shared_log_options {
  /// Sync written data and directories. Turn off only for benchmarks and tests.
  bool fsync = true;
  /// A segment is closed and a new one started once it holds this many bytes (it holds at least
  /// its checkpoint and one record).
  std::size_t segment_bytes = std::size_t{64} << 20;
  /// When a round's records reach past the zeros already written after the tail's last record,
  /// this many more zeros are written after them in the same round. Later rounds then overwrite
  /// zeros and do not change the file's size, so their fdatasync does not commit the file
  /// system's journal (on ext4, about 1.7x more syncs per second). 0 writes plain appends, and so
  /// does a log with `fsync` off: there the zeros only cost (0.75x entries/s in a benchmark).
  std::size_t prefill_bytes = std::size_t{1} << 20;
  /// When a new segment starts, the live entries of the groups that hold back the oldest
  /// segments (a group that went idle keeps its last entries, and so every segment after them)
  /// are copied into it, oldest segment first, a whole segment's worth of groups at a time, up
  /// to this many bytes of entry records (and never more than a quarter of `segment_bytes`). The
  /// segments they held can then go. A group with more live bytes than that keeps its segments
  /// until it compacts. 0: never copy.
  std::size_t relocate_bytes = std::size_t{16} << 20;
  /// Test hook: when set (and `fsync` is on), called instead of every fdatasync/fsync with the
  /// file descriptor to sync. Return 0, or -1 with errno set to simulate a failure. Runs on the
  /// writer thread for the log, on the snapshot thread for snapshot commits, and on the caller's
  /// thread when a snapshot directory is created.
  std::function<int(int fd)> sync_hook;
};

/// What a shared_log did so far (for benchmarks and tests).
struct shared_log_stats {
  std::uint64_t flushes = 0;           ///< flush() calls handed to the writer thread
  std::uint64_t hard_state_saves = 0;  ///< save_hard_state() calls handed to the writer thread
  std::uint64_t write_rounds = 0;      ///< rounds of the writer thread (group commits)
  std::uint64_t syncs = 0;             ///< fdatasync calls on segments (0 with fsync off)
  std::uint64_t write_calls = 0;       ///< pwrite() calls on segments
  std::uint64_t entries_written = 0;   ///< entry records written
  std::uint64_t records_written = 0;   ///< records of every type written (checkpoints too)
  std::uint64_t bytes_written = 0;     ///< segment bytes written (headers and checkpoints too)
  std::uint64_t zeros_written = 0;     ///< zeros written ahead of the records (prefill_bytes)
  std::uint64_t segments_created = 0;  ///< segments started since the log was opened
  std::uint64_t segments_removed = 0;  ///< segments deleted by reclamation
  std::uint64_t entries_relocated = 0; ///< live entries copied into a new segment (relocate_bytes)
  std::uint64_t groups_relocated = 0;  ///< groups whose live entries were copied so
};

namespace detail {
namespace shared_format {

inline constexpr std::uint32_t version = 2;          // the version written
inline constexpr std::uint32_t oldest_version = 1;   // the oldest version read (no round records)
inline constexpr char segment_magic[9] = "RAFTMLOG";
/// Never used: the log refuses to start a segment with this number, and to open a directory
/// whose last segment has it, so segment numbers never wrap around.
inline constexpr std::uint64_t last_segment_number = ~std::uint64_t{0};
/// The same for round numbers.
inline constexpr std::uint64_t last_round_number = ~std::uint64_t{0};
inline constexpr std::size_t segment_header_bytes = 32;
inline constexpr std::size_t record_header_bytes = 8;  // u32 length, u32 crc32c
inline constexpr std::size_t body_prefix = 9;          // u64 group, u8 type

enum class record_type : std::uint8_t { checkpoint = 1, hard_state, entry, truncate, compact, remove, round };

/// Body bytes of a record of type `t` (for an entry: without its payload).
[[nodiscard]] constexpr std::size_t body_bytes(record_type t) noexcept {
  switch (t) {
    case record_type::checkpoint: return body_prefix + 40;
    case record_type::hard_state: return body_prefix + 16;
    case record_type::entry: return body_prefix + 17;
    case record_type::truncate: return body_prefix + 8;
    case record_type::compact: return body_prefix + 16;
    case record_type::remove: return body_prefix;
    case record_type::round: return body_prefix + 8;
  }
  return 0;
}
inline constexpr std::size_t entry_fixed = body_prefix + 17;
inline constexpr std::uint64_t max_payload = 0xFFFFFFFFull - entry_fixed;

/// `shared-<sequence, 20 digits>.log`.
[[nodiscard]] inline std::string segment_name(std::uint64_t seq) {
  std::string name = "shared-" + std::string(20, '0');
  for (std::size_t at = name.size(); seq != 0; seq /= 10) name[--at] = char('0' + seq % 10);
  return name + ".log";
}

/// The sequence number in `name` if it is a segment name exactly as segment_name() writes it.
[[nodiscard]] inline std::optional<std::uint64_t> parse_segment_name(std::string_view name) noexcept {
  constexpr std::string_view prefix = "shared-", suffix = ".log";
  if (name.size() != prefix.size() + 20 + suffix.size() || !name.starts_with(prefix) || !name.ends_with(suffix))
    return std::nullopt;
  std::uint64_t v = 0;
  for (const char c : name.substr(prefix.size(), 20)) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = std::uint64_t(c - '0');
    if (v > (~std::uint64_t{0} - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}

/// A segment's header; `format` is `version` but in tests that write an older version.
[[nodiscard]] inline std::array<std::byte, segment_header_bytes> encode_segment_header(std::uint64_t seq,
                                                                                     std::uint32_t format = version) {
  std::array<std::byte, segment_header_bytes> h{};
  std::memcpy(h.data(), segment_magic, 8);
  store_u32(h.data() + 8, format);
  store_u32(h.data() + 12, segment_header_bytes);
  store_u64(h.data() + 16, seq);
  store_u32(h.data() + 24, crc32c(h.data(), 24));
  return h;
}

/// CRC-32C over a record's length field and its body.
[[nodiscard]] inline std::uint32_t record_crc(const std::byte* record, std::uint32_t body_len) noexcept {
  return crc32c_update(crc32c(record, 4), record + record_header_bytes, body_len);
}

/// Appends a record of a fixed-size type with its u64 fields to `out`.
inline void put_record(std::vector<std::byte>& out, std::uint64_t group, record_type t,
                       std::initializer_list<std::uint64_t> fields) {
  const auto body = static_cast<std::uint32_t>(body_bytes(t));
  const std::size_t at = out.size();
  out.resize(at + record_header_bytes + body);
  std::byte* p = out.data() + at;
  store_u32(p, body);
  store_u64(p + 8, group);
  p[16] = std::byte(t);
  std::size_t field = 17;
  for (const std::uint64_t v : fields) {
    store_u64(p + field, v);
    field += 8;
  }
  store_u32(p + 4, record_crc(p, body));
}

/// Appends an entry record to `out`, the payload copied straight into it.
inline void put_entry(std::vector<std::byte>& out, std::uint64_t group, const log_entry& e) {
  const auto payload = e.data.bytes();
  const auto body = static_cast<std::uint32_t>(entry_fixed + payload.size());
  const std::size_t at = out.size();
  out.resize(at + record_header_bytes + body);
  std::byte* p = out.data() + at;
  store_u32(p, body);
  store_u64(p + 8, group);
  p[16] = std::byte(record_type::entry);
  store_u64(p + 17, e.term.value);
  store_u64(p + 25, e.index.value);
  p[33] = std::byte(e.kind);
  if (!payload.empty()) std::memcpy(p + 34, payload.data(), payload.size());
  store_u32(p + 4, record_crc(p, body));
}

/// A record that passed its checksum, read in place.
struct record_view {
  const std::byte* p = nullptr;  ///< the record header
  std::uint32_t body = 0;
  [[nodiscard]] std::size_t size() const noexcept { return record_header_bytes + body; }
  [[nodiscard]] std::uint64_t group() const noexcept { return load_u64(p + 8); }
  [[nodiscard]] std::uint8_t type_byte() const noexcept { return std::uint8_t(p[16]); }
  [[nodiscard]] record_type type() const noexcept { return static_cast<record_type>(p[16]); }
  /// The k-th u64 field after the type.
  [[nodiscard]] std::uint64_t field(std::size_t k) const noexcept { return load_u64(p + 17 + 8 * k); }
  [[nodiscard]] std::uint8_t entry_kind_byte() const noexcept { return std::uint8_t(p[33]); }
  [[nodiscard]] std::span<const std::byte> payload() const noexcept {
    return {p + record_header_bytes + entry_fixed, body - entry_fixed};
  }
  /// A known type with the size its type gives (entries: at least it) and a known entry kind.
  [[nodiscard]] bool well_formed() const noexcept {
    if (body < body_prefix || type_byte() < 1 || type_byte() > 7) return false;
    const std::size_t fixed = body_bytes(type());
    if (type() != record_type::entry) return body == fixed;
    return body >= fixed && entry_kind_byte() <= 2;
  }
};

/// Checks the record at `p` (`left` bytes to the end of the data): nullptr and `out` set if it
/// is whole and its checksum matches, else what is wrong.
[[nodiscard]] inline const char* check_record(const std::byte* p, std::size_t left, record_view& out) noexcept {
  if (left < record_header_bytes) return "incomplete record header";
  const std::uint32_t len = load_u32(p);
  if (len < body_prefix) return "impossible record length";
  if (len > left - record_header_bytes) return "record runs past the end of the file";
  if (load_u32(p + 4) != record_crc(p, len)) return "record checksum mismatch";
  out = record_view{p, len};
  return nullptr;
}

}  // namespace shared_format

/// Where some of a group's live entries are: entries lo..hi, all in one segment, whose records
/// lie within bytes [begin, end) of it (with other groups' records, and dead copies, between).
struct shared_log_span {
  std::uint64_t segment = 0;
  index_t lo{0};
  index_t hi{0};
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  std::uint64_t bytes = 0;  ///< of the group's entry records noted in it (an upper bound of the live ones)
};

/// One group of a shared_log, in its map (node-based: its address never changes).
struct shared_log_group_state {
  explicit shared_log_group_state(std::uint64_t group_id) : id(group_id) {}
  const std::uint64_t id;

  // What the records written so far say. Changed only by the writer thread (and by recovery
  // before it starts); a handle reads them in load() while the group has nothing in flight.
  hard_state hs;
  index_t base{0};
  term_t base_term{0};
  index_t last{0};
  std::vector<shared_log_span> spans;  ///< the live entries (base, last], in index order

  // Guarded by the log's mutex.
  bool open = false;       ///< a handle holds it
  bool removing = false;   ///< remove_group() is in progress
  std::size_t in_flight = 0;  ///< jobs handed to the writer, not completed yet

  // Recovery: the entries replay found, for the first load() (then empty).
  std::vector<log_entry> recovered;
  bool has_recovered = false;

  // The handle's (caller side).
  std::shared_ptr<const snapshot_file> snapshot;  ///< the current snapshot, if any
  int writers = 0;                                ///< open snapshot writers

  [[nodiscard]] bool empty() const noexcept {
    return hs == hard_state{} && base == index_t{0} && last == index_t{0};
  }
};

}  // namespace detail

class shared_log;
class shared_log_group;

/// A committed snapshot of a shared_log group (raft::snapshot_reader). Holds the file open: it
/// stays valid after a newer snapshot replaced it, and after the group and the log are gone.
/// Cheap to copy; read_at() may be called from any thread.
class shared_log_snapshot_reader {
 public:
  [[nodiscard]] const snapshot_meta& meta() const noexcept { return f_->meta; }
  [[nodiscard]] std::uint64_t size() const noexcept { return f_->data_size; }
  /// Copies up to `buf.size()` bytes from `offset`; returns how many (fewer only at the end).
  std::size_t read_at(std::uint64_t offset, std::span<std::byte> buf) const {
    return detail::read_snapshot_data(*f_, offset, buf);
  }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return f_->path; }

 private:
  friend class shared_log_group;
  explicit shared_log_snapshot_reader(std::shared_ptr<const detail::snapshot_file> f) : f_(std::move(f)) {}
  std::shared_ptr<const detail::snapshot_file> f_;
};

/// A snapshot being written for a shared_log group (raft::snapshot_writer), in file_storage's
/// snapshot format: write() checksums and buffers (1 MiB pieces to the page cache, no sync);
/// co_await commit() syncs, renames into place and deletes the group's older snapshots on the
/// log's snapshot thread. Destroyed before commit(), it removes its temporary file. Its log
/// must outlive it.
class shared_log_snapshot_writer {
 public:
  shared_log_snapshot_writer(shared_log_snapshot_writer&& o) noexcept
      : log_(std::exchange(o.log_, nullptr)), group_(std::exchange(o.group_, nullptr)), file_(std::move(o.file_)) {}
  shared_log_snapshot_writer& operator=(shared_log_snapshot_writer&& o) noexcept {
    if (this != &o) {
      abandon();
      log_ = std::exchange(o.log_, nullptr);
      group_ = std::exchange(o.group_, nullptr);
      file_ = std::move(o.file_);
    }
    return *this;
  }
  shared_log_snapshot_writer(const shared_log_snapshot_writer&) = delete;
  shared_log_snapshot_writer& operator=(const shared_log_snapshot_writer&) = delete;
  ~shared_log_snapshot_writer() { abandon(); }

  /// Appends `bytes` to the snapshot. An I/O error fails the log (as in flush()).
  void write(std::span<const std::byte> bytes);

  /// Makes the snapshot durable and the group's current one; completes on the awaiting
  /// coroutine's executor. Throws std::system_error if a write, sync or rename failed.
  asio::awaitable<void> commit();

  [[nodiscard]] std::uint64_t size() const noexcept { return file_.size(); }

 private:
  friend class shared_log_group;
  shared_log_snapshot_writer(shared_log* log, detail::shared_log_group_state* group, std::filesystem::path tmp,
                             std::filesystem::path final_path, detail::unique_fd fd, snapshot_meta meta,
                             std::span<const std::byte> encoded_meta)
      : log_(log),
        group_(group),
        file_(std::move(tmp), std::move(final_path), std::move(fd), std::move(meta), encoded_meta) {
    ++group_->writers;
  }

  void require_open(const char* what) const {
    if (!file_.is_open() || log_ == nullptr)
      throw std::logic_error(std::string("raft::shared_log_snapshot_writer::") + what +
                             " after commit (or on a moved-from writer)");
  }
  /// What the snapshot file does with a write error: it fails the whole log.
  [[nodiscard]] auto fail_log() const;
  /// Done with (committed, or abandoned): the group may get another writer.
  void release() noexcept {
    if (group_ != nullptr) --group_->writers;
    group_ = nullptr;
    log_ = nullptr;
  }
  void abandon() noexcept {
    file_.abandon();
    release();
  }

  shared_log* log_ = nullptr;
  detail::shared_log_group_state* group_ = nullptr;
  detail::snapshot_file_writer file_;
};

/// One durable append stream for many Raft groups. See the top of this file and docs/storage.md.
class shared_log {
  friend class shared_log_group;
  friend class shared_log_snapshot_writer;

 public:
  /// Opens (creating it if missing) the directory `dir`, locks it (a second shared_log or
  /// file_storage on it throws std::system_error while this one lives), and recovers every
  /// group's state from its segments (see the top of this file). Throws
  /// file_storage_corruption for data it cannot trust, std::system_error for I/O errors.
  explicit shared_log(std::filesystem::path dir, shared_log_options opts = {})
      : dir_(std::move(dir)), opts_(std::move(opts)) {
    namespace sf = detail::shared_format;
    if (opts_.segment_bytes < sf::segment_header_bytes + sf::record_header_bytes + sf::entry_fixed)
      throw std::invalid_argument("raft::shared_log: segment_bytes is too small");
    std::error_code ec;
    std::filesystem::create_directories(dir_ / "snapshots", ec);
    if (ec) throw std::system_error(ec, "raft::shared_log: cannot create directory " + dir_.string());
    lock_fd_ = detail::open_file(dir_ / "LOCK", O_RDWR | O_CREAT);
    if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      throw std::system_error(err, std::generic_category(),
                              "raft::shared_log: directory " + dir_.string() +
                                  " is already in use (its LOCK file is held by another storage)");
    }
    dir_fd_ = detail::open_file(dir_, O_RDONLY | O_DIRECTORY);
    snapshots_fd_ = detail::open_file(dir_ / "snapshots", O_RDONLY | O_DIRECTORY);
    sync_fd(dir_fd_.get(), false, dir_);
    recover();
    writer_ = std::thread([this] { writer_loop(); });
  }

  shared_log(const shared_log&) = delete;
  shared_log& operator=(const shared_log&) = delete;

  /// Finishes the rounds already requested, then stops the writer and snapshot threads. Every
  /// group handle and snapshot writer must be gone by now.
  ~shared_log() {
    assert(open_handles() == 0 && "raft::shared_log destroyed while a shared_log_group is open");
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    writer_.join();
    snapshot_thread_.stop();
  }

  /// The storage of group `group`: a movable handle, a raft::storage and raft::snapshot_storage
  /// (call load() first). A group never written is empty. Throws std::logic_error if a handle of
  /// that group is already open, or the group is being removed.
  [[nodiscard]] shared_log_group open_group(group_id group);

  /// Destroys group `group`: its entries become garbage, its snapshots are deleted, and a later
  /// open_group() of the same id starts empty. Durable when it returns (one round of the writer).
  /// Throws std::logic_error while a handle of the group is open.
  void remove_group(group_id group_number) {
    const std::uint64_t group = group_number.value;
    throw_if_failed();
    detail::shared_log_group_state* g = nullptr;
    {
      std::lock_guard lock(mutex_);
      auto it = groups_.try_emplace(group, group).first;
      if (it->second.open || it->second.removing)
        throw std::logic_error("raft::shared_log::remove_group: group " + std::to_string(group) +
                               " is open (destroy its handle first)");
      if (it->second.in_flight != 0)
        throw std::logic_error("raft::shared_log::remove_group: group " + std::to_string(group) +
                               " still has a flush in progress");
      it->second.removing = true;
      g = &it->second;
    }
    std::vector<std::byte> rec;
    detail::shared_format::put_record(rec, group, detail::shared_format::record_type::remove, {});
    try {
      submit_and_wait(g, std::move(rec));
    } catch (...) {
      std::lock_guard lock(mutex_);
      g->removing = false;
      throw;
    }
    std::lock_guard lock(mutex_);
    groups_.erase(group);
  }

  /// The ids of the groups that hold any state (hard state, base or entries) or have a handle open.
  [[nodiscard]] std::vector<group_id> groups() const {
    std::lock_guard lock(mutex_);
    std::vector<group_id> out;
    for (const auto& [id, g] : groups_)
      if (g.open || !g.empty()) out.push_back(group_id{id});
    std::sort(out.begin(), out.end());
    return out;
  }

  [[nodiscard]] shared_log_stats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }
  [[nodiscard]] const std::filesystem::path& directory() const noexcept { return dir_; }
  [[nodiscard]] const shared_log_options& options() const noexcept { return opts_; }
  /// The directory that holds group `group`'s snapshot files.
  [[nodiscard]] std::filesystem::path snapshot_directory(std::uint64_t group) const {
    return dir_ / "snapshots" / std::to_string(group);
  }

 private:
  using group_state = detail::shared_log_group_state;
  using record_type = detail::shared_format::record_type;

  /// A group's records, handed to the writer thread, and what to do once they are durable.
  struct job {
    group_state* group = nullptr;
    std::vector<std::byte> bytes;
    /// Runs on `executor` (posted) or, where it is empty, on the writer thread.
    detail::unique_function<void(std::exception_ptr)> done;
    /// Tracked: the executor has outstanding work until `done` is posted.
    asio::any_io_executor executor;
  };

  /// A segment file, as the writer knows it.
  struct segment {
    std::uint64_t seq = 0;
    std::uint64_t size = 0;        ///< bytes in the file (and in the writer's round buffer)
    std::size_t records = 0;       ///< records after the checkpoint
    std::size_t live_spans = 0;    ///< spans of live entries in it
  };

  [[nodiscard]] std::size_t open_handles() const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& [id, g] : groups_) n += g.open ? 1 : 0;
    return n;
  }

  [[nodiscard]] std::filesystem::path segment_path(std::uint64_t seq) const {
    return dir_ / detail::shared_format::segment_name(seq);
  }

  // ---- failure (fail-stop) ---------------------------------------------------------------------

  void throw_if_failed() const {
    if (!failed_.load(std::memory_order_acquire)) return;
    std::lock_guard lock(mutex_);
    std::rethrow_exception(failure_);
  }

  void record_failure(std::exception_ptr e) {
    std::lock_guard lock(mutex_);
    if (!failure_) failure_ = std::move(e);
    failed_.store(true, std::memory_order_release);
  }

  void sync_fd(int fd, bool data_only, const std::filesystem::path& what) const {
    if (!opts_.fsync) return;
    int r;
    do {
      r = opts_.sync_hook ? opts_.sync_hook(fd) : (data_only ? ::fdatasync(fd) : ::fsync(fd));
    } while (r != 0 && errno == EINTR && !opts_.sync_hook);
    if (r != 0) throw detail::posix_error(errno, data_only ? "fdatasync" : "fsync", what);
  }

  // ---- handing work to the writer --------------------------------------------------------------

  /// Queues `bytes` (records of `g`); once they are durable, `done` is posted to `executor`, or
  /// runs on the writer thread if `executor` is empty. A flush gets back a spare buffer for its
  /// handle's next records (empty if there is none), taken under the same lock.
  std::vector<std::byte> submit(group_state* g, std::vector<std::byte> bytes,
                                detail::unique_function<void(std::exception_ptr)> done, bool is_flush,
                                asio::any_io_executor executor = {}) {
    std::vector<std::byte> spare;
    const bool at_once = !executor;  // a blocked thread waits for it
    asio::any_io_executor kick_on;   // where the writer's wake-up is posted, if it is
    {
      std::lock_guard lock(mutex_);
      if (at_once) {
        ++waiting_now_;
      } else {
        auto plain = asio::any_io_executor(asio::prefer(executor, asio::execution::outstanding_work.untracked));
        auto& kicked = sync_->kicked;
        if (std::find(kicked.begin(), kicked.end(), plain) == kicked.end()) {
          kicked.push_back(plain);
          kick_on = std::move(plain);
        }
      }
      queue_.push_back(job{g, std::move(bytes), std::move(done), std::move(executor)});
      ++g->in_flight;
      if (is_flush)
        ++stats_.flushes;
      else
        ++stats_.hard_state_saves;
      if (is_flush && !spare_.empty()) {
        spare = std::move(spare_.back());
        spare_.pop_back();
      }
    }
    if (at_once)
      wake_.notify_one();
    else if (kick_on)
      asio::post(kick_on, writer_kick{sync_, kick_on});
    return spare;
  }

  /// submit() for an Asio completion handler: it runs on its associated executor, which is
  /// kept busy (outstanding work) until then. The handlers a round completes on one executor
  /// share one post.
  template <class Handler>
  std::vector<std::byte> submit_async(group_state* g, std::vector<std::byte> bytes, Handler handler) {
    auto work = asio::prefer(asio::get_associated_executor(handler), asio::execution::outstanding_work.tracked);
    static_assert(std::is_constructible_v<asio::any_io_executor, decltype(work)>,
                  "raft::shared_log: a flush's completion handler needs an executor that converts to "
                  "asio::any_io_executor (every executor of Asio's own does)");
    return submit(g, std::move(bytes), std::move(handler), true, asio::any_io_executor(std::move(work)));
  }

  /// submit(), then blocks the calling thread until the round that syncs `bytes` is done.
  void submit_and_wait(group_state* g, std::vector<std::byte> bytes) {
    struct waiter {
      std::mutex m;
      std::condition_variable cv;
      bool done = false;
      std::exception_ptr error;
    };
    auto w = std::make_shared<waiter>();
    submit(
        g, std::move(bytes),
        [w](std::exception_ptr e) {
          std::lock_guard lock(w->m);
          w->error = std::move(e);
          w->done = true;
          w->cv.notify_all();
        },
        false);
    std::unique_lock lock(w->m);
    w->cv.wait(lock, [&] { return w->done; });
    if (w->error) std::rethrow_exception(w->error);
  }

  /// An empty buffer for a handle's pending records, reusing one the writer gave back.
  std::vector<std::byte> spare_buffer() {
    std::lock_guard lock(mutex_);
    if (spare_.empty()) return {};
    auto b = std::move(spare_.back());
    spare_.pop_back();
    return b;
  }

  // ---- the state records describe (writer thread, and recovery) ------------------------------

  segment& segment_of(std::uint64_t seq) { return segments_[seq - segments_.front().seq]; }

  void release_span(const detail::shared_log_span& s) { --segment_of(s.segment).live_spans; }

  /// Entry `i` of `g` is at bytes [begin, end) of segment `seq`.
  void note_entry(group_state& g, index_t i, std::uint64_t seq, std::uint64_t begin, std::uint64_t end) {
    if (!g.spans.empty() && g.spans.back().segment == seq) {
      g.spans.back().hi = i;
      g.spans.back().end = end;
      g.spans.back().bytes += end - begin;
    } else {
      g.spans.push_back(detail::shared_log_span{seq, i, i, begin, end, end - begin});
      ++segment_of(seq).live_spans;
    }
    g.last = i;
  }

  void note_truncate(group_state& g, index_t t) {
    if (t >= g.last) return;
    while (!g.spans.empty() && g.spans.back().lo > t) {
      release_span(g.spans.back());
      g.spans.pop_back();
    }
    if (!g.spans.empty()) g.spans.back().hi = std::min(g.spans.back().hi, t);
    g.last = t;
  }

  void note_compact(group_state& g, index_t c, term_t term) {
    if (c <= g.base) return;
    std::size_t dead = 0;
    while (dead < g.spans.size() && g.spans[dead].hi <= c) release_span(g.spans[dead++]);
    g.spans.erase(g.spans.begin(), g.spans.begin() + std::ptrdiff_t(dead));
    if (!g.spans.empty()) g.spans.front().lo = std::max(g.spans.front().lo, c.next());
    g.last = std::max(g.last, c);
    g.base = c;
    g.base_term = term;
  }

  void note_remove(group_state& g) {
    for (const auto& s : g.spans) release_span(s);
    g.spans.clear();
    g.hs = hard_state{};
    g.base = g.last = index_t{0};
    g.base_term = term_t{0};
  }

  // ---- recovery ----------------------------------------------------------------------------------

  /// What replay keeps per group beside its state: the entries (base, last] it found, in order,
  /// after those a checkpoint announced that an older (deleted) segment held: (base, missing].
  /// Later records must drop those (a compaction) by the end of the replay. Only counted, never
  /// stored: a checkpoint can promise any number.
  struct replay_log {
    std::deque<log_entry> entries;  ///< (max(base, missing), last]
    index_t missing{0};
  };
  using replay_entries = std::unordered_map<std::uint64_t, replay_log>;

  void recover() {
    namespace sf = detail::shared_format;
    std::vector<std::pair<std::uint64_t, std::filesystem::path>> files;
    for (const auto& de : std::filesystem::directory_iterator(dir_)) {
      const std::string name = de.path().filename().string();
      if (name.ends_with(".tmp")) {
        std::error_code ec;
        std::filesystem::remove(de.path(), ec);  // a segment whose creation a crash interrupted
        continue;
      }
      if (auto seq = sf::parse_segment_name(name)) files.emplace_back(*seq, de.path());
    }
    std::sort(files.begin(), files.end());
    replay_entries entries;
    std::unordered_map<std::uint64_t, bool> removed;  // group -> its last record was a removal
    std::uint32_t tail_version = sf::version;          // the last segment's format
    if (!files.empty() && files.back().first == sf::last_segment_number)
      throw file_storage_corruption(files.back().second, 0, "a segment number the log never uses (the largest there is)");
    for (std::size_t k = 0; k < files.size(); ++k) {
      if (k > 0 && files[k].first != files[k - 1].first + 1)
        throw file_storage_corruption(files[k].second, 0,
                                      "a segment is missing: the previous one is number " +
                                          std::to_string(files[k - 1].first));
      tail_version = replay_segment(files[k].first, files[k].second, k + 1 == files.size(), entries, removed);
    }
    finish_recovery(files.empty() ? dir_ : files.front().second, entries);
    for (const auto& [id, gone] : removed)
      if (gone) remove_snapshot_directory(id);  // a removal a crash interrupted
    if (segments_.empty()) {
      start_segment(1);
    } else if (tail_version != sf::version) {  // records are written in this build's format only
      if (segments_.back().seq + 1 == sf::last_segment_number)
        throw file_storage_corruption(segment_path(segments_.back().seq), 0, "no segment number is left after it");
      start_segment(segments_.back().seq + 1);
    } else {
      tail_fd_ = detail::open_file(segment_path(segments_.back().seq), O_RDWR);
      tail_filled_ = segments_.back().size;
    }
  }

  /// Replays segment `seq` (cutting a torn last round if it is the last file); returns its format
  /// version.
  std::uint32_t replay_segment(std::uint64_t seq, const std::filesystem::path& path, bool last_file,
                               replay_entries& entries, std::unordered_map<std::uint64_t, bool>& removed) {
    namespace sf = detail::shared_format;
    std::vector<std::byte> buf = detail::read_whole_file(path);
    const std::uint32_t version = check_segment_header(buf, seq, path);
    const bool rounds = version >= 2;  // version 1 has no round records
    bool round_seen = false;           // version 2: the checkpoint ends at the first round record
    segments_.push_back(segment{seq, sf::segment_header_bytes, 0, 0});
    std::size_t at = sf::segment_header_bytes;
    while (at < buf.size()) {
      sf::record_view r;
      if (const char* bad = sf::check_record(buf.data() + at, buf.size() - at, r)) {
        // The end of the last round, if that round's pages reached the disk only in part (a crash
        // before its sync; it was never acknowledged): cut it off. Anything else is corruption,
        // the checkpoint too: it was synced before the segment got its name.
        if (!last_file)
          throw file_storage_corruption(path, at, std::string(bad) + " in a segment that is not the last");
        if (rounds && !round_seen)
          throw file_storage_corruption(path, at, std::string(bad) + " in the segment's checkpoint");
        if (rounds ? round_record_after(buf, at + 1) : valid_record_after(buf, at + 1))
          throw file_storage_corruption(path, at,
                                        std::string(bad) + (rounds ? ", and a later round follows" : ", and valid records follow") +
                                            ": refusing to drop them");
        detail::unique_fd fd = detail::open_file(path, O_RDWR);
        if (::ftruncate(fd.get(), off_t(at)) != 0) throw detail::posix_error(errno, "ftruncate", path);
        sync_fd(fd.get(), false, path);
        buf.resize(at);
        break;
      }
      if (!r.well_formed() || (!rounds && r.type() == record_type::round))
        throw file_storage_corruption(path, at, "record of unknown type or wrong size (type " +
                                                    std::to_string(r.type_byte()) + ")");
      const std::uint64_t end = at + r.size();
      if (r.type() == record_type::round) {
        if (r.field(0) <= last_round_)
          throw file_storage_corruption(path, at, "round " + std::to_string(r.field(0)) + " after round " +
                                                      std::to_string(last_round_));
        if (r.field(0) == sf::last_round_number)
          throw file_storage_corruption(path, at, "a round number the log never uses (the largest there is)");
        last_round_ = r.field(0);
        round_seen = true;
      } else {
        if (round_seen && r.type() == record_type::checkpoint)
          throw file_storage_corruption(path, at, "checkpoint record after the segment's first round");
        replay_record(r, seq, at, end, path, entries, removed);
        if (r.type() != record_type::checkpoint) ++segments_.back().records;
      }
      at = end;
    }
    if (rounds && !round_seen)
      throw file_storage_corruption(path, buf.size(), "the segment's checkpoint has no round record after it");
    segments_.back().size = buf.size();
    return version;
  }

  /// Checks a segment's header; returns its format version.
  static std::uint32_t check_segment_header(const std::vector<std::byte>& buf, std::uint64_t seq,
                                            const std::filesystem::path& path) {
    namespace sf = detail::shared_format;
    if (buf.size() < sf::segment_header_bytes)
      throw file_storage_corruption(path, buf.size(), "segment header is incomplete");
    if (std::memcmp(buf.data(), sf::segment_magic, 8) != 0)
      throw file_storage_corruption(path, 0, "bad magic number (not a raft shared log segment)");
    const auto v = detail::load_u32(buf.data() + 8);
    if (v < sf::oldest_version || v > sf::version)
      throw file_storage_corruption(path, 8, "unsupported format version " + std::to_string(v) + " (this build reads versions " +
                                                 std::to_string(sf::oldest_version) + " to " + std::to_string(sf::version) + ")");
    if (detail::load_u32(buf.data() + 24) != detail::crc32c(buf.data(), 24) ||
        detail::load_u32(buf.data() + 12) != sf::segment_header_bytes)
      throw file_storage_corruption(path, 0, "segment header checksum mismatch");
    if (detail::load_u64(buf.data() + 16) != seq)
      throw file_storage_corruption(path, 16, "the header gives segment number " +
                                                  std::to_string(detail::load_u64(buf.data() + 16)));
    return v;
  }

  /// Is there a well-formed record that passes its checksum anywhere in `buf` from `from` on
  /// (of type `only`, if given)? Tells a torn tail from corruption in the middle.
  static bool valid_record_after(const std::vector<std::byte>& buf, std::size_t from,
                                 std::optional<record_type> only = std::nullopt) {
    namespace sf = detail::shared_format;
    for (std::size_t y = from; y + sf::record_header_bytes + sf::body_prefix <= buf.size(); ++y) {
      const std::byte* p = buf.data() + y;
      const std::uint32_t len = detail::load_u32(p);
      if (len < sf::body_prefix || len > buf.size() - y - sf::record_header_bytes) continue;
      const sf::record_view r{p, len};
      if (!r.well_formed() || (only && r.type() != *only)) continue;
      if (detail::load_u32(p + 4) == sf::record_crc(p, len)) return true;
    }
    return false;
  }

  /// Version 2: a round's pages may reach the disk in any order before its sync (they overwrite a
  /// zero-filled file, whose size does not change), so valid records after a bad one may be the
  /// same unsynced round's. Only a later round's record proves the bad one was synced: rounds are
  /// written one at a time, each after the one before it was synced.
  static bool round_record_after(const std::vector<std::byte>& buf, std::size_t from) {
    return valid_record_after(buf, from, record_type::round);
  }

  /// Applies one record to its group's state and to the entries replay keeps.
  void replay_record(const detail::shared_format::record_view& r, std::uint64_t seq, std::uint64_t begin,
                     std::uint64_t end, const std::filesystem::path& path, replay_entries& entries,
                     std::unordered_map<std::uint64_t, bool>& removed) {
    const std::uint64_t id = r.group();
    group_state& g = groups_.try_emplace(id, id).first->second;
    replay_log& log = entries[id];
    removed[id] = r.type() == record_type::remove;
    auto corrupt = [&](const std::string& what) {
      return file_storage_corruption(path, begin, "group " + std::to_string(id) + ": " + what);
    };
    switch (r.type()) {
      case record_type::checkpoint: {
        const index_t base{r.field(2)}, last{r.field(4)};
        if (base < g.base || last < base) throw corrupt("checkpoint goes back before the group's base");
        replay_compact(g, log, base, term_t{r.field(3)});
        if (last < g.last) replay_truncate(g, log, last);
        if (last > g.last) {  // entries held by segments deleted since: later records drop them
          if (!log.entries.empty())
            throw corrupt("checkpoint promises entries after " + std::to_string(g.last.value) +
                          " that the records before it do not have");
          log.missing = last;
          g.last = last;
        }
        g.hs = hard_state{term_t{r.field(0)}, node_id{r.field(1)}};
        break;
      }
      case record_type::hard_state: g.hs = hard_state{term_t{r.field(0)}, node_id{r.field(1)}}; break;
      case record_type::entry: {
        const index_t i{r.field(1)};
        if (i != g.last.next())
          throw corrupt("entry " + std::to_string(i.value) + " where " + std::to_string(g.last.next().value) +
                        " was expected");
        log.entries.push_back(log_entry{term_t{r.field(0)}, i, static_cast<entry_kind>(r.entry_kind_byte()),
                                        buffer{r.payload()}});
        note_entry(g, i, seq, begin, end);
        break;
      }
      case record_type::truncate: {
        const index_t t{r.field(0)};
        if (t < g.base) throw corrupt("truncation below the compaction base");
        replay_truncate(g, log, t);
        break;
      }
      case record_type::compact: replay_compact(g, log, index_t{r.field(0)}, term_t{r.field(1)}); break;
      case record_type::remove:
        log = replay_log{};
        note_remove(g);
        break;
      case record_type::round: break;  // replay_segment() checks it
    }
  }

  /// The index before the first entry replay holds for `g`.
  [[nodiscard]] static index_t found_after(const group_state& g, const replay_log& log) noexcept {
    return std::max(g.base, log.missing);
  }

  void replay_truncate(group_state& g, replay_log& log, index_t t) {
    if (t >= g.last) return;
    if (const index_t from = found_after(g, log); t >= from) {
      log.entries.resize(t - from);
    } else {
      log.entries.clear();
      log.missing = t;
    }
    note_truncate(g, t);
  }

  void replay_compact(group_state& g, replay_log& log, index_t c, term_t term) {
    if (c <= g.base) return;
    if (const index_t from = found_after(g, log); c >= g.last)
      log.entries.clear();
    else if (c > from)
      log.entries.erase(log.entries.begin(), log.entries.begin() + std::ptrdiff_t(c - from));
    note_compact(g, c, term);
  }

  /// Every entry a group needs must have been found; hands the entries to the groups.
  void finish_recovery(const std::filesystem::path& first_file, replay_entries& entries) {
    for (auto& [id, log] : entries) {
      group_state& g = groups_.at(id);
      if (log.missing > g.base)
        throw file_storage_corruption(first_file, 0,
                                      "group " + std::to_string(id) + ": its checkpoint promises entries up to " +
                                          std::to_string(log.missing.value) +
                                          " that no segment holds (a segment was lost)");
      g.recovered.assign(std::make_move_iterator(log.entries.begin()), std::make_move_iterator(log.entries.end()));
      g.has_recovered = true;
      log.entries.clear();
    }
    std::erase_if(groups_, [](const auto& kv) { return kv.second.empty(); });
  }

  void remove_snapshot_directory(std::uint64_t group) {
    const auto d = snapshot_directory(group);
    std::error_code ec;
    if (!std::filesystem::exists(d, ec)) return;
    std::filesystem::remove_all(d, ec);
    if (ec) throw std::system_error(ec, "raft::shared_log: cannot remove " + d.string());
    sync_fd(snapshots_fd_.get(), false, dir_ / "snapshots");
  }

  // ---- reading a group's entries back (load() after recovery's entries were taken) -------------

  /// The entries (base, last] of `g`, read from its spans.
  [[nodiscard]] std::vector<log_entry> read_entries(const group_state& g) const {
    const group_state* one[] = {&g};
    return std::move(read_entries(one).front());
  }

  /// The entries (base, last] of each group in `gs`, read from their spans: the bytes of each
  /// segment that any of them need are read once. In a span's byte range, the last copy of an
  /// index is the live one (a copy written after the live one would have needed a truncation
  /// below it first).
  [[nodiscard]] std::vector<std::vector<log_entry>> read_entries(std::span<const group_state* const> gs) const {
    namespace sf = detail::shared_format;
    struct need {
      std::size_t group;  // position in gs
      const detail::shared_log_span* span;
    };
    std::vector<std::vector<log_entry>> out(gs.size());
    std::vector<need> needs;
    for (std::size_t k = 0; k < gs.size(); ++k) {
      out[k].resize(std::size_t(gs[k]->last - gs[k]->base));
      for (const auto& s : gs[k]->spans) needs.push_back(need{k, &s});
    }
    std::sort(needs.begin(), needs.end(), [](const need& a, const need& b) { return a.span->segment < b.span->segment; });
    std::unordered_map<std::uint64_t, need> in_segment;  // group id -> its span there (one per segment)
    std::vector<std::byte> buf;
    for (auto first = needs.begin(); first != needs.end();) {
      const std::uint64_t seq = first->span->segment;
      auto last = std::find_if(first, needs.end(), [seq](const need& n) { return n.span->segment != seq; });
      std::uint64_t begin = first->span->begin, end = first->span->end;
      in_segment.clear();
      for (auto n = first; n != last; ++n) {
        begin = std::min(begin, n->span->begin);
        end = std::max(end, n->span->end);
        [[maybe_unused]] const bool first_in_segment = in_segment.emplace(gs[n->group]->id, *n).second;
        // note_entry() extends the last span while the segment is the same, and segments only
        // grow along a group's spans: a group has at most one span per segment.
        assert(first_in_segment);
      }
      const auto path = segment_path(seq);
      detail::unique_fd fd = detail::open_file(path, O_RDONLY);
      buf.resize(std::size_t(end - begin));
      if (detail::read_at(fd.get(), buf.data(), buf.size(), begin, path) != buf.size())
        throw file_storage_corruption(path, begin, "segment ends before the group's records");
      for (std::size_t at = 0; at < buf.size();) {
        sf::record_view r;
        if (const char* bad = sf::check_record(buf.data() + at, buf.size() - at, r))
          throw file_storage_corruption(path, begin + at, bad);
        if (r.type() == record_type::entry) {
          if (const auto it = in_segment.find(r.group()); it != in_segment.end()) {
            const auto& [k, s] = it->second;
            const index_t i{r.field(1)};
            if (begin + at >= s->begin && begin + at < s->end && i >= s->lo && i <= s->hi)
              out[k][i - gs[k]->base - 1] = log_entry{term_t{r.field(0)}, i, static_cast<entry_kind>(r.entry_kind_byte()),
                                                      buffer{r.payload()}};
          }
        }
        at += r.size();
      }
      first = last;
    }
    for (std::size_t k = 0; k < gs.size(); ++k)
      for (const log_entry& e : out[k])
        if (e.index == index_t{0})
          throw std::logic_error("raft::shared_log: group " + std::to_string(gs[k]->id) +
                                 ": an entry is missing from its spans");
    return out;
  }

  // ---- writer thread -----------------------------------------------------------------------------

  /// Runs `work` on a background thread unless the log has failed already (fail-stop); returns
  /// the failure, the earlier one or the one `work` threw (recorded), or null.
  template <class Work>
  std::exception_ptr unless_failed(Work&& work) {
    if (failed_.load(std::memory_order_acquire)) {
      std::lock_guard lock(mutex_);
      return failure_;
    }
    try {
      work();
      return nullptr;
    } catch (...) {
      std::exception_ptr error = std::current_exception();
      record_failure(error);
      return error;
    }
  }

  void writer_loop() {
    std::vector<job> jobs;
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        // (a round waits for a writer_kick, unless a thread is blocked on one of its jobs or
        // the log is closing)
        wake_.wait(lock, [&] { return stop_ || (!queue_.empty() && (sync_->go || waiting_now_ > 0)); });
        if (queue_.empty()) return;  // stopping, and every requested round is done
        std::swap(jobs, queue_);
        waiting_now_ = 0;
        sync_->go = false;
      }
      finish_round(jobs, unless_failed([&] { write_round(jobs); }));
    }
  }

  /// Writes every job's records (one pwrite per segment touched), syncs once, deletes the
  /// snapshot directories of groups removed in this round, then the segments no longer needed
  /// (before the round's flushes complete: a caller that saw its compaction durable sees the
  /// files gone).
  void write_round(std::vector<job>& jobs) {
    for (job& j : jobs) {
      for (std::size_t at = 0; at < j.bytes.size();) {
        const std::byte* p = j.bytes.data() + at;
        const detail::shared_format::record_view r{p, detail::load_u32(p)};
        place(*j.group, r);
        at += r.size();
      }
    }
    write_out();
    if (tail_dirty_) {
      sync_fd(tail_fd_.get(), true, segment_path(segments_.back().seq));
      tail_dirty_ = false;
      std::lock_guard lock(mutex_);
      if (opts_.fsync) ++stats_.syncs;
    }
    for (const std::uint64_t id : removed_this_round_) remove_snapshot_directory(id);
    removed_this_round_.clear();
    reclaim();
  }

  /// Adds one record to the round, in the tail segment (starting a new one if it is full), and
  /// notes what it changes.
  void place(group_state& g, const detail::shared_format::record_view& r) {
    namespace sf = detail::shared_format;
    if (segments_.back().records > 0 && segments_.back().size + r.size() > opts_.segment_bytes)
      start_segment(segments_.back().seq + 1);
    segment& tail = segments_.back();
    if (round_.empty()) {  // every write to the tail starts with a round record
      sf::put_record(round_, 0, record_type::round, {next_round()});
      tail.size += round_.size();
    }
    const std::uint64_t begin = tail.size;
    round_.insert(round_.end(), r.p, r.p + r.size());
    tail.size += r.size();
    ++tail.records;
    ++round_records_;
    switch (r.type()) {
      case record_type::hard_state: g.hs = hard_state{term_t{r.field(0)}, node_id{r.field(1)}}; break;
      case record_type::entry: {
        const index_t i{r.field(1)};
        if (i != g.last.next())
          throw std::logic_error("raft::shared_log: group " + std::to_string(g.id) + " appends entry " +
                                 std::to_string(i.value) + " after " + std::to_string(g.last.value));
        note_entry(g, i, tail.seq, begin, tail.size);
        ++round_entries_;
        break;
      }
      case record_type::truncate: note_truncate(g, index_t{r.field(0)}); break;
      case record_type::compact: note_compact(g, index_t{r.field(0)}, term_t{r.field(1)}); break;
      case record_type::remove:
        note_remove(g);
        removed_this_round_.push_back(g.id);
        break;
      case record_type::checkpoint:
      case record_type::round: break;  // never in a job
    }
  }

  /// The number of the next round record. Never the largest there is: recovery refuses that one,
  /// so numbers never wrap (unreachable at any real rate; a damaged or crafted record can).
  std::uint64_t next_round() {
    if (last_round_ + 1 == detail::shared_format::last_round_number) throw used_up("round");
    return ++last_round_;
  }

  /// The failure of a log whose segment or round numbers ran out (never, at any real rate).
  [[nodiscard]] std::system_error used_up(const char* what) const {
    return std::system_error(std::make_error_code(std::errc::value_too_large),
                             std::string("raft::shared_log: ") + what + " numbers are used up in " + dir_.string());
  }

  /// Writes the round buffer to the tail segment (one pwrite). Past the zeros written ahead, it
  /// then writes `prefill_bytes` more zeros after the round, synced with it: the rounds that
  /// follow then overwrite a file whose size does not change, and their fdatasync need not
  /// commit the file system's journal.
  void write_out() {
    if (round_.empty()) return;
    const segment& tail = segments_.back();
    const std::uint64_t offset = tail.size - round_.size();
    const auto path = segment_path(tail.seq);
    detail::write_all(tail_fd_.get(), round_.data(), round_.size(), offset, path);
    // Zeros ahead, never past segment_bytes (where the segment will be closed and trimmed), and
    // only where syncs are made: without them they only cost.
    std::uint64_t zeros = 0;
    const std::uint64_t ahead =
        opts_.fsync && tail.size > tail_filled_ && tail.size < opts_.segment_bytes
            ? std::min<std::uint64_t>(opts_.prefill_bytes, opts_.segment_bytes - tail.size)
            : 0;
    if (ahead > 0 && zeros_.empty()) zeros_.resize(std::size_t{1} << 16);
    while (zeros < ahead) {
      const auto n = std::min<std::uint64_t>(zeros_.size(), ahead - zeros);
      detail::write_all(tail_fd_.get(), zeros_.data(), std::size_t(n), tail.size + zeros, path);
      zeros += n;
    }
    tail_filled_ = std::max(tail_filled_, tail.size + zeros);
    tail_dirty_ = true;
    std::lock_guard lock(mutex_);
    ++stats_.write_calls;
    stats_.bytes_written += round_.size();
    stats_.zeros_written += zeros;
    stats_.records_written += round_records_;
    stats_.entries_written += round_entries_;
    round_.clear();
    round_records_ = round_entries_ = 0;
  }

  /// Closes the tail (its records written and synced) and starts segment `seq`: created under a
  /// temporary name with its header, a checkpoint of every group and a round record, synced,
  /// renamed, the directory synced. So a segment file always has a whole header and checkpoint,
  /// and a torn record can only be in the last segment, after its first round record.
  void start_segment(std::uint64_t seq) {
    namespace sf = detail::shared_format;
    if (seq == sf::last_segment_number) throw used_up("segment");  // refused, never wrapped
    if (!segments_.empty()) {
      write_out();
      const auto closing = segment_path(segments_.back().seq);
      if (tail_filled_ > segments_.back().size) {  // a closed segment ends at its last record
        if (::ftruncate(tail_fd_.get(), off_t(segments_.back().size)) != 0)
          throw detail::posix_error(errno, "ftruncate", closing);
        tail_dirty_ = true;
      }
      if (tail_dirty_) {
        sync_fd(tail_fd_.get(), true, closing);
        std::lock_guard lock(mutex_);
        if (opts_.fsync) ++stats_.syncs;
      }
    }
    tail_fd_.reset();
    tail_dirty_ = false;
    // Held until the copies' spans are noted: a handle's load() reads spans and segments too.
    std::unique_lock relocating(relocation_mutex_, std::defer_lock);
    std::vector<group_state*> moved;
    std::vector<std::vector<log_entry>> copies;
    if (opts_.relocate_bytes > 0 && segments_.size() >= 2) {
      relocating.lock();
      moved = groups_to_relocate();
      copies = read_entries(std::span<const group_state* const>(moved.data(), moved.size()));
    }
    std::vector<std::byte> bytes;
    const auto header = sf::encode_segment_header(seq);
    bytes.insert(bytes.end(), header.begin(), header.end());
    std::size_t records = 0;
    {
      std::vector<const group_state*> moved_sorted(moved.begin(), moved.end());
      std::sort(moved_sorted.begin(), moved_sorted.end(), std::less<>{});
      std::lock_guard lock(mutex_);  // groups_ may gain members from open_group meanwhile
      for (const auto& [id, g] : groups_) {
        if (g.empty()) continue;
        // A moved group's checkpoint ends its log at its base; the copies below follow it.
        const bool is_moved = std::binary_search(moved_sorted.begin(), moved_sorted.end(), &g, std::less<>{});
        sf::put_record(bytes, id, record_type::checkpoint,
                       {g.hs.term.value, g.hs.voted_for.value, g.base.value, g.base_term.value,
                        (is_moved ? g.base : g.last).value});
        ++records;
      }
    }
    // The copies, in the checkpoint (before its round record): synced before the segment gets
    // its name, so a crash leaves either all of them or the segment not there at all.
    std::vector<std::vector<std::pair<std::uint64_t, std::uint64_t>>> placed(moved.size());  // begin, end
    std::uint64_t relocated = 0;
    for (std::size_t k = 0; k < moved.size(); ++k)
      for (const log_entry& e : copies[k]) {
        const std::uint64_t begin = bytes.size();
        sf::put_entry(bytes, moved[k]->id, e);
        placed[k].emplace_back(begin, bytes.size());
        ++records;
        ++relocated;
      }
    // The checkpoint ends with a round record, synced with it: recovery cuts a torn round only
    // after it, and never drops the checkpoint.
    sf::put_record(bytes, 0, record_type::round, {next_round()});
    const auto path = segment_path(seq);
    auto tmp = path;
    tmp += ".tmp";
    detail::unique_fd fd = detail::open_file(tmp, O_RDWR | O_CREAT | O_TRUNC);
    detail::write_all(fd.get(), bytes.data(), bytes.size(), 0, tmp);
    sync_fd(fd.get(), false, tmp);
    if (::rename(tmp.c_str(), path.c_str()) != 0) throw detail::posix_error(errno, "rename", tmp);
    sync_fd(dir_fd_.get(), false, dir_);
    segments_.push_back(segment{seq, bytes.size(), 0, 0});
    tail_fd_ = std::move(fd);
    tail_filled_ = bytes.size();
    for (std::size_t k = 0; k < moved.size(); ++k) {  // the groups' live entries are the copies now
      group_state& g = *moved[k];
      const index_t last = g.last;
      note_truncate(g, g.base);
      for (std::size_t n = 0; n < placed[k].size(); ++n)
        note_entry(g, copies[k][n].index, seq, placed[k][n].first, placed[k][n].second);
      assert(g.last == last);
    }
    std::lock_guard lock(mutex_);
    stats_.entries_relocated += relocated;
    stats_.groups_relocated += moved.size();
    ++stats_.segments_created;
    ++stats_.write_calls;
    stats_.bytes_written += bytes.size();
    stats_.records_written += records;
  }

  /// The groups whose live entries start in the oldest segments (not the tail, which is being
  /// closed), taken a segment at a time from the oldest, while the entries of all of them fit in
  /// the relocation budget. Copying only some of a segment's groups would not free it.
  std::vector<group_state*> groups_to_relocate() {
    std::vector<std::pair<std::uint64_t, group_state*>> by_segment;  // first live segment, group
    {
      std::lock_guard lock(mutex_);
      for (auto& [id, g] : groups_)
        if (!g.spans.empty() && !g.removing && g.spans.front().segment < segments_.back().seq)
          by_segment.emplace_back(g.spans.front().segment, &g);
    }
    std::sort(by_segment.begin(), by_segment.end(),
              [](const auto& a, const auto& b) { return a.first < b.first || (a.first == b.first && a.second->id < b.second->id); });
    std::uint64_t budget = std::min<std::uint64_t>(opts_.relocate_bytes, opts_.segment_bytes / 4);
    std::vector<group_state*> out;
    for (auto first = by_segment.begin(); first != by_segment.end();) {
      const std::uint64_t seq = first->first;
      auto last = std::find_if(first, by_segment.end(), [seq](const auto& x) { return x.first != seq; });
      std::uint64_t bytes = 0;
      for (auto x = first; x != last; ++x)
        for (const auto& s : x->second->spans) bytes += s.bytes;
      if (bytes > budget) break;
      budget -= bytes;
      for (auto x = first; x != last; ++x) out.push_back(x->second);
      first = last;
    }
    return out;
  }

  /// Deletes the oldest segments while no live entry is in them (their hard states and bases are
  /// in the next segment's checkpoint). Oldest first, so what is left is always a suffix.
  void reclaim() {
    std::size_t removed = 0;
    while (segments_.size() > 1 && segments_.front().live_spans == 0) {
      const auto path = segment_path(segments_.front().seq);
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw detail::posix_error(errno, "unlink", path);
      segments_.pop_front();
      ++removed;
    }
    if (removed == 0) return;
    sync_fd(dir_fd_.get(), false, dir_);
    std::lock_guard lock(mutex_);
    stats_.segments_removed += removed;
  }

  /// Completes the round's jobs (in order) and keeps their buffers for reuse.
  void finish_round(std::vector<job>& jobs, const std::exception_ptr& error) {
    {
      std::lock_guard lock(mutex_);
      ++stats_.write_rounds;
      for (job& j : jobs) {
        --j.group->in_flight;
        j.bytes.clear();
        if (spare_.size() < max_spare_buffers && j.bytes.capacity() <= max_spare_bytes)
          spare_.push_back(std::move(j.bytes));
      }
    }
    // One post per executor for the round's completions, however many groups it flushed.
    std::vector<std::pair<asio::any_io_executor, detail::handler_batch<std::exception_ptr>>> batches;
    for (job& j : jobs) {
      if (!j.executor) {
        j.done(error);
        continue;
      }
      auto b = std::find_if(batches.begin(), batches.end(), [&](const auto& c) { return c.first == j.executor; });
      if (b == batches.end()) {
        batches.emplace_back(j.executor, detail::handler_batch<std::exception_ptr>{});
        b = std::prev(batches.end());
      }
      b->second.push_back(std::move(j.done));
    }
    for (auto& [executor, batch] : batches) batch.post(executor, error);
    // Only now, each completion posted, does the jobs' outstanding work go (on this thread):
    // the executor's run() cannot return before the writer is done with its context.
    jobs.clear();
  }

  // ---- snapshots ---------------------------------------------------------------------------------

  /// Creates group `group`'s snapshot directory if missing (durably: the parent is synced).
  std::filesystem::path make_snapshot_directory(std::uint64_t group) {
    const auto d = snapshot_directory(group);
    std::error_code ec;
    if (std::filesystem::create_directory(d, ec)) sync_fd(snapshots_fd_.get(), false, dir_ / "snapshots");
    if (ec) throw std::system_error(ec, "raft::shared_log: cannot create directory " + d.string());
    return d;
  }

  /// The newest snapshot of `group` (checked whole), deleting older ones; null if none. A
  /// damaged newest snapshot is refused, as file_storage does.
  std::shared_ptr<const detail::snapshot_file> load_snapshot(std::uint64_t group, index_t base) {
    namespace ff = detail::file_format;
    const auto d = snapshot_directory(group);
    std::error_code ec;
    if (!std::filesystem::exists(d, ec)) return nullptr;
    std::vector<std::pair<index_t, std::filesystem::path>> files;
    for (const auto& de : std::filesystem::directory_iterator(d)) {
      const std::string name = de.path().filename().string();
      if (name.ends_with(".tmp")) {
        std::filesystem::remove(de.path(), ec);  // a commit that did not finish
        continue;
      }
      if (auto i = ff::parse_file_name(ff::indexed_file::snapshot, name)) files.emplace_back(*i, de.path());
    }
    if (files.empty()) return nullptr;
    std::sort(files.begin(), files.end());
    auto newest = detail::read_snapshot_file(files.back().second, files.back().first);
    if (newest->meta.index < base)
      throw file_storage_corruption(newest->path, 0,
                                    "group " + std::to_string(group) + " is compacted through index " +
                                        std::to_string(base.value) + ", but its newest snapshot covers only " +
                                        std::to_string(newest->meta.index.value) + ": a newer snapshot is missing");
    files.pop_back();
    for (const auto& f : files) std::filesystem::remove(f.second, ec);
    return newest;
  }

  /// On the snapshot thread: sync the temporary file, rename it into place, sync the group's
  /// directory, delete the group's other snapshot files, sync again. Completes on the handler's
  /// associated executor with an exception_ptr (null on success).
  template <class CompletionToken>
  auto async_commit_snapshot(std::shared_ptr<const detail::snapshot_file> file, std::filesystem::path tmp,
                             CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::exception_ptr)>(
        [this, file = std::move(file), tmp = std::move(tmp)](auto handler) mutable {
          auto ex = asio::get_associated_executor(handler);
          auto work = asio::prefer(ex, asio::execution::outstanding_work.tracked);
          detail::unique_function<void(std::exception_ptr)> done =
              [h = std::move(handler), work = std::move(work)](std::exception_ptr e) mutable {
                asio::post(work, [h = std::move(h), e = std::move(e)]() mutable { h(std::move(e)); });
              };
          snapshot_thread_.post([this, file = std::move(file), tmp = std::move(tmp), done = std::move(done)]() mutable {
            done(unless_failed([&] { install_snapshot_file(*file, tmp); }));
          });
        },
        token);
  }

  void install_snapshot_file(const detail::snapshot_file& file, const std::filesystem::path& tmp) {
    const auto d = file.path.parent_path();
    detail::unique_fd dfd;  // opened by the first directory sync, so only once the rename is done
    detail::install_snapshot_file(
        file, tmp, d, [this](int fd, const std::filesystem::path& what) { sync_fd(fd, false, what); },
        [&] {
          if (!dfd) dfd = detail::open_file(d, O_RDONLY | O_DIRECTORY);
          sync_fd(dfd.get(), false, d);
        });
  }

  static constexpr std::size_t max_spare_buffers = 64;
  static constexpr std::size_t max_spare_bytes = std::size_t{4} << 20;

  const std::filesystem::path dir_;
  const shared_log_options opts_;
  detail::unique_fd lock_fd_;
  detail::unique_fd dir_fd_;
  detail::unique_fd snapshots_fd_;

  /// What a writer_kick touches, shared with it: a kick may run after the log is gone.
  struct writer_sync {
    std::mutex mutex;
    std::condition_variable wake;
    std::vector<asio::any_io_executor> kicked;  ///< executors with a writer_kick posted and not run
    bool go = false;                            ///< a writer_kick ran since the last round began
  };

  /// Wakes the writer for the jobs queued meanwhile, at the end of the turn of the executor that
  /// queued the first of them (posted there), so that the groups one event reaches flush in one
  /// round. Destroyed unrun (its executor shut down), it wakes the writer too: no job waits on a
  /// kick that never comes. A thread that blocks its executor on a job of another (a nested
  /// io_context) is not stuck either: that executor's own kick wakes the writer.
  class writer_kick {
   public:
    writer_kick(std::shared_ptr<writer_sync> sync, asio::any_io_executor on) noexcept
        : sync_(std::move(sync)), on_(std::move(on)) {}
    writer_kick(writer_kick&&) noexcept = default;
    writer_kick& operator=(writer_kick&&) = delete;
    ~writer_kick() { kick(); }
    void operator()() { kick(); }

   private:
    void kick() {
      if (!sync_) return;
      {
        std::lock_guard lock(sync_->mutex);
        std::erase(sync_->kicked, on_);
        sync_->go = true;
      }
      sync_->wake.notify_one();
      sync_.reset();
    }
    std::shared_ptr<writer_sync> sync_;
    asio::any_io_executor on_;
  };

  // Guarded by mutex_ (the groups' `open`, `removing` and `in_flight` too).
  std::shared_ptr<writer_sync> sync_ = std::make_shared<writer_sync>();
  std::mutex& mutex_ = sync_->mutex;
  std::mutex relocation_mutex_;  ///< the writer copying groups' entries (start_segment) against load()
  std::condition_variable& wake_ = sync_->wake;
  std::unordered_map<std::uint64_t, group_state> groups_;
  std::vector<job> queue_;
  std::size_t waiting_now_ = 0;  ///< jobs in queue_ that a blocked thread waits for
  std::vector<std::vector<std::byte>> spare_;
  bool stop_ = false;
  std::exception_ptr failure_;
  std::atomic<bool> failed_{false};
  shared_log_stats stats_;

  // The writer thread's (and recovery's, before it starts).
  std::deque<segment> segments_;
  detail::unique_fd tail_fd_;
  std::uint64_t tail_filled_ = 0;  ///< bytes in the tail's file: its records, then zeros written ahead
  bool tail_dirty_ = false;
  std::uint64_t last_round_ = 0;  ///< the number of the last round record read or written
  std::vector<std::byte> zeros_;  ///< what write_out() writes ahead of the tail
  std::vector<std::byte> round_;  ///< records of this round not yet written to the tail
  std::uint64_t round_records_ = 0;
  std::uint64_t round_entries_ = 0;
  std::vector<std::uint64_t> removed_this_round_;

  detail::task_thread snapshot_thread_;  ///< syncs and renames snapshot files
  std::thread writer_;                   // last: starts after everything above is constructed
};

/// One group's storage in a shared_log: a raft::storage and raft::snapshot_storage, usable as
/// the Storage of raft::node. Movable; its shared_log must outlive it. Used from one thread (or
/// executor) at a time. Destroying it loses the changes not flushed, as a crash would.
class shared_log_group {
  friend class shared_log;

 public:
  shared_log_group(shared_log_group&& o) noexcept
      : log_(std::exchange(o.log_, nullptr)),
        g_(std::exchange(o.g_, nullptr)),
        loaded_(o.loaded_),
        last_index_(o.last_index_),
        base_index_(o.base_index_),
        pending_(std::move(o.pending_)),
        run_begin_(o.run_begin_),
        run_first_(o.run_first_) {}
  shared_log_group& operator=(shared_log_group&& o) noexcept {
    if (this != &o) {
      close();
      log_ = std::exchange(o.log_, nullptr);
      g_ = std::exchange(o.g_, nullptr);
      loaded_ = o.loaded_;
      last_index_ = o.last_index_;
      base_index_ = o.base_index_;
      pending_ = std::move(o.pending_);
      run_begin_ = o.run_begin_;
      run_first_ = o.run_first_;
    }
    return *this;
  }
  shared_log_group(const shared_log_group&) = delete;
  shared_log_group& operator=(const shared_log_group&) = delete;
  ~shared_log_group() { close(); }

  [[nodiscard]] std::uint64_t id() const { return state().id; }

  // ---- raft::storage ---------------------------------------------------------------------------

  /// The group's hard state, compaction base and entries, and its current snapshot (for
  /// open_snapshot()). Drops changes not flushed. Call before any other log call; it may be
  /// called again while no flush or snapshot writer of the group is pending.
  persistent_state load() {
    auto& g = state();
    log_->throw_if_failed();
    {
      std::lock_guard lock(log_->mutex_);
      if (g.in_flight != 0) throw std::logic_error("raft::shared_log_group::load called during a flush");
    }
    if (g.writers != 0) throw std::logic_error("raft::shared_log_group::load called while a snapshot writer is open");
    pending_.clear();
    run_first_ = index_t{0};
    persistent_state ps{};
    {
      const std::lock_guard relocating(log_->relocation_mutex_);  // the writer moves no span meanwhile
      ps.state = g.hs;
      ps.base_index = g.base;
      ps.base_term = g.base_term;
      if (g.has_recovered) {
        ps.entries = std::move(g.recovered);
        g.recovered = {};
        g.has_recovered = false;
      } else {
        ps.entries = log_->read_entries(g);
      }
    }
    g.snapshot = log_->load_snapshot(g.id, g.base);
    base_index_ = g.base;
    last_index_ = g.last;
    loaded_ = true;
    return ps;
  }

  /// Stores term and vote; durable when it returns (waits for the writer's next round).
  void save_hard_state(const hard_state& hs) {
    auto& g = state();
    log_->throw_if_failed();
    std::vector<std::byte> rec;
    detail::shared_format::put_record(rec, g.id, detail::shared_format::record_type::hard_state,
                                      {hs.term.value, hs.voted_for.value});
    log_->submit_and_wait(&g, std::move(rec));
  }

  /// Queues term and vote, in order with the other changes: durable after the next flush(), with
  /// them. raft::node uses this instead of save_hard_state() (which waits for a round of the
  /// writer, blocking every group on the caller's thread) and holds every message it sends
  /// after the change until that flush completes.
  void stage_hard_state(const hard_state& hs) {
    auto& g = state();
    log_->throw_if_failed();
    if (pending_.capacity() == 0) pending_ = log_->spare_buffer();
    run_first_ = index_t{0};  // entries after it start a new run
    detail::shared_format::put_record(pending_, g.id, detail::shared_format::record_type::hard_state,
                                      {hs.term.value, hs.voted_for.value});
  }

  /// Queues entries (encoded now into the pending buffer); durable after the next flush().
  /// `entries` must continue the log (std::invalid_argument otherwise).
  void append(std::span<const log_entry> entries) {
    auto& g = state();
    log_->throw_if_failed();
    require_loaded();
    if (pending_.capacity() == 0) pending_ = log_->spare_buffer();
    for (const log_entry& e : entries) {
      if (e.index != last_index_.next())
        throw std::invalid_argument("raft::shared_log_group::append: entry " + std::to_string(e.index.value) +
                                    " does not follow the last entry " + std::to_string(last_index_.value));
      if (e.data.size() > detail::shared_format::max_payload)
        throw std::invalid_argument("raft::shared_log_group::append: entry payload too large");
      if (run_first_ == index_t{0}) {
        run_begin_ = pending_.size();
        run_first_ = e.index;
      }
      detail::shared_format::put_entry(pending_, g.id, e);
      last_index_ = e.index;
    }
  }

  /// Queues the removal of every entry after `index`, in order with the other changes. Entries
  /// still pending are just dropped. An index at or past the last entry removes nothing.
  void truncate_after(index_t index) {
    auto& g = state();
    log_->throw_if_failed();
    require_loaded();
    if (index >= last_index_) return;
    if (index < base_index_)
      throw std::invalid_argument("raft::shared_log_group::truncate_after: index " + std::to_string(index.value) +
                                  " is below the compaction base " + std::to_string(base_index_.value));
    if (run_first_ != index_t{0} && index.next() >= run_first_) {
      cut_pending_run(index.next() - run_first_);
    } else {
      if (run_first_ != index_t{0}) pending_.resize(run_begin_);  // every pending entry goes
      run_first_ = index_t{0};
      detail::shared_format::put_record(pending_, g.id, detail::shared_format::record_type::truncate, {index.value});
    }
    last_index_ = index;
  }

  /// flush() for any Asio completion token; the handler gets a std::exception_ptr (null on
  /// success) and runs on its associated executor.
  template <class CompletionToken>
  auto async_flush(CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::exception_ptr)>(
        [this](auto handler) {
          auto bytes = std::exchange(pending_, {});
          run_first_ = index_t{0};
          pending_ = log_->submit_async(&state(), std::move(bytes), std::move(handler));
        },
        token);
  }

  /// Makes every change requested before the call durable; completes on the awaiting
  /// coroutine's executor. Throws std::system_error if a write or sync failed (then and on
  /// every later call, of every group of the log).
  asio::awaitable<void> flush() {
    auto& g = state();
    log_->throw_if_failed();
    require_loaded();
    if (pending_.empty()) {
      std::lock_guard lock(log_->mutex_);
      if (g.in_flight == 0) co_return;  // nothing to make durable
    }
    co_await async_flush(asio::use_awaitable);
  }

  // ---- raft::snapshot_storage ------------------------------------------------------------------

  /// Queues compaction through `index` (whose entry has term `term`); durable after the next
  /// flush(). An index at or past the last entry empties the log; at or below the base, nothing.
  void compact_through(index_t index, term_t term) {
    auto& g = state();
    log_->throw_if_failed();
    require_loaded();
    if (index <= base_index_) return;
    run_first_ = index_t{0};
    detail::shared_format::put_record(pending_, g.id, detail::shared_format::record_type::compact,
                                      {index.value, term.value});
    last_index_ = std::max(last_index_, index);
    base_index_ = index;
  }

  /// Starts a snapshot of this group, written to `snapshots/<group>/snapshot-<index>.snap.tmp`.
  /// The rules of file_storage::create_snapshot apply (one writer at a time, no index below the
  /// current snapshot's, valid metadata).
  [[nodiscard]] shared_log_snapshot_writer create_snapshot(const snapshot_meta& meta) {
    auto& g = state();
    log_->throw_if_failed();
    require_loaded();
    if (g.writers != 0)
      throw std::logic_error("raft::shared_log_group::create_snapshot: another snapshot writer is open");
    if (g.snapshot && meta.index < g.snapshot->meta.index)
      throw std::invalid_argument("raft::shared_log_group::create_snapshot: index " + std::to_string(meta.index.value) +
                                  " is below the current snapshot's " + std::to_string(g.snapshot->meta.index.value));
    const buffer encoded = encode(meta);
    if (decode_snapshot_meta(encoded.bytes()) != meta)
      throw std::invalid_argument("raft::shared_log_group::create_snapshot: invalid snapshot metadata");
    namespace ff = detail::file_format;
    detail::unique_fd fd;
    std::filesystem::path final_path, tmp;
    try {
      final_path = log_->make_snapshot_directory(g.id) / ff::file_name(ff::indexed_file::snapshot, meta.index);
      tmp = final_path;
      tmp += ".tmp";
      fd = detail::open_file(tmp, O_RDWR | O_CREAT | O_TRUNC);
    } catch (...) {
      log_->record_failure(std::current_exception());
      throw;
    }
    return shared_log_snapshot_writer(log_, &g, std::move(tmp), std::move(final_path), std::move(fd), meta,
                                      encoded.bytes());
  }

  /// The current snapshot; std::nullopt if there is none.
  [[nodiscard]] std::optional<shared_log_snapshot_reader> open_snapshot() const {
    require_loaded();
    if (!state().snapshot) return std::nullopt;
    return shared_log_snapshot_reader(state().snapshot);
  }

  /// The last entry held, counting changes not yet flushed (base index when empty).
  [[nodiscard]] index_t last_index() const noexcept { return last_index_; }

 private:
  shared_log_group(shared_log* log, detail::shared_log_group_state* g) : log_(log), g_(g) {}

  detail::shared_log_group_state& state() const {
    if (g_ == nullptr) throw std::logic_error("raft::shared_log_group: use of a moved-from handle");
    return *g_;
  }

  void require_loaded() const {
    if (!loaded_) throw std::logic_error("raft::shared_log_group: call load() first");
  }

  /// Keeps the first `keep` entries of the pending run (the entries appended since the last
  /// other record), dropping their encoded records after those.
  void cut_pending_run(std::size_t keep) {
    std::size_t at = run_begin_;
    for (std::size_t k = 0; k < keep; ++k) at += detail::shared_format::record_header_bytes + detail::load_u32(pending_.data() + at);
    pending_.resize(at);
    if (keep == 0) run_first_ = index_t{0};
  }

  void close() noexcept {
    if (g_ == nullptr) return;
    std::lock_guard lock(log_->mutex_);
    g_->open = false;
    g_ = nullptr;
    log_ = nullptr;
  }

  shared_log* log_ = nullptr;
  detail::shared_log_group_state* g_ = nullptr;
  bool loaded_ = false;
  index_t last_index_{0};
  index_t base_index_{0};
  std::vector<std::byte> pending_;  ///< encoded records not yet handed to the writer
  std::size_t run_begin_ = 0;       ///< where the trailing run of entry records starts in pending_
  index_t run_first_{0};            ///< its first index; 0 when there is no such run
};

static_assert(snapshot_storage<shared_log_group>);
static_assert(std::movable<shared_log_group>);

inline shared_log_group shared_log::open_group(group_id group_number) {
  const std::uint64_t group = group_number.value;
  throw_if_failed();
  std::lock_guard lock(mutex_);
  group_state& g = groups_.try_emplace(group, group).first->second;
  if (g.open) throw std::logic_error("raft::shared_log::open_group: group " + std::to_string(group) + " is already open");
  if (g.removing)
    throw std::logic_error("raft::shared_log::open_group: group " + std::to_string(group) + " is being removed");
  g.open = true;
  return shared_log_group(this, &g);
}

inline auto shared_log_snapshot_writer::fail_log() const {
  return [log = log_](std::exception_ptr e) { log->record_failure(std::move(e)); };
}

inline void shared_log_snapshot_writer::write(std::span<const std::byte> bytes) {
  require_open("write");
  log_->throw_if_failed();
  file_.write(bytes, fail_log());
}

inline asio::awaitable<void> shared_log_snapshot_writer::commit() {
  require_open("commit");
  log_->throw_if_failed();
  std::shared_ptr<const detail::snapshot_file> file = file_.finish(fail_log());
  co_await log_->async_commit_snapshot(file, file_.temporary_path(), asio::use_awaitable);
  // Durable and in place: the group's current snapshot now.
  group_->snapshot = std::move(file);
  file_.committed();
  release();
}

}  // namespace v1
}  // namespace raft
