// raft/storage/detail/files.hpp - what raft::file_storage and raft::shared_log share: the
// corruption error, the file-format constants and encoders (records, segment headers, small
// files, snapshot files), POSIX file helpers, a task thread, and snapshot files: writing one
// (snapshot_file_writer, install_snapshot_file), checking one (read_snapshot_file) and reading
// a committed one's bytes (read_snapshot_data). docs/storage.md has the byte tables.
#pragma once

#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
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
#include <sys/stat.h>
#include <unistd.h>

#include "raft/core/entry.hpp"
#include "raft/core/snapshot.hpp"
#include "raft/core/types.hpp"
#include "raft/detail/endian.hpp"
#include "raft/detail/unique_function.hpp"
#include "raft/storage/detail/crc32c.hpp"

namespace raft {
inline namespace v1 {
/// Thrown by file_storage::load() for data it cannot trust: a bad record with valid data after it,
/// a wrong magic number or format version, a gap between segments.
class file_storage_corruption : public std::runtime_error {
 public:
  file_storage_corruption(const std::filesystem::path& file, std::uint64_t offset, const std::string& what)
      : std::runtime_error("raft::file_storage: " + file.string() + " at byte offset " +
                           std::to_string(offset) + ": " + what),
        file_(file),
        offset_(offset) {}
  [[nodiscard]] const std::filesystem::path& file() const noexcept { return file_; }
  [[nodiscard]] std::uint64_t offset() const noexcept { return offset_; }

 private:
  std::filesystem::path file_;
  std::uint64_t offset_;
};

namespace detail {
namespace file_format {

inline constexpr std::uint32_t version = 1;
inline constexpr std::size_t segment_header_bytes = 32;
inline constexpr std::size_t record_header_bytes = 8;   // u32 length, u32 crc32c
inline constexpr std::size_t record_body_fixed = 17;    // u64 term, u64 index, u8 kind
inline constexpr std::size_t record_min_bytes = record_header_bytes + record_body_fixed;
inline constexpr std::size_t small_file_bytes = 40;     // hard_state and base files
inline constexpr char segment_magic[9] = "RAFTSEGM";
inline constexpr char hard_state_magic[9] = "RAFTHARD";
inline constexpr char base_magic[9] = "RAFTBASE";
inline constexpr std::uint64_t max_payload = 0xFFFFFFFFull - record_body_fixed;
inline constexpr char snapshot_magic[9] = "RAFTSNAP";
inline constexpr std::size_t snapshot_header_bytes = 32;   // magic, version, meta length, crc
inline constexpr std::size_t snapshot_trailer_bytes = 12;  // u64 data size, u32 crc32c of all before
inline constexpr std::size_t snapshot_write_chunk = std::size_t{1} << 20;  // writer's buffer

/// The files whose name carries an index: `log-<index of its first entry>.seg` and
/// `snapshot-<index it covers>.snap`, the index written as 20 decimal digits, zero-padded.
enum class indexed_file { segment, snapshot };
inline constexpr std::size_t name_index_digits = 20;  // every u64 fits

[[nodiscard]] constexpr std::string_view name_prefix(indexed_file kind) noexcept {
  return kind == indexed_file::segment ? "log-" : "snapshot-";
}
[[nodiscard]] constexpr std::string_view name_suffix(indexed_file kind) noexcept {
  return kind == indexed_file::segment ? ".seg" : ".snap";
}

/// The name of the `kind` file for `index`.
[[nodiscard]] inline std::string file_name(indexed_file kind, index_t index) {
  std::string name(name_prefix(kind));
  name.append(name_index_digits, '0');
  std::uint64_t v = index.value;
  for (std::size_t at = name.size(); v != 0; v /= 10) name[--at] = char('0' + v % 10);
  name.append(name_suffix(kind));
  return name;
}

/// The index in `name` if it is the name of a `kind` file (exactly as file_name() writes it);
/// std::nullopt for any other name: another kind of file, a `.tmp` file, another number of
/// digits, anything but digits, a number beyond u64.
[[nodiscard]] inline std::optional<index_t> parse_file_name(indexed_file kind, std::string_view name) noexcept {
  const std::string_view prefix = name_prefix(kind), suffix = name_suffix(kind);
  if (name.size() != prefix.size() + name_index_digits + suffix.size() || !name.starts_with(prefix) ||
      !name.ends_with(suffix))
    return std::nullopt;
  std::uint64_t v = 0;
  for (const char c : name.substr(prefix.size(), name_index_digits)) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = std::uint64_t(c - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return index_t{v};
}

/// The checksum of a record: CRC-32C over its length field and its body (not the crc field).
[[nodiscard]] inline std::uint32_t record_crc(const std::byte* record, std::uint32_t body_len) noexcept {
  return crc32c_update(crc32c(record, 4), record + record_header_bytes, body_len);
}

/// Appends one record for `e` to `out`.
inline void encode_record(std::vector<std::byte>& out, const log_entry& e) {
  const auto payload = e.data.bytes();
  const auto body = static_cast<std::uint32_t>(record_body_fixed + payload.size());
  const std::size_t at = out.size();
  out.resize(at + record_header_bytes + body);
  std::byte* p = out.data() + at;
  store_u32(p, body);
  store_u64(p + 8, e.term.value);
  store_u64(p + 16, e.index.value);
  p[24] = std::byte(e.kind);
  if (!payload.empty()) std::memcpy(p + 25, payload.data(), payload.size());
  store_u32(p + 4, record_crc(p, body));
}

inline std::array<std::byte, segment_header_bytes> encode_segment_header(index_t first) {
  std::array<std::byte, segment_header_bytes> h{};
  std::memcpy(h.data(), segment_magic, 8);
  store_u32(h.data() + 8, version);
  store_u32(h.data() + 12, segment_header_bytes);
  store_u64(h.data() + 16, first.value);
  store_u32(h.data() + 24, crc32c(h.data(), 24));
  return h;
}

inline std::array<std::byte, small_file_bytes> encode_small_file(const char* magic, std::uint64_t a,
                                                                 std::uint64_t b) {
  std::array<std::byte, small_file_bytes> f{};
  std::memcpy(f.data(), magic, 8);
  store_u32(f.data() + 8, version);
  store_u64(f.data() + 16, a);
  store_u64(f.data() + 24, b);
  store_u32(f.data() + 32, crc32c(f.data(), 32));
  return f;
}

/// The 32-byte header of a snapshot file whose encoded metadata is `meta_len` bytes.
inline std::array<std::byte, snapshot_header_bytes> encode_snapshot_header(std::uint32_t meta_len) {
  std::array<std::byte, snapshot_header_bytes> h{};
  std::memcpy(h.data(), snapshot_magic, 8);
  store_u32(h.data() + 8, version);
  store_u32(h.data() + 12, meta_len);
  store_u32(h.data() + 16, crc32c(h.data(), 16));
  return h;
}

}  // namespace file_format

/// An owned POSIX file descriptor.
class unique_fd {
 public:
  unique_fd() noexcept = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~unique_fd() { reset(); }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  [[nodiscard]] int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

[[nodiscard]] inline std::system_error posix_error(int err, const std::string& what,
                                                   const std::filesystem::path& file) {
  return std::system_error(err, std::generic_category(), "raft::file_storage: " + what + " " + file.string());
}

inline unique_fd open_file(const std::filesystem::path& p, int flags, mode_t mode = 0644) {
  for (;;) {
    const int fd = ::open(p.c_str(), flags | O_CLOEXEC, mode);
    if (fd >= 0) return unique_fd(fd);
    if (errno != EINTR) throw posix_error(errno, "open", p);
  }
}

inline void write_all(int fd, const std::byte* data, std::size_t size, std::uint64_t offset,
                      const std::filesystem::path& file) {
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, data, size, off_t(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw posix_error(errno, "write", file);
    }
    data += n;
    size -= std::size_t(n);
    offset += std::uint64_t(n);
  }
}

inline std::vector<std::byte> read_whole_file(const std::filesystem::path& p) {
  unique_fd fd = open_file(p, O_RDONLY);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw posix_error(errno, "fstat", p);
  std::vector<std::byte> out(std::size_t(st.st_size));
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd.get(), out.data() + done, out.size() - done, off_t(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw posix_error(errno, "read", p);
    }
    if (n == 0) break;
    done += std::size_t(n);
  }
  out.resize(done);
  return out;
}

/// Reads up to `size` bytes at `offset`; fewer only at the end of the file.
inline std::size_t read_at(int fd, std::byte* data, std::size_t size, std::uint64_t offset,
                           const std::filesystem::path& file) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, data + done, size - done, off_t(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw posix_error(errno, "read", file);
    }
    if (n == 0) break;
    done += std::size_t(n);
  }
  return done;
}

/// A committed snapshot file, open for reading. Immutable; shared by the storage and readers.
struct snapshot_file {
  std::filesystem::path path;
  unique_fd fd;
  snapshot_meta meta;
  std::uint64_t data_offset = 0;  ///< where the snapshot's bytes start in the file
  std::uint64_t data_size = 0;
};

/// A thread that runs posted tasks in order; started by the first post(). stop() runs every task
/// already posted, then joins.
class task_thread {
 public:
  task_thread() = default;
  task_thread(const task_thread&) = delete;
  task_thread& operator=(const task_thread&) = delete;
  ~task_thread() { stop(); }

