/* BLAKE2b (RFC 7693, unkeyed) and CRC-32 (the zlib polynomial), as the core uses them. */
#ifndef TMF_HASHES_H
#define TMF_HASHES_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t h[8];
    uint64_t t[2];
    uint8_t buf[128];
    size_t fill;
    size_t outlen;
} blake2b_state;

void blake2b_init(blake2b_state *s, size_t outlen);
void blake2b_update(blake2b_state *s, const void *data, size_t len);
void blake2b_final(blake2b_state *s, uint8_t *out);

void crc32_init(void); /* once, before any crc32_update */
uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t len);

#endif
