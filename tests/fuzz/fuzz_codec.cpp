// tests/fuzz/fuzz_codec.cpp - libFuzzer harness for the wire codec (raft/transport/codec.hpp).
//
// The input is tried as a body, as a frame and as a handshake. Whatever decodes must:
//   - be canonical: re-encode to exactly the input bytes (body, frame, handshake);
//   - decode again, from its own encoding, to an equal message;
//   - agree with the size functions (body_size, frame_size, fits);
//   - stop decoding when cut short by one byte, or when a byte is added after it.
// Whatever does not decode must fail with an error of the codec's category, never by crashing,
// reading out of bounds, allocating what the input cannot back, or throwing.
//
// Written only against decode/encode/operator==, so it covers every message type the codec
// knows, including types added later, without change.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>
#include <vector>

#include "fuzz_support.hpp"
#include "raft/transport/codec.hpp"

namespace {

namespace codec = raft::codec;

void check_error(std::error_code ec) {
  FUZZ_CHECK(ec.category() == raft::codec_category(), "a decode error outside the codec's category");
  FUZZ_CHECK(ec.value() >= static_cast<int>(raft::codec_errc::truncated) &&
                 ec.value() <= static_cast<int>(raft::codec_errc::bad_magic),
             "an unknown codec error value " + std::to_string(ec.value()));
  FUZZ_CHECK(!ec.message().empty(), "a codec error without a message");
}

/// `in` decoded as a body into `m`: check everything a decoded body promises.
void check_body(std::span<const std::byte> in, const raft::message& m) {
  FUZZ_CHECK(codec::body_size(m) == in.size(), "body_size differs from the decoded body's size");
  FUZZ_CHECK(codec::fits(m, in.size()), "a decoded body does not fit its own size");
  if (!in.empty()) FUZZ_CHECK(!codec::fits(m, in.size() - 1), "fits() accepts a limit below the body size");

  std::vector<std::byte> out{std::byte{0x5A}};  // encoding appends: keep what is there
  codec::encode_body(m, out);
  FUZZ_CHECK(out.size() == in.size() + 1 && out[0] == std::byte{0x5A}, "encode_body disturbed the vector");
  FUZZ_CHECK(std::equal(in.begin(), in.end(), out.begin() + 1), "the encoding is not canonical");

  raft::message again;
  const auto ec = codec::decode_body(std::span(out).subspan(1), again);
  FUZZ_CHECK(!ec, "a re-encoded body does not decode: " + ec.message());
  FUZZ_CHECK(again == m, "a re-encoded body decodes to another message");

  // One byte short, or one byte too many: never a message.
  raft::message scratch;
  if (!in.empty()) FUZZ_CHECK(codec::decode_body(in.first(in.size() - 1), scratch), "a cut body decodes");
  std::vector<std::byte> longer(in.begin(), in.end());
  longer.push_back(std::byte{0});
  const auto trailing = codec::decode_body(longer, scratch);
  FUZZ_CHECK(trailing == raft::codec_errc::trailing_bytes, "a body with a byte after it: " + trailing.message());

  // As a frame.
  std::vector<std::byte> frame;
  codec::encode_frame(m, frame);
  FUZZ_CHECK(frame.size() == codec::frame_size(m), "frame_size differs from the frame's size");
  FUZZ_CHECK(codec::read_frame_length(std::span(frame).first<4>()) == in.size(), "a wrong frame length prefix");
  raft::message framed;
  const auto fec = codec::decode_frame(frame, framed);
  FUZZ_CHECK(!fec, "an encoded frame does not decode: " + fec.message());
  FUZZ_CHECK(framed == m, "an encoded frame decodes to another message");
  if (in.size() > codec::body_header_bytes) {
    const auto small = codec::decode_frame(frame, scratch, in.size() - 1);
    FUZZ_CHECK(small == raft::codec_errc::oversized, "a frame over the limit: " + small.message());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);

  // 1. A body.
  raft::message m;
  if (const auto ec = codec::decode_body(in, m))
    check_error(ec);
  else
    check_body(in, m);

  // 2. A frame, under a limit taken from the input's last byte (0: the default).
  raft::message f;
  const std::size_t limit = size == 0 || data[size - 1] == 0 ? codec::default_max_frame_bytes
                                                             : std::size_t{data[size - 1]} * 7;
  if (const auto ec = codec::decode_frame(in, f, limit)) {
    check_error(ec);
  } else {
    FUZZ_CHECK(size >= codec::frame_header_bytes, "a frame shorter than its length prefix decodes");
    FUZZ_CHECK(size - codec::frame_header_bytes <= limit, "a frame over the limit decodes");
    std::vector<std::byte> out;
    codec::encode_frame(f, out);
    FUZZ_CHECK(out.size() == size && std::equal(in.begin(), in.end(), out.begin()),
               "a decoded frame does not re-encode to its bytes");
    check_body(in.subspan(codec::frame_header_bytes), f);
  }

  // 3. A handshake (the first 24 bytes).
  if (size >= codec::hello_bytes) {
    codec::hello h;
    const auto head = in.first<codec::hello_bytes>();
    if (const auto ec = codec::decode_hello(head, h)) {
      check_error(ec);
    } else {
      std::byte out[codec::hello_bytes];
      codec::encode_hello(h, out);
      FUZZ_CHECK(std::equal(head.begin(), head.end(), out), "a decoded handshake does not re-encode to its bytes");
    }
  }
  return 0;
}