  void post(unique_function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(task));
      if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
    }
    wake_.notify_one();
  }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void loop() {
    std::deque<unique_function<void()>> tasks;
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        std::swap(tasks, queue_);
      }
      for (auto& t : tasks) t();
      tasks.clear();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<unique_function<void()>> queue_;
  bool stop_ = false;
  std::thread thread_;
};


/// Opens and checks a snapshot file: header, length fields, metadata, the CRC-32C over the
/// whole file, and the index its name gives. Any mismatch is corruption: a committed snapshot
/// was synced before it got its name, so a crash cannot leave it torn.
inline std::shared_ptr<const snapshot_file> read_snapshot_file(const std::filesystem::path& path,
                                                              index_t name_index) {
  namespace ff = file_format;
  auto f = std::make_shared<snapshot_file>();
  f->path = path;
  f->fd = open_file(path, O_RDONLY);
  struct stat st {};
  if (::fstat(f->fd.get(), &st) != 0) throw posix_error(errno, "fstat", path);
  const auto size = std::uint64_t(st.st_size);
  constexpr std::uint64_t fixed = ff::snapshot_header_bytes + ff::snapshot_trailer_bytes;
  if (size < fixed)
    throw file_storage_corruption(path, size, "snapshot file is too short (" + std::to_string(size) +
                                                  " bytes; header and trailer alone take " +
                                                  std::to_string(fixed) + ")");
  std::array<std::byte, ff::snapshot_header_bytes> h{};
  if (read_at(f->fd.get(), h.data(), h.size(), 0, path) != h.size())
    throw file_storage_corruption(path, 0, "snapshot header is incomplete");
  if (std::memcmp(h.data(), ff::snapshot_magic, 8) != 0)
    throw file_storage_corruption(path, 0, "bad magic number (not a raft snapshot)");
  if (const auto v = load_u32(h.data() + 8); v != ff::version)
    throw file_storage_corruption(path, 8, "unsupported format version " + std::to_string(v) +
                                               " (this build reads version " + std::to_string(ff::version) + ")");
  if (load_u32(h.data() + 16) != crc32c(h.data(), 16))
    throw file_storage_corruption(path, 16, "snapshot header checksum mismatch");
  const std::uint64_t meta_len = load_u32(h.data() + 12);
  if (meta_len > size - fixed)
    throw file_storage_corruption(path, 12, "metadata length " + std::to_string(meta_len) +
                                                " runs past the end of the file");
  std::array<std::byte, ff::snapshot_trailer_bytes> t{};
  if (read_at(f->fd.get(), t.data(), t.size(), size - t.size(), path) != t.size())
    throw file_storage_corruption(path, size - t.size(), "snapshot trailer is incomplete");
  const std::uint64_t data_size = size - fixed - meta_len;
  if (const auto d = load_u64(t.data()); d != data_size)
    throw file_storage_corruption(path, size - t.size(),
                                  "the trailer gives a snapshot of " + std::to_string(d) +
                                      " bytes, the file size leaves " + std::to_string(data_size) +
                                      " (truncated or extended)");
  // The checksum of everything before the trailer's CRC field, read in pieces.
  std::vector<std::byte> chunk(std::size_t(std::min<std::uint64_t>(size - 4, ff::snapshot_write_chunk)));
  std::uint32_t crc = 0;
  std::vector<std::byte> meta_bytes;
  for (std::uint64_t at = 0; at < size - 4;) {
    const std::size_t n = std::size_t(std::min<std::uint64_t>(chunk.size(), size - 4 - at));
    if (read_at(f->fd.get(), chunk.data(), n, at, path) != n)
      throw file_storage_corruption(path, at, "snapshot file ends early");
    crc = crc32c_update(crc, chunk.data(), n);
    // Keep the metadata bytes (they follow the header) on the way.
    const std::uint64_t meta_end = ff::snapshot_header_bytes + meta_len;
    if (at < meta_end && at + n > ff::snapshot_header_bytes) {
      const std::uint64_t from = std::max<std::uint64_t>(at, ff::snapshot_header_bytes);
      const std::uint64_t to = std::min<std::uint64_t>(at + n, meta_end);
      meta_bytes.insert(meta_bytes.end(), chunk.begin() + std::ptrdiff_t(from - at),
                        chunk.begin() + std::ptrdiff_t(to - at));
    }
    at += n;
  }
  if (load_u32(t.data() + 8) != crc)
    throw file_storage_corruption(path, size - 4, "snapshot checksum mismatch");
  auto meta = decode_snapshot_meta(meta_bytes);
  if (!meta) throw file_storage_corruption(path, ff::snapshot_header_bytes, "undecodable snapshot metadata");
  if (meta->index != name_index)
    throw file_storage_corruption(path, ff::snapshot_header_bytes,
                                  "the metadata gives index " + std::to_string(meta->index.value) +
                                      ", the file name " + std::to_string(name_index.value));
  f->meta = std::move(*meta);
  f->data_offset = ff::snapshot_header_bytes + meta_len;
  f->data_size = data_size;
  return f;
}

