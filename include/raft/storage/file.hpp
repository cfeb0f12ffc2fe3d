// raft/storage/file.hpp - raft::file_storage, a durable storage in a directory of files.
//
// Layout (docs/storage.md has the byte tables):
//   LOCK                      held with flock(LOCK_EX) while a file_storage has the directory open
//   hard_state                term and vote; replaced atomically (temp file, fsync, rename, fsync dir)
//   base                      compaction base index and term; replaced the same way
//   log-<first index>.seg     log segments: a header, then records (length, CRC-32C, entry)
//   snapshot-<index>.snap     the current snapshot: header, metadata, bytes, size, CRC-32C
//
// Snapshots (raft::snapshot_storage): create_snapshot() returns a file_snapshot_writer that
// writes `snapshot-<index>.snap.tmp`; its commit() syncs that file, renames it into place and
// syncs the directory on the storage's snapshot thread (never blocking the caller's executor),
// then deletes older snapshots. open_snapshot() returns a file_snapshot_reader holding the file
// open (pread), valid after a newer snapshot replaced it. load() checks the newest snapshot's
// CRC and refuses a damaged one with file_storage_corruption.
//
// save_hard_state() is synchronous and durable on return. append(), truncate_after() and
// compact_through() queue work in memory (appends are encoded straight into a reusable buffer);
// `co_await flush()` hands everything queued so far to the storage's writer thread, which writes
// it (one write() per segment touched) and fdatasyncs once for the whole group, then resumes the
// awaiting coroutine on that coroutine's own executor. A write or sync error is fatal: flush()
// throws std::system_error, and every later call throws it again (fail-stop, never retried).
//
// load() reads every segment. A torn record at the end of the last segment (a crash in the middle
// of a write: a partial record, or a checksum mismatch with no valid record after it) is cut off;
// a bad record anywhere else is refused with raft::file_storage_corruption naming file and offset.
//
// Needs only the standard library, Asio and POSIX. The format constants, the POSIX helpers and
// the snapshot-file checks are in raft/storage/detail/files.hpp (shared with raft::shared_log).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raft/detail/asio_check.hpp"

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/use_awaitable.hpp>

#include "raft/core/persistent_state.hpp"
#include "raft/core/snapshot.hpp"
#include "raft/detail/endian.hpp"
#include "raft/detail/unique_function.hpp"
#include "raft/storage/detail/crc32c.hpp"
#include "raft/storage/detail/files.hpp"

namespace raft {
inline namespace v1 {

/// Settings of a file_storage.
struct file_storage_options {
  /// Sync written data (fdatasync/fsync, and fsync of the directory after creating, renaming or
  /// removing files). Turn off only for benchmarks and tests: without it nothing is durable
  /// across a power cut (it still is across a process crash: the data is in the page cache).
  bool fsync = true;
  /// A segment is closed and a new one started once it holds this many bytes. A segment holds
  /// at least one record, so a single larger entry makes a larger segment.
  std::size_t segment_bytes = std::size_t{64} << 20;
  /// Test hook: when set (and `fsync` is on), called instead of every fdatasync/fsync with the
  /// file descriptor to sync. Return 0 for success, or -1 with errno set to simulate a failure.
  /// Runs on the writer thread for log syncs, on the snapshot thread for snapshot syncs, and on
  /// the caller's thread for hard-state syncs (and load()'s repairs).
  std::function<int(int fd)> sync_hook;
};

/// What a file_storage did so far (for benchmarks and tests).
struct file_storage_stats {
  std::uint64_t flushes = 0;          ///< flush() calls handed to the writer thread
  std::uint64_t write_rounds = 0;     ///< group commits: rounds of the writer thread that wrote
  std::uint64_t syncs = 0;            ///< fdatasync calls on log segments (0 with fsync off)
  std::uint64_t write_calls = 0;      ///< write()/pwrite() calls on log segments
  std::uint64_t entries_written = 0;  ///< log records written
  std::uint64_t bytes_written = 0;    ///< log bytes written
};

class file_storage;

/// A committed file_storage snapshot (raft::snapshot_reader): holds the snapshot file open, so
/// it stays valid after a newer snapshot replaced (and deleted) that file, and after the storage
/// is destroyed. Cheap to copy; read_at() may be called from any thread, concurrently.
class file_snapshot_reader {
 public:
  [[nodiscard]] const snapshot_meta& meta() const noexcept { return f_->meta; }
  [[nodiscard]] std::uint64_t size() const noexcept { return f_->data_size; }
  /// Copies up to `buf.size()` bytes of the snapshot from `offset`; returns how many (fewer only
  /// at the end, 0 at or past it). Throws std::system_error on a read error, and
  /// file_storage_corruption if the file has become shorter than its snapshot.
  std::size_t read_at(std::uint64_t offset, std::span<std::byte> buf) const {
    return detail::read_snapshot_data(*f_, offset, buf);
  }
  /// The file it reads (it may have been deleted since).
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return f_->path; }

 private:
  friend class file_storage;
  explicit file_snapshot_reader(std::shared_ptr<const detail::snapshot_file> f) : f_(std::move(f)) {}
  std::shared_ptr<const detail::snapshot_file> f_;
};

/// A snapshot being written by a file_storage (raft::snapshot_writer). write() checksums the
/// bytes and writes them to `snapshot-N.snap.tmp` in 1 MiB pieces (page-cache writes on the
/// caller's thread, no sync); co_await commit() syncs the file, renames it into place and syncs
/// the directory on the storage's snapshot thread, then deletes older snapshots. Destroyed
/// without commit(), it removes its temporary file. Its storage must outlive it.
class file_snapshot_writer {
 public:
  file_snapshot_writer(file_snapshot_writer&& o) noexcept
      : storage_(std::exchange(o.storage_, nullptr)), token_(std::move(o.token_)), file_(std::move(o.file_)) {}
  file_snapshot_writer& operator=(file_snapshot_writer&& o) noexcept {
    if (this != &o) {
      file_ = std::move(o.file_);  // removes this writer's temporary file first
      storage_ = std::exchange(o.storage_, nullptr);
      token_ = std::move(o.token_);
    }
    return *this;
  }
  file_snapshot_writer(const file_snapshot_writer&) = delete;
  file_snapshot_writer& operator=(const file_snapshot_writer&) = delete;
  ~file_snapshot_writer() { file_.abandon(); }

