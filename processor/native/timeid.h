/* Event times (RFC 3339 with milliseconds) and event ids (UUIDv7), as processor/timefmt.py
   and processor/ids.py define them. */
#ifndef TMF_TIMEID_H
#define TMF_TIMEID_H

#include <stddef.h>
#include <stdint.h>

#include "blake2b.h"
#include "contract.h"

/* Epoch ms of the canonical form 2026-01-01T10:00:00.123Z in 1970..9999; -1 otherwise
   (the Python path parses every other form). */
int parse_canonical_ms(const char *s, size_t n, long long *ms);

/* Writes 24 characters for 0 <= ms <= MAX_MS. */
void format_ms(long long ms, char out[24]);

/* The 36-character text of a UUID's 16 bytes (lower-case hex, 8-4-4-4-12). */
void uuid_text(const uint8_t raw[16], char text[36]);

/* The 36-character id and its 16 bytes, from the prefix state of (topic, partition). */
void event_id(const blake2b_state *prefix, long long time_ms, long long offset, uint32_t index,
              uint8_t raw[16], char text[36]);

#endif