/// Copies up to `buf.size()` bytes of committed snapshot `f`'s data from `offset`; returns how
/// many (fewer only at the end, 0 at or past it). Throws std::system_error on a read error, and
/// file_storage_corruption if the file has become shorter than its snapshot.
inline std::size_t read_snapshot_data(const snapshot_file& f, std::uint64_t offset, std::span<std::byte> buf) {
  if (offset >= f.data_size) return 0;
  const std::size_t want = std::min<std::uint64_t>(buf.size(), f.data_size - offset);
  const std::size_t got = read_at(f.fd.get(), buf.data(), want, f.data_offset + offset, f.path);
  if (got != want) throw file_storage_corruption(f.path, f.data_offset + offset + got, "snapshot file ends early");
  return got;
}

/// Writes a snapshot file under its temporary name: the header and metadata, then the bytes,
/// checksummed on the way and written to the page cache in 1 MiB pieces (no sync); finish()
/// appends the trailer. Destroyed (or assigned to) before committed(), it removes the temporary
/// file. What the storages do around it differs (where the commit runs, what an I/O error
/// fails), so a failed write is reported to the `on_write_error` they pass, then rethrown.
class snapshot_file_writer {
 public:
  snapshot_file_writer(std::filesystem::path tmp, std::filesystem::path final_path, unique_fd fd, snapshot_meta meta,
                       std::span<const std::byte> encoded_meta)
      : tmp_(std::move(tmp)), final_(std::move(final_path)), fd_(std::move(fd)), meta_(std::move(meta)) {
    const auto header = file_format::encode_snapshot_header(std::uint32_t(encoded_meta.size()));
    buf_.reserve(file_format::snapshot_write_chunk);
    buf_.insert(buf_.end(), header.begin(), header.end());
    buf_.insert(buf_.end(), encoded_meta.begin(), encoded_meta.end());
    crc_ = crc32c(buf_.data(), buf_.size());
    data_offset_ = buf_.size();
  }
  snapshot_file_writer(snapshot_file_writer&& o) noexcept
      : tmp_(std::exchange(o.tmp_, {})),
        final_(std::move(o.final_)),
        fd_(std::move(o.fd_)),
        meta_(std::move(o.meta_)),
        data_offset_(o.data_offset_),
        data_size_(o.data_size_),
        file_size_(o.file_size_),
        crc_(o.crc_),
        buf_(std::move(o.buf_)) {}
  snapshot_file_writer& operator=(snapshot_file_writer&& o) noexcept {
    if (this != &o) {
      abandon();
      tmp_ = std::exchange(o.tmp_, {});
      final_ = std::move(o.final_);
      fd_ = std::move(o.fd_);
      meta_ = std::move(o.meta_);
      data_offset_ = o.data_offset_;
      data_size_ = o.data_size_;
      file_size_ = o.file_size_;
      crc_ = o.crc_;
      buf_ = std::move(o.buf_);
    }
    return *this;
  }
  snapshot_file_writer(const snapshot_file_writer&) = delete;
  snapshot_file_writer& operator=(const snapshot_file_writer&) = delete;
  ~snapshot_file_writer() { abandon(); }