  /// Appends `bytes` to the snapshot. I/O errors are fatal for the storage (as in flush()).
  void write(std::span<const std::byte> bytes);

  /// Makes the snapshot durable and the storage's current one; completes on the awaiting
  /// coroutine's executor. Throws std::system_error if a write, sync or rename failed (then the
  /// storage has failed: every later call throws too).
  asio::awaitable<void> commit();

  /// Snapshot bytes written so far.
  [[nodiscard]] std::uint64_t size() const noexcept { return file_.size(); }

 private:
  friend class file_storage;
  file_snapshot_writer(file_storage* s, std::shared_ptr<int> token, std::filesystem::path tmp,
                       std::filesystem::path final_path, detail::unique_fd fd, snapshot_meta meta,
                       std::span<const std::byte> encoded_meta)
      : storage_(s),
        token_(std::move(token)),
        file_(std::move(tmp), std::move(final_path), std::move(fd), std::move(meta), encoded_meta) {}

  void require_open(const char* what) const {
    if (!file_.is_open() || storage_ == nullptr)
      throw std::logic_error(std::string("raft::file_snapshot_writer::") + what +
                             " after commit (or on a moved-from writer)");
  }
  /// What the snapshot file does with a write error: it is fatal for the storage.
  [[nodiscard]] auto fail_storage() const;

  file_storage* storage_ = nullptr;
  std::shared_ptr<int> token_;  ///< tells the storage a writer is open
  detail::snapshot_file_writer file_;
};

/// A durable raft::storage in a directory. See the top of this file and docs/storage.md.
///
/// Thread use: every member except the destructor is called from one thread (or executor) at a
/// time, as the node does. The storage owns one writer thread that does the log's writes and
/// syncs. Destroying the storage joins that thread: flushes already requested are completed
/// first; appends and truncations not yet flushed are lost, exactly as in a crash.
/// Do not destroy it while a flush() is awaited.
class file_storage {
  friend class file_snapshot_writer;

