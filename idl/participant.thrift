// Treaty participant protocol over Thrift: the coordinator calls
// ParticipantService on thrift://host:port endpoints (docs/protocol.md "Over
// Thrift", docs/2pc.md "Thrift participants"), framed transport, binary protocol.
//
// Same semantics as HTTP: delivery is at least once, so every method must be
// idempotent per (gtid, branch, op) — `idempotency_key` is
// "{gtid}/{branch}/{op}". The outcome replaces the HTTP status:
//   OK      = 2xx (for prepare: the vote says YES or READONLY)
//   FAILED  = 409: business failure / no vote; never retried for action and
//             prepare (compensate, commit and abort are retried anyway)
//   RETRY   = transient: retried (as is any exception or transport error)
// A prepare answering OK with vote NO counts as FAILED.
//
// Versioning: version 1 (PARTICIPANT_API_VERSION); changes are additive only
// (new optional fields with new ids, new methods appended).

namespace cpp treaty.rpc
namespace py treaty.participant
namespace java io.treaty.participant
namespace go treaty_participant

const i32 PARTICIPANT_API_VERSION = 1

enum Outcome {
  OK = 1,
  FAILED = 2,
  RETRY = 3,
}

enum Vote {
  YES = 1,
  NO = 2,
  READONLY = 3,
}

struct ParticipantCall {
  1: string gtid
  2: string branch             // the step's or branch's name
  3: string op                 // action, compensate, prepare, commit, abort
  4: string payload            // JSON text given at submission ("null" if none)
  5: string idempotency_key    // "{gtid}/{branch}/{op}"
  6: string traceparent        // W3C trace context
  7: optional bool one_phase   // commit without prepare (2PC single branch)
  8: optional string tracestate  // W3C tracestate of the submitter, unchanged; absent: none
}

struct ParticipantReply {
  1: Outcome outcome
  2: optional Vote vote        // prepare only; absent = YES when outcome is OK
  3: optional string message   // why, for FAILED / RETRY (shown as last_error)
}

service ParticipantService {
  // Saga step.
  ParticipantReply action(1: ParticipantCall call)
  ParticipantReply compensate(1: ParticipantCall call)
  // 2PC / TCC branch (try = prepare, confirm = commit, cancel = abort).
  ParticipantReply prepare(1: ParticipantCall call)
  ParticipantReply commit(1: ParticipantCall call)
  ParticipantReply abort(1: ParticipantCall call)
}
