/* A strict JSON reader for the subset the fast path takes, and its writers.

   The subset: objects whose member names are distinct and unescaped, arrays, strings (valid
   UTF-8; escapes only in values), integers of up to 18 digits, true, false, null. Anything
   else (floats, escaped names, a name twice in one object, lone surrogates, very long
   integers, "-0") makes the reader give up, and the caller hands the record to the Python
   path, which handles all of JSON (and rejects duplicate names: records.py). Inside the
   subset the writers produce exactly what orjson writes for the same values: integers and
   strings without escapes come out as they went in; escaped strings are decoded and written
   with orjson's escapes (docs/state.md#the-canonical-rendering). */
#ifndef TMF_JSON_H
#define TMF_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { J_NULL, J_FALSE, J_TRUE, J_INT, J_STR, J_ARR, J_OBJ };

typedef struct jnode {
    const char *key; /* member name when the node is an object member */
    const char *s;   /* string contents or integer text */
    struct jnode *kids;
    uint32_t klen;
    uint32_t len; /* bytes of s, or number of kids */
    uint8_t type;
    uint8_t esc; /* a string with escapes: s is its raw text */
} jnode;

typedef struct {
    jnode *arena;
    jnode *stack;
    size_t cap;
    size_t used;
    size_t sp;
    uint32_t *seen; /* open-addressing table of member indexes, to find repeated names */
    size_t seen_cap;
} jdoc;

/* 0 on success; -1 when the text is outside the subset, deeper than max_depth, or memory
   ran out. The nodes point into `text`, which must outlive them. */
int json_parse(jdoc *doc, const char *text, size_t len, int max_depth, jnode *root);
void jdoc_free(jdoc *doc);
/* 1 when the bytes are UTF-8 that Python decodes strictly. */
int utf8_valid(const char *s, size_t n);

/* Private members: a name drops the member (sub == NULL) or descends into it. */
typedef struct ptree ptree;
typedef struct {
    char *name;
    size_t len;
    ptree *sub;
} pentry;
struct ptree {
    size_t n;
    pentry *e;
};

/* 1 and the subtree (NULL: drop) when `name` is in the tree; 0 when it is not. */
int ptree_find(const ptree *t, const char *name, size_t len, const ptree **sub);
ptree *ptree_new(void);
int ptree_add(ptree *t, const char *path, size_t len);
void ptree_free(ptree *t);

/* An output buffer. Writes never fail on their own: running out of memory marks the buffer
   failed, later writes do nothing, and the caller checks `failed` once when it is done.
   Every write is a statement of its own, so bytes come out in the order of the code. */
typedef struct {
    char *p;
    size_t len;
    size_t cap;
    int failed;
} jbuf;

void jbuf_reset(jbuf *b);
void jbuf_free(jbuf *b);
/* Room for `more` bytes (0), or the buffer marked failed (-1). */
int jbuf_grow(jbuf *b, size_t more);

/* Inline: a write per token, hundreds of them per record. */
static inline void jbuf_put(jbuf *b, const void *data, size_t n) {
    if (n == 0) return; /* nothing to copy: b->p and data may be NULL */
    if ((b->failed || b->len + n > b->cap) && jbuf_grow(b, n) < 0) return;
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static inline void jbuf_byte(jbuf *b, char c) {
    if ((b->failed || b->len + 1 > b->cap) && jbuf_grow(b, 1) < 0) return;
    b->p[b->len++] = c;
}
#define JBUF_LIT(b, lit) jbuf_put((b), (lit), sizeof(lit) - 1)
void jbuf_str(jbuf *b, const char *s, size_t n); /* a JSON string of escape-free text */
/* A JSON string as orjson writes it, from text that may need escapes ("\"", "\\",
   controls). */
void jbuf_escaped(jbuf *b, const char *s, size_t n);
/* Literal text (a member's name with its colon, and whatever comes before it), then a value:
   a JSON string of escape-free text (JBUF_STR) or JSON as it is (JBUF_RAW). */
void jbuf_then_str(jbuf *b, const char *lit, size_t lit_n, const char *s, size_t n);
void jbuf_then_raw(jbuf *b, const char *lit, size_t lit_n, const char *s, size_t n);
#define JBUF_STR(b, lit, s, n) jbuf_then_str((b), (lit), sizeof(lit) - 1, (s), (n))
#define JBUF_RAW(b, lit, s, n) jbuf_then_raw((b), (lit), sizeof(lit) - 1, (s), (n))

/* An object member to write: its node and its private subtree (NULL: none). */
typedef struct {
    const jnode *node;
    const ptree *sub;
} jmember;

/* The members of `obj` that `t` does not drop, in document order, into `out` (room for
   obj->len); returns how many. */
size_t json_public_members(const jnode *obj, const ptree *t, jmember *out);
/* 1 when `node`, without the members `t` drops, is truthy in Python (a non-empty string,
   container or number other than 0, or true). */
int json_public_truthy(const jnode *node, const ptree *t);
/* Sorts members by name, as orjson's OPT_SORT_KEYS orders them (names are distinct). */
void json_sort_members(jmember *m, size_t n);

/* Writes `node` without the members `t` makes private: keys sorted (canonical) or in their
   order. */
void json_write(jbuf *b, const jnode *node, const ptree *t, int sorted);

#endif