  /// False once finish() handed the file on (or moved from).
  [[nodiscard]] bool is_open() const noexcept { return bool(fd_); }
  /// Snapshot bytes written so far.
  [[nodiscard]] std::uint64_t size() const noexcept { return data_size_; }
  [[nodiscard]] const std::filesystem::path& temporary_path() const noexcept { return tmp_; }

  /// Appends `bytes` to the snapshot. A write error is passed to `on_write_error`
  /// (std::exception_ptr), then rethrown.
  template <class OnWriteError>
  void write(std::span<const std::byte> bytes, OnWriteError&& on_write_error) {
    crc_ = crc32c_update(crc_, bytes.data(), bytes.size());
    data_size_ += bytes.size();
    constexpr std::size_t chunk = file_format::snapshot_write_chunk;
    if (buf_.size() + bytes.size() <= chunk) {
      buf_.insert(buf_.end(), bytes.begin(), bytes.end());
      return;
    }
    flush_buffer(on_write_error);
    if (bytes.size() >= chunk)
      write_out(bytes.data(), bytes.size(), on_write_error);
    else
      buf_.insert(buf_.end(), bytes.begin(), bytes.end());
  }

  /// Writes the trailer (data size, CRC-32C of all before) and what is still buffered, and hands
  /// the file on, open, under its final name (not yet synced or renamed: install_snapshot_file).
  /// The temporary file stays until committed().
  template <class OnWriteError>
  [[nodiscard]] std::shared_ptr<const snapshot_file> finish(OnWriteError&& on_write_error) {
    std::array<std::byte, file_format::snapshot_trailer_bytes> trailer{};
    store_u64(trailer.data(), data_size_);
    crc_ = crc32c_update(crc_, trailer.data(), 8);
    store_u32(trailer.data() + 8, crc_);
    buf_.insert(buf_.end(), trailer.begin(), trailer.end());
    flush_buffer(on_write_error);
    auto f = std::make_shared<snapshot_file>();
    f->path = final_;
    f->fd = std::move(fd_);
    f->meta = meta_;
    f->data_offset = data_offset_;
    f->data_size = data_size_;
    return f;
  }

