/* BLAKE2b (RFC 7693, unkeyed, any digest size): the state hash and the event ids.

   No library the install can rely on offers it: zlib has no BLAKE2, Debian's libb2 is not
   on a Python image or in manylinux, OpenSSL 3.0 has only the fixed 64-byte digest (a
   BLAKE2b-128 is not a truncated BLAKE2b-512) and CPython keeps its copy private. So this is
   our own; tests/unit/test_native.py holds it to the RFC's test vector and to hashlib. */
#ifndef TMF_BLAKE2B_H
#define TMF_BLAKE2B_H

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

#endif