 public:
  /// Opens (creating it if missing) the directory `dir` and locks it: a second file_storage on
  /// the same directory, in this process or another, throws std::system_error until this one is
  /// destroyed. Reads nothing yet: call load().
  explicit file_storage(std::filesystem::path dir, file_storage_options opts = {})
      : dir_(std::move(dir)), opts_(std::move(opts)) {
    if (opts_.segment_bytes < detail::file_format::segment_header_bytes + detail::file_format::record_min_bytes)
      throw std::invalid_argument("raft::file_storage: segment_bytes is too small");
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) throw std::system_error(ec, "raft::file_storage: cannot create directory " + dir_.string());
    lock_fd_ = detail::open_file(dir_ / "LOCK", O_RDWR | O_CREAT);
    if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      throw std::system_error(err, std::generic_category(),
                              "raft::file_storage: directory " + dir_.string() +
                                  " is already in use (its LOCK file is held by another file_storage)");
    }
    dir_fd_ = detail::open_file(dir_, O_RDONLY | O_DIRECTORY);
    writer_ = std::thread([this] { writer_loop(); });
  }

  file_storage(const file_storage&) = delete;
  file_storage& operator=(const file_storage&) = delete;

  ~file_storage() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    writer_.join();
    snapshot_thread_.stop();  // finishes a commit in progress
  }

  // ---- raft::storage ---------------------------------------------------------------------------

  /// Reads everything durable: hard state, compaction base and the log, and finds the current
  /// snapshot (for open_snapshot()). Cuts a torn record at the end of the last segment
  /// (truncating that file) and removes temporary files; throws file_storage_corruption for a bad
  /// record with valid data after it or a damaged newest snapshot, and std::system_error for I/O
  /// errors. Call before any other log call; it may be called again while no flush, snapshot
  /// commit or snapshot writer is pending (it rereads the directory).
  persistent_state load() {
    throw_if_failed();
    {
      std::lock_guard lock(mutex_);
      if (in_flight_ != 0) throw std::logic_error("raft::file_storage::load called during a flush");
      if (snapshot_jobs_ != 0)
        throw std::logic_error("raft::file_storage::load called during a snapshot commit");
    }
    if (writers_.use_count() > 1)
      throw std::logic_error("raft::file_storage::load called while a snapshot writer is open");
    pending_.clear();
    persistent_state ps{};
    ps.state = read_hard_state();
    const auto [base_index, base_term] = read_base();
    ps.base_index = base_index;
    ps.base_term = base_term;
    w_.segments.clear();
    w_.tail_fd.reset();
    w_.base = base_index;
    scan_segments(ps);
    load_snapshot(base_index);
    base_index_ = base_index;
    base_term_ = base_term;
    last_index_ = ps.entries.empty() ? base_index : ps.entries.back().index;
    loaded_ = true;
    return ps;
  }

  /// Stores term and vote in one small file, replaced atomically; durable on return.
  void save_hard_state(const hard_state& hs) {
    throw_if_failed();
    try {
      replace_small_file("hard_state", detail::file_format::encode_small_file(
                                           detail::file_format::hard_state_magic, hs.term.value,
                                           hs.voted_for.value));
    } catch (...) {
      record_failure(std::current_exception());
      throw;
    }
  }

  /// Queues entries (encoded now into the pending buffer); durable after the next flush().
  /// `entries` must continue the log: the first one's index is one past the last entry held,
  /// counting every change requested so far (std::invalid_argument otherwise).
  void append(std::span<const log_entry> entries) {
    throw_if_failed();
    require_loaded();
    auto& b = pending_;
    for (const log_entry& e : entries) {
      if (e.index != last_index_.next())
        throw std::invalid_argument("raft::file_storage::append: entry " + std::to_string(e.index.value) +
                                    " does not follow the last entry " + std::to_string(last_index_.value));
      if (e.data.size() > detail::file_format::max_payload)
        throw std::invalid_argument("raft::file_storage::append: entry payload too large");
      if (b.ends.empty()) b.first = e.index;
      detail::file_format::encode_record(b.bytes, e);
      b.ends.push_back(b.bytes.size());
      last_index_ = e.index;
    }
  }

  /// Queues the removal of every entry after `index`, in order with the appends around it.
  /// An index at or past the last entry removes nothing.
  void truncate_after(index_t index) {
    throw_if_failed();
    require_loaded();
    if (index >= last_index_) return;
    if (index < base_index_)
      throw std::invalid_argument("raft::file_storage::truncate_after: index " + std::to_string(index.value) +
                                  " is below the compaction base " + std::to_string(base_index_.value));
    auto& b = pending_;
    if (!b.ends.empty() && index.next() >= b.first) {
      // Only entries of this batch are cut: drop their encoded records.
      const std::size_t keep = index.next() - b.first;
      b.ends.resize(keep);
      b.bytes.resize(keep == 0 ? 0 : b.ends.back());
    } else {
      b.ends.clear();
      b.bytes.clear();
      b.truncate = b.truncate ? std::min(*b.truncate, index) : index;
    }
    last_index_ = index;
  }

  /// flush() for any Asio completion token; the handler gets a std::exception_ptr (null on
  /// success) and runs on its associated executor.
  template <class CompletionToken>
  auto async_flush(CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::exception_ptr)>(
        [this](auto handler) { this->submit(std::move(handler)); }, token);
  }

  /// Makes every change requested before the call durable. Completes on the awaiting coroutine's
  /// executor. Throws std::system_error if a write or sync failed (then and on every later call).
  asio::awaitable<void> flush() {
    throw_if_failed();
    require_loaded();
    {
      std::lock_guard lock(mutex_);
      if (pending_.empty() && in_flight_ == 0) co_return;  // nothing to make durable
    }
    co_await async_flush(asio::use_awaitable);
  }

  // ---- beyond the concept --------------------------------------------------------------------

  /// Queues compaction of the log through `index`, whose entry has term `term` (ordered with
  /// the other changes; durable after the next flush()). load() then reports base_index = index,
  /// base_term = term and only the entries after it. Whole segments that hold nothing after
  /// `index` are deleted; entries at or below it in the first kept segment stay in the file and
  /// are skipped. An index at or past the last entry empties the log (the next append must
  /// start at index + 1). An index at or below the current base does nothing.
  void compact_through(index_t index, term_t term) {
    throw_if_failed();
    require_loaded();
    if (index <= base_index_) return;
    auto& b = pending_;
    if (index >= last_index_) {
      b.ends.clear();
      b.bytes.clear();
      b.truncate.reset();
      b.compact.reset();
      b.reset = base_point{index, term};
      last_index_ = index;
    } else {
      b.compact = base_point{index, term};
    }
    base_index_ = index;
    base_term_ = term;
  }

  // ---- raft::snapshot_storage ------------------------------------------------------------------

  /// Starts writing a snapshot described by `meta` into `snapshot-<index>.snap.tmp`. One writer
  /// at a time (std::logic_error otherwise); `meta.index` may not be below the current
  /// snapshot's, and `meta` must be valid (nonzero index and term, a valid configuration): both
  /// std::invalid_argument. A snapshot at the same index as the current one replaces it.
  [[nodiscard]] file_snapshot_writer create_snapshot(const snapshot_meta& meta) {
    throw_if_failed();
    require_loaded();
    if (writers_.use_count() > 1)
      throw std::logic_error("raft::file_storage::create_snapshot: another snapshot writer is open");
    if (snapshot_ && meta.index < snapshot_->meta.index)
      throw std::invalid_argument("raft::file_storage::create_snapshot: index " + std::to_string(meta.index.value) +
                                  " is below the current snapshot's " + std::to_string(snapshot_->meta.index.value));
    const buffer encoded = encode(meta);
    if (decode_snapshot_meta(encoded.bytes()) != meta)
      throw std::invalid_argument("raft::file_storage::create_snapshot: invalid snapshot metadata (index and term "
                                  "must be nonzero, the configuration valid)");
    namespace ff = detail::file_format;
    const auto final_path = dir_ / ff::file_name(ff::indexed_file::snapshot, meta.index);
    auto tmp = final_path;
    tmp += ".tmp";
    detail::unique_fd fd;
    try {
      fd = detail::open_file(tmp, O_RDWR | O_CREAT | O_TRUNC);
    } catch (...) {
      record_failure(std::current_exception());
      throw;
    }
    return file_snapshot_writer(this, writers_, std::move(tmp), final_path, std::move(fd), meta, encoded.bytes());
  }

  /// The current snapshot: the last one committed, or the one load() found; std::nullopt if
  /// there is none.
  [[nodiscard]] std::optional<file_snapshot_reader> open_snapshot() const {
    require_loaded();
    if (!snapshot_) return std::nullopt;
    return file_snapshot_reader(snapshot_);
  }

  /// The last entry held, counting changes not yet flushed (base index when empty).
  [[nodiscard]] index_t last_index() const noexcept { return last_index_; }
  [[nodiscard]] const std::filesystem::path& directory() const noexcept { return dir_; }
  [[nodiscard]] const file_storage_options& options() const noexcept { return opts_; }
  [[nodiscard]] file_storage_stats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }

 private:
  struct base_point {
    index_t index;
    term_t term;
  };

  /// Changes requested since the last flush, normalized to: reset, truncate, appends, compact.
  struct batch {
    std::optional<base_point> reset;      ///< drop every segment, base := reset
    std::optional<index_t> truncate;      ///< truncate the written log after this index
    index_t first{0};                     ///< index of the first encoded record
    std::vector<std::byte> bytes;         ///< encoded records
    std::vector<std::size_t> ends;        ///< end offset of each record in `bytes`
    std::optional<base_point> compact;    ///< compact through this point (after the appends)
    void clear() noexcept {
      reset.reset();
      truncate.reset();
      compact.reset();
      bytes.clear();
      ends.clear();
    }
    [[nodiscard]] bool empty() const noexcept { return !reset && !truncate && !compact && ends.empty(); }
  };

  struct job {
    batch work;
    detail::unique_function<void(std::exception_ptr)> done;
  };

  struct segment {
    index_t first;
    std::filesystem::path path;
    std::uint64_t size = 0;                ///< bytes in the file
    std::vector<std::uint64_t> offsets;    ///< file offset of each record
    [[nodiscard]] index_t next() const noexcept { return first + offsets.size(); }
  };

  /// State touched only by the writer thread (and by load() while the writer is idle).
  struct writer_state {
    std::deque<segment> segments;
    detail::unique_fd tail_fd;   ///< open descriptor of segments.back()
    bool tail_dirty = false;
    index_t base{0};
    [[nodiscard]] index_t next() const noexcept {
      return segments.empty() ? base.next() : segments.back().next();
    }
  };

  // ---- caller side -------------------------------------------------------------------------

  void require_loaded() const {
    if (!loaded_) throw std::logic_error("raft::file_storage: call load() first");
  }

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

  template <class Handler>
  void submit(Handler handler) {
    auto ex = asio::get_associated_executor(handler);
    auto work = asio::prefer(ex, asio::execution::outstanding_work.tracked);
    job j;
    j.done = [h = std::move(handler), work = std::move(work)](std::exception_ptr e) mutable {
      asio::post(work, [h = std::move(h), e = std::move(e)]() mutable { h(std::move(e)); });
    };
    {
      std::lock_guard lock(mutex_);
      j.work = std::move(pending_);
      if (!spare_.empty()) {
        pending_ = std::move(spare_.back());
        spare_.pop_back();
      } else {
        pending_ = batch{};
      }
      pending_.clear();
      queue_.push_back(std::move(j));
      ++in_flight_;
      ++stats_.flushes;
    }
    wake_.notify_one();
  }

  void sync_fd(int fd, bool data_only, const std::filesystem::path& what) const {
    if (!opts_.fsync) return;
    int r;
    do {
      r = opts_.sync_hook ? opts_.sync_hook(fd) : (data_only ? ::fdatasync(fd) : ::fsync(fd));
    } while (r != 0 && errno == EINTR && !opts_.sync_hook);
    if (r != 0) throw detail::posix_error(errno, data_only ? "fdatasync" : "fsync", what);
  }

  void sync_dir() const { sync_fd(dir_fd_.get(), false, dir_); }

  /// Writes `name` atomically: temp file, sync, rename, sync the directory.
  template <std::size_t N>
  void replace_small_file(const char* name, const std::array<std::byte, N>& bytes) const {
    const auto path = dir_ / name;
    const auto tmp = dir_ / (std::string(name) + ".tmp");
    {
      detail::unique_fd fd = detail::open_file(tmp, O_WRONLY | O_CREAT | O_TRUNC);
      detail::write_all(fd.get(), bytes.data(), bytes.size(), 0, tmp);
      sync_fd(fd.get(), false, tmp);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) throw detail::posix_error(errno, "rename", tmp);
    sync_dir();
  }

  /// Reads a small file: {a, b}, or nullopt if missing.
  std::optional<std::pair<std::uint64_t, std::uint64_t>> read_small_file(const char* name,
                                                                        const char* magic) const {
    namespace ff = detail::file_format;
    const auto path = dir_ / name;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return std::nullopt;
    const auto bytes = detail::read_whole_file(path);
    if (bytes.size() != ff::small_file_bytes)
      throw file_storage_corruption(path, 0, "size " + std::to_string(bytes.size()) + " is not " +
                                                 std::to_string(ff::small_file_bytes));
    if (std::memcmp(bytes.data(), magic, 8) != 0) throw file_storage_corruption(path, 0, "bad magic number");
    if (const auto v = detail::load_u32(bytes.data() + 8); v != ff::version)
      throw file_storage_corruption(path, 8, "unsupported format version " + std::to_string(v) +
                                                 " (this build reads version " + std::to_string(ff::version) + ")");
    if (detail::load_u32(bytes.data() + 32) != detail::crc32c(bytes.data(), 32))
      throw file_storage_corruption(path, 32, "checksum mismatch");
    return std::pair{detail::load_u64(bytes.data() + 16), detail::load_u64(bytes.data() + 24)};
  }

  hard_state read_hard_state() const {
    const auto v = read_small_file("hard_state", detail::file_format::hard_state_magic);
    if (!v) return hard_state{};
    return hard_state{term_t{v->first}, node_id{v->second}};
  }

  std::pair<index_t, term_t> read_base() const {
    const auto v = read_small_file("base", detail::file_format::base_magic);
    if (!v) return {index_t{0}, term_t{0}};
    return {index_t{v->first}, term_t{v->second}};
  }


  /// load(): finds the newest snapshot file (highest index), checks it, and deletes the older
  /// ones (left by a crash between a commit's rename and its cleanup). Temporary files were
  /// removed by scan_segments. A damaged newest snapshot is refused, never skipped.
  void load_snapshot(index_t base) {
    namespace ff = detail::file_format;
    snapshot_.reset();
    std::vector<std::pair<index_t, std::filesystem::path>> files;
    for (const auto& de : std::filesystem::directory_iterator(dir_))
      if (auto i = ff::parse_file_name(ff::indexed_file::snapshot, de.path().filename().string()))
        files.emplace_back(*i, de.path());
    if (files.empty()) return;
    std::sort(files.begin(), files.end());
    auto newest = detail::read_snapshot_file(files.back().second, files.back().first);
    if (newest->meta.index < base)
      throw file_storage_corruption(dir_ / "base", 16,
                                    "the log is compacted through index " + std::to_string(base.value) +
                                        ", but the newest snapshot (" + newest->path.filename().string() +
                                        ") covers only " + std::to_string(newest->meta.index.value) +
                                        ": a newer snapshot is missing");
    snapshot_ = std::move(newest);
    files.pop_back();
    for (const auto& f : files) remove_file(f.second);
    if (!files.empty()) sync_dir();
  }

  /// commit() of a snapshot writer: on the snapshot thread, sync the temporary file, rename it
  /// into place, sync the directory, delete every other snapshot file, sync the directory.
  /// Completes on the handler's associated executor with an exception_ptr (null on success).
  template <class CompletionToken>
  auto async_commit_snapshot(std::shared_ptr<const detail::snapshot_file> file, const std::filesystem::path& tmp,
                             CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::exception_ptr)>(
        [this, file = std::move(file), &tmp](auto handler) mutable {
          auto ex = asio::get_associated_executor(handler);
          auto work = asio::prefer(ex, asio::execution::outstanding_work.tracked);
          detail::unique_function<void(std::exception_ptr)> done =
              [h = std::move(handler), work = std::move(work)](std::exception_ptr e) mutable {
                asio::post(work, [h = std::move(h), e = std::move(e)]() mutable { h(std::move(e)); });
              };
          {
            std::lock_guard lock(mutex_);
            ++snapshot_jobs_;
          }
          // The task owns the file (and its descriptor) for as long as it runs.
          snapshot_thread_.post([this, file = std::move(file), tmp, done = std::move(done)]() mutable {
            std::exception_ptr error;
            if (failed_.load(std::memory_order_acquire)) {
              std::lock_guard lock(mutex_);
              error = failure_;
            } else {
              try {
                detail::install_snapshot_file(
                    *file, tmp, dir_, [this](int fd, const std::filesystem::path& what) { sync_fd(fd, false, what); },
                    [this] { sync_dir(); });
              } catch (...) {
                error = std::current_exception();
                record_failure(error);
              }
            }
            {
              std::lock_guard lock(mutex_);
              --snapshot_jobs_;
            }
            done(std::move(error));
          });
        },
        token);
  }

  /// Is there a record that passes its checksum anywhere in `buf` after `from`? Used to tell a
  /// torn tail (nothing valid after the bad record) from corruption in the middle of the log.
  /// Candidates are filtered on the cheap fields first (length fits, plausible index and term).
  static bool valid_record_after(const std::vector<std::byte>& buf, std::size_t from, index_t last_index,
                                 term_t last_term) {
    namespace ff = detail::file_format;
    if (buf.size() < ff::record_min_bytes) return false;
    const std::uint64_t max_index = last_index.value + 1 + (buf.size() - from) / ff::record_min_bytes;
    for (std::size_t y = from; y + ff::record_min_bytes <= buf.size(); ++y) {
      const std::byte* p = buf.data() + y;
      const std::uint32_t len = detail::load_u32(p);
      if (len < ff::record_body_fixed || len > buf.size() - y - ff::record_header_bytes) continue;
      const std::uint64_t idx = detail::load_u64(p + 16);
      if (idx <= last_index.value || idx > max_index) continue;
      if (detail::load_u64(p + 8) < last_term.value || std::uint8_t(p[24]) > 2) continue;
      if (detail::load_u32(p + 4) == ff::record_crc(p, len)) return true;
    }
    return false;
  }

  /// load(): reads the segments into `ps.entries` and the writer state, cutting a torn tail.
  void scan_segments(persistent_state& ps) {
    namespace ff = detail::file_format;
    struct found {
      index_t first;
      std::filesystem::path path;
    };
    std::vector<found> files;
    for (const auto& de : std::filesystem::directory_iterator(dir_)) {
      const std::string name = de.path().filename().string();
      if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) {
        std::error_code ec;
        std::filesystem::remove(de.path(), ec);  // an interrupted atomic replace or segment creation
        continue;
      }
      if (auto first = ff::parse_file_name(ff::indexed_file::segment, name)) files.push_back({*first, de.path()});
    }
    std::sort(files.begin(), files.end(), [](const found& a, const found& b) { return a.first < b.first; });

    const index_t base = w_.base;
    bool removed = false;
    for (std::size_t k = 0; k < files.size(); ++k) {
      const bool last_file = k + 1 == files.size();
      // A segment followed by one that starts at or before base + 1 holds only compacted entries
      // (left over from a compaction interrupted by a crash).
      if (!last_file && files[k + 1].first <= base.next()) {
        remove_file(files[k].path);
        removed = true;
        continue;
      }
      const auto& path = files[k].path;
      std::vector<std::byte> buf = detail::read_whole_file(path);
      if (buf.size() < ff::segment_header_bytes)
        throw file_storage_corruption(path, buf.size(), "segment header is incomplete");
      if (std::memcmp(buf.data(), ff::segment_magic, 8) != 0)
        throw file_storage_corruption(path, 0, "bad magic number (not a raft log segment)");
      if (const auto v = detail::load_u32(buf.data() + 8); v != ff::version)
        throw file_storage_corruption(path, 8, "unsupported format version " + std::to_string(v) +
                                                   " (this build reads version " + std::to_string(ff::version) + ")");
      if (detail::load_u32(buf.data() + 24) != detail::crc32c(buf.data(), 24) ||
          detail::load_u32(buf.data() + 12) != ff::segment_header_bytes)
        throw file_storage_corruption(path, 0, "segment header checksum mismatch");
      const index_t first{detail::load_u64(buf.data() + 16)};
      if (first != files[k].first)
        throw file_storage_corruption(path, 16, "header says the first index is " + std::to_string(first.value));
      if (!w_.segments.empty() && w_.segments.back().next() != first)
        throw file_storage_corruption(path, 0, "gap in the log: the previous segment ends before index " +
                                                   std::to_string(w_.segments.back().next().value) +
                                                   ", this one starts at " + std::to_string(first.value));
      if (w_.segments.empty() && first > base.next())
        throw file_storage_corruption(path, 0, "gap in the log: it starts at index " + std::to_string(first.value) +
                                                   " but the compaction base is " + std::to_string(base.value));

      segment seg{first, path, ff::segment_header_bytes, {}};
      std::size_t at = ff::segment_header_bytes;
      term_t last_term{0};
      while (at < buf.size()) {
        const std::byte* p = buf.data() + at;
        const std::size_t left = buf.size() - at;
        const char* bad = nullptr;
        std::uint32_t len = 0;
        if (left < ff::record_header_bytes) {
          bad = "incomplete record header";
        } else {
          len = detail::load_u32(p);
          if (len < ff::record_body_fixed)
            bad = "impossible record length";
          else if (len > left - ff::record_header_bytes)
            bad = "record runs past the end of the file";
          else if (detail::load_u32(p + 4) != ff::record_crc(p, len))
            bad = "record checksum mismatch";
        }
        if (bad) {
          const index_t last_good = seg.next().prev();
          if (!last_file || valid_record_after(buf, at + 1, last_good, last_term))
            throw file_storage_corruption(path, at, std::string(bad) +
                                                        ", and valid records follow: refusing to drop them");
          // A torn tail: a write a crash interrupted. Its flush never completed; cut it off.
          detail::unique_fd fd = detail::open_file(path, O_RDWR);
          if (::ftruncate(fd.get(), off_t(at)) != 0) throw detail::posix_error(errno, "ftruncate", path);
          sync_fd(fd.get(), false, path);
          buf.resize(at);
          break;
        }
        const index_t idx{detail::load_u64(p + 16)};
        const term_t term{detail::load_u64(p + 8)};
        const auto kind = std::uint8_t(p[24]);
        if (idx != seg.next())
          throw file_storage_corruption(path, at, "record holds index " + std::to_string(idx.value) +
                                                      ", expected " + std::to_string(seg.next().value));
        if (kind > 2) throw file_storage_corruption(path, at + 24, "unknown entry kind " + std::to_string(kind));
        seg.offsets.push_back(at);
        if (idx > base) {
          ps.entries.push_back(log_entry{
              term, idx, static_cast<entry_kind>(kind),
              buffer{std::span<const std::byte>(p + ff::record_min_bytes, len - ff::record_body_fixed)}});
        }
        last_term = term;
        at += ff::record_header_bytes + len;
      }
      seg.size = buf.size();
      w_.segments.push_back(std::move(seg));
    }
    // Segments holding nothing after the base (a compaction or reset interrupted by a crash).
    while (!w_.segments.empty() && w_.segments.front().next() <= base.next()) {
      remove_file(w_.segments.front().path);
      w_.segments.pop_front();
      removed = true;
    }
    if (removed) sync_dir();
    if (!ps.entries.empty() && ps.entries.front().index != base.next())
      throw file_storage_corruption(w_.segments.front().path, 0,
                                    "the log does not continue from the compaction base " +
                                        std::to_string(base.value));
    if (!w_.segments.empty()) w_.tail_fd = detail::open_file(w_.segments.back().path, O_RDWR);
    w_.tail_dirty = false;
  }

  static void remove_file(const std::filesystem::path& p) {
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) throw detail::posix_error(errno, "unlink", p);
  }

  // ---- writer thread -----------------------------------------------------------------------

  void writer_loop() {
    std::vector<job> jobs;
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, and every requested flush is done
        std::swap(jobs, queue_);
      }
      std::exception_ptr error;
      if (failed_.load(std::memory_order_acquire)) {
        std::lock_guard lock(mutex_);
        error = failure_;
      } else {
        try {
          for (job& j : jobs) apply(j.work);
          if (w_.tail_dirty) {
            sync_fd(w_.tail_fd.get(), true, w_.segments.back().path);
            w_.tail_dirty = false;
            std::lock_guard lock(mutex_);
            if (opts_.fsync) ++stats_.syncs;
          }
        } catch (...) {
          error = std::current_exception();
          record_failure(error);
        }
      }
      {
        std::lock_guard lock(mutex_);
        ++stats_.write_rounds;
        in_flight_ -= jobs.size();
        for (job& j : jobs) {
          j.work.clear();
          if (spare_.size() < 2) spare_.push_back(std::move(j.work));
        }
      }
      for (job& j : jobs) j.done(error);
      jobs.clear();
    }
  }

  void apply(batch& b) {
    if (b.reset) apply_reset(*b.reset);
    if (b.truncate) apply_truncate(*b.truncate);
    if (!b.ends.empty()) apply_appends(b);
    if (b.compact) apply_compact(*b.compact);
  }

  /// Compaction at or past the end: cuts whatever lies after the new base (entries a truncation
  /// in this batch removed), records the new base, then drops every segment. After a crash in
  /// between, load() finds either the old base with a prefix of the old log, or the new base
  /// with segments it knows to skip and delete: never entries after the new base.
  void apply_reset(base_point p) {
    apply_truncate(p.index);
    replace_small_file("base", detail::file_format::encode_small_file(detail::file_format::base_magic,
                                                                      p.index.value, p.term.value));
    w_.base = p.index;
    remove_segments_from(0);
  }

  void remove_segments_from(std::size_t k) {
    if (k >= w_.segments.size()) return;
    w_.tail_fd.reset();
    w_.tail_dirty = false;
    while (w_.segments.size() > k) {
      remove_file(w_.segments.back().path);
      w_.segments.pop_back();
    }
    sync_dir();
  }

  /// Removes the entries after `index`: later segments first (last first), then the file that
  /// holds `index + 1` is cut, and synced before anything new is written after it. A crash in
  /// the middle leaves a prefix of the old log that still reaches past `index`.
  void apply_truncate(index_t index) {
    if (index.next() >= w_.next()) return;
    auto& segs = w_.segments;
    std::size_t k = segs.size() - 1;
    while (k > 0 && segs[k].first > index.next()) --k;
    if (segs[k].first > index.next())
      throw std::logic_error("raft::file_storage: truncation below the first segment");
    remove_segments_from(k + 1);
    segment& s = segs[k];
    const std::size_t keep = index.next() - s.first;
    const std::uint64_t size = keep < s.offsets.size() ? s.offsets[keep] : s.size;
    if (!w_.tail_fd) w_.tail_fd = detail::open_file(s.path, O_RDWR);
    if (::ftruncate(w_.tail_fd.get(), off_t(size)) != 0) throw detail::posix_error(errno, "ftruncate", s.path);
    sync_fd(w_.tail_fd.get(), false, s.path);
    s.offsets.resize(keep);
    s.size = size;
    w_.tail_dirty = false;
  }

  /// Starts a new segment whose first record will be `first`: created under a temporary name,
  /// header written and synced, renamed, directory synced. A segment file thus always has a
  /// complete header. The previous tail is synced first, so a torn record can only ever be in
  /// the last segment.
  void start_segment(index_t first) {
    if (w_.tail_fd && w_.tail_dirty) {
      sync_fd(w_.tail_fd.get(), true, w_.segments.back().path);
      std::lock_guard lock(mutex_);
      if (opts_.fsync) ++stats_.syncs;
    }
    w_.tail_fd.reset();
    w_.tail_dirty = false;
    namespace ff = detail::file_format;
    const auto path = dir_ / ff::file_name(ff::indexed_file::segment, first);
    auto tmp = path;
    tmp += ".tmp";
    detail::unique_fd fd = detail::open_file(tmp, O_RDWR | O_CREAT | O_TRUNC);
    const auto header = detail::file_format::encode_segment_header(first);
    detail::write_all(fd.get(), header.data(), header.size(), 0, tmp);
    sync_fd(fd.get(), false, tmp);
    if (::rename(tmp.c_str(), path.c_str()) != 0) throw detail::posix_error(errno, "rename", tmp);
    sync_dir();
    w_.segments.push_back(segment{first, path, header.size(), {}});
    w_.tail_fd = std::move(fd);
  }

  void apply_appends(const batch& b) {
    if (b.first != w_.next())
      throw std::logic_error("raft::file_storage: appended entries start at " + std::to_string(b.first.value) +
                             ", the log continues at " + std::to_string(w_.next().value));
    const std::size_t n = b.ends.size();
    const std::uint64_t limit = opts_.segment_bytes;
    std::size_t p = 0;
    std::uint64_t writes = 0;
    while (p < n) {
      if (w_.segments.empty()) start_segment(b.first + p);
      if (!w_.tail_fd) w_.tail_fd = detail::open_file(w_.segments.back().path, O_RDWR);
      segment& t = w_.segments.back();
      const std::size_t start = p == 0 ? 0 : b.ends[p - 1];
      std::size_t q = p;
      while (q < n && (t.size + (b.ends[q] - start) <= limit || (q == p && t.offsets.empty()))) ++q;
      if (q == p) {
        start_segment(b.first + p);
        continue;
      }
      detail::write_all(w_.tail_fd.get(), b.bytes.data() + start, b.ends[q - 1] - start, t.size, t.path);
      ++writes;
      for (std::size_t r = p; r < q; ++r) t.offsets.push_back(t.size + ((r == 0 ? 0 : b.ends[r - 1]) - start));
      t.size += b.ends[q - 1] - start;
      w_.tail_dirty = true;
      p = q;
    }
    std::lock_guard lock(mutex_);
    stats_.write_calls += writes;
    stats_.entries_written += n;
    stats_.bytes_written += b.bytes.size();
  }

  /// Records the new base first, then deletes the segments that hold nothing after it.
  void apply_compact(base_point p) {
    replace_small_file("base", detail::file_format::encode_small_file(detail::file_format::base_magic,
                                                                      p.index.value, p.term.value));
    w_.base = p.index;
    bool removed = false;
    while (!w_.segments.empty() && w_.segments.front().next() <= p.index.next()) {
      if (w_.segments.size() == 1) {
        w_.tail_fd.reset();
        w_.tail_dirty = false;
      }
      remove_file(w_.segments.front().path);
      w_.segments.pop_front();
      removed = true;
    }
    if (removed) sync_dir();
  }

  const std::filesystem::path dir_;
  const file_storage_options opts_;
  detail::unique_fd lock_fd_;
  detail::unique_fd dir_fd_;

  // Caller side (the node's executor).
  bool loaded_ = false;
  index_t last_index_{0};
  index_t base_index_{0};
  term_t base_term_{0};
  batch pending_;

  // Shared with the writer thread, guarded by mutex_.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<job> queue_;
  std::vector<batch> spare_;
  std::size_t in_flight_ = 0;
  bool stop_ = false;
  std::exception_ptr failure_;
  std::atomic<bool> failed_{false};
  file_storage_stats stats_;

  // Snapshots (caller side, except the snapshot thread's commit work).
  std::shared_ptr<const detail::snapshot_file> snapshot_;  ///< the current snapshot, if any
  std::shared_ptr<int> writers_ = std::make_shared<int>(0);  ///< copied into each open writer
  std::size_t snapshot_jobs_ = 0;                           ///< commits in progress (mutex_)
  detail::task_thread snapshot_thread_;                     ///< syncs and renames snapshot files

  writer_state w_;
  std::thread writer_;  // last: starts after everything above is constructed
};

inline auto file_snapshot_writer::fail_storage() const {
  return [storage = storage_](std::exception_ptr e) { storage->record_failure(std::move(e)); };
}

inline void file_snapshot_writer::write(std::span<const std::byte> bytes) {
  require_open("write");
  storage_->throw_if_failed();
  file_.write(bytes, fail_storage());
}

inline asio::awaitable<void> file_snapshot_writer::commit() {
  require_open("commit");
  storage_->throw_if_failed();
  std::shared_ptr<const detail::snapshot_file> file = file_.finish(fail_storage());
  co_await storage_->async_commit_snapshot(file, file_.temporary_path(), asio::use_awaitable);
  // Durable and in place: it is the current snapshot now.
  storage_->snapshot_ = std::move(file);
  file_.committed();
  token_.reset();
  storage_ = nullptr;
}

}  // namespace v1
}  // namespace raft