  /// The file was renamed into place: there is no temporary file to remove any more.
  void committed() noexcept { tmp_.clear(); }

  /// Not committed: close and remove the temporary file (best effort).
  void abandon() noexcept {
    fd_.reset();
    if (!tmp_.empty()) ::unlink(tmp_.c_str());
    tmp_.clear();
  }

 private:
  template <class OnWriteError>
  void write_out(const std::byte* data, std::size_t size, OnWriteError& on_write_error) {
    try {
      write_all(fd_.get(), data, size, file_size_, tmp_);
    } catch (...) {
      on_write_error(std::current_exception());
      throw;
    }
    file_size_ += size;
  }
  template <class OnWriteError>
  void flush_buffer(OnWriteError& on_write_error) {
    if (buf_.empty()) return;
    write_out(buf_.data(), buf_.size(), on_write_error);
    buf_.clear();
  }

  std::filesystem::path tmp_;  ///< empty once committed (or moved from)
  std::filesystem::path final_;
  unique_fd fd_;
  snapshot_meta meta_;
  std::uint64_t data_offset_ = 0;  ///< header + metadata bytes
  std::uint64_t data_size_ = 0;    ///< snapshot bytes so far
  std::uint64_t file_size_ = 0;    ///< bytes written to the file so far
  std::uint32_t crc_ = 0;          ///< CRC-32C of every byte of the file so far (buffered too)
  std::vector<std::byte> buf_;     ///< bytes not yet written
};

/// The commit of a snapshot file that finish() handed on, run where its storage decides: sync
/// the temporary file, rename it to `file.path`, sync the directory `dir`, delete every other
/// snapshot file in it, and sync the directory again if any was deleted. `sync_file(fd, path)`
/// and `sync_directory()` are the storage's syncs (its options and test hook decide what they
/// do). Throws std::system_error on an I/O error.
template <class SyncFile, class SyncDirectory>
void install_snapshot_file(const snapshot_file& file, const std::filesystem::path& tmp,
                           const std::filesystem::path& dir, SyncFile&& sync_file, SyncDirectory&& sync_directory) {
  namespace ff = file_format;
  const std::filesystem::path& final_path = file.path;
  sync_file(file.fd.get(), tmp);
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) throw posix_error(errno, "rename", tmp);
  sync_directory();
  bool removed = false;
  for (const auto& de : std::filesystem::directory_iterator(dir)) {
    if (de.path() == final_path || !ff::parse_file_name(ff::indexed_file::snapshot, de.path().filename().string()))
      continue;
    if (::unlink(de.path().c_str()) != 0 && errno != ENOENT) throw posix_error(errno, "unlink", de.path());
    removed = true;
  }
  if (removed) sync_directory();
}

}  // namespace detail

}  // namespace v1
}  // namespace raft
