/* The shapes the C path shares with the Python path, in one place.

   The module exports each of them (processor._native.CONTRACT, built in engine.c) and
   tests/unit/test_native.py compares every one with its Python twin, so neither side can
   change one alone; the engine also refuses to be built with named tuples whose fields are
   not the ones below. */
#ifndef TMF_CONTRACT_H
#define TMF_CONTRACT_H

/* processor/messages.py: the named tuples the engine builds by position. */
#define RESULT_FIELDS                                                                     \
    "outcome", "messages", "key", "entity_type", "event_types", "reason", "time_ms",      \
        "stored", "encoded"
enum {
    R_OUTCOME,
    R_MESSAGES,
    R_KEY,
    R_ENTITY_TYPE,
    R_EVENT_TYPES,
    R_REASON,
    R_TIME_MS,
    R_STORED,
    R_ENCODED,
    R_FIELDS
};
#define OUT_MESSAGE_FIELDS "topic", "partition", "key", "value", "headers"
enum { M_TOPIC, M_PARTITION, M_KEY, M_VALUE, M_HEADERS, M_FIELDS };

/* processor/decide.py Outcome: the ones the engine answers. It writes no dead letter (it
   hands such records over), so it holds no reason code. */
#define OUTCOMES "emit", "unchanged", "stale", "unknown_delete", "disabled", "replayed"
enum { O_EMIT, O_UNCHANGED, O_STALE, O_UNKNOWN_DELETE, O_DISABLED, O_REPLAYED, NOUTCOMES };

/* processor/tmf.py ENTITY_TYPES and KINDS, in their order (the spec's lists follow it). */
#define ENTITY_TYPE_NAMES "service", "resource"
enum { ET_SERVICE, ET_RESOURCE, NTYPES };
#define KIND_NAMES "Create", "AttributeValueChange", "StateChange", "OperatingStatusChange", "Delete"
enum { K_CREATE, K_AVC, K_STATE, K_OPSTATUS, K_DELETE, NKINDS };

/* processor/native.py _TYPE_BITS: JSON Schema types of the member rules. */
enum { T_STRING = 1, T_NULL = 2, T_BOOLEAN = 4, T_ARRAY = 8, T_OBJECT = 16, T_NUMBER = 32 };

/* processor/state/packed.py: the header of a packed state and its flags. */
#define PK_HEAD_FORMAT "<BBqqqBH" /* mark, flags, version, observed_at, offset, sizes */
#define PK_HEAD 29
#define PK_MARK 0x01
#define PK_DELETED 0x01
#define PK_HREF_KEYED 0x02
#define PK_ID_PACKED 0x04
#define PK_TIME_OBSERVED 0x08
#define PK_TIME_PACKED 0x10
#define PK_PROFILE_INLINE 0x20
#define PK_AVRO 0x40
#define PK_PROFILE_ID 4 /* bytes of a profile id */

/* processor/timefmt.py MIN_MS and MAX_MS: 0001-01-01T00:00:00.000Z, 9999-12-31T23:59:59.999Z */
#define MIN_MS (-62135596800000LL)
#define MAX_MS 253402300799999LL

#endif
