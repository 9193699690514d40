#pragma once

// Limits on untrusted input, shared by the coordinator and the participant
// SDK. docs/input-rules.md states them for users; change both together.

#include <cstddef>
#include <cstdint>

namespace treaty::limits {

// gtid, step / branch names, the SDK's op: 1..kMaxIdentifierBytes bytes.
inline constexpr size_t kMaxIdentifierBytes = 128;
// Participant URLs: at most this many bytes.
inline constexpr size_t kMaxUrlBytes = 2048;
// Deepest nesting of arrays/objects accepted in any JSON body or payload.
// The top-level value is depth 1, so `[[1]]` has depth 2.
inline constexpr int kMaxJsonDepth = 64;
// Deepest nesting of a step's or branch's `payload`, counted on its own
// (`[[1]]` is 2). Lower than kMaxJsonDepth so that any envelope a front end
// or the participant protocol puts around a payload stays within
// kMaxJsonDepth: a payload the coordinator accepts can always be delivered.
inline constexpr int kMaxPayloadDepth = 32;
// Bytes of a participant's answer kept as a branch's last_error / history.
inline constexpr size_t kErrorExcerptBytes = 200;

// Thrift (every server and client transport, both directions).
inline constexpr int32_t kThriftMaxMessageBytes = 16 * 1024 * 1024;
inline constexpr int32_t kThriftMaxStringBytes = 8 * 1024 * 1024;
inline constexpr int32_t kThriftMaxContainerElements = 65536;
inline constexpr int kThriftMaxRecursionDepth = 64;

}  // namespace treaty::limits
