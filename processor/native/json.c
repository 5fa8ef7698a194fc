#include "json.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
    jdoc *doc;
    int max_depth;
} reader;

static inline void skip_ws(reader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

static int hex4(const unsigned char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Checks one escape at p (a backslash); returns its length, or -1. A \u high surrogate must
   be followed by a low one (orjson rejects lone surrogates). */
static int escape_length(const unsigned char *p, const unsigned char *end) {
    if (end - p < 2) return -1;
    switch (p[1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
        return 2;
    case 'u': {
        unsigned cp, lo;
        if (end - p < 6 || hex4(p + 2, &cp) < 0) return -1;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return -1;
        if (cp < 0xD800 || cp > 0xDBFF) return 6;
        if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || hex4(p + 8, &lo) < 0) return -1;
        return lo >= 0xDC00 && lo <= 0xDFFF ? 12 : -1;
    }
    default:
        return -1;
    }
}

/* The length of the one UTF-8 sequence at p of a multi-byte character, or -1 when it is
   not valid UTF-8 (overlong, a surrogate, beyond U+10FFFF, truncated): what Python's strict
   decoder rejects. */
static inline int utf8_sequence(const unsigned char *p, const unsigned char *end) {
    unsigned char c = *p;
    if (c >= 0xC2 && c <= 0xDF) {
        if (end - p < 2 || (p[1] & 0xC0) != 0x80) return -1;
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (end - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return -1;
        if (c == 0xE0 && p[1] < 0xA0) return -1; /* overlong */
        if (c == 0xED && p[1] > 0x9F) return -1; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (end - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
            (p[3] & 0xC0) != 0x80)
            return -1;
        if (c == 0xF0 && p[1] < 0x90) return -1; /* overlong */
        if (c == 0xF4 && p[1] > 0x8F) return -1; /* beyond U+10FFFF */
        return 4;
    }
    return -1;
}

int utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        int k = utf8_sequence(p, end);
        if (k < 0) return 0;
        p += k;
    }
    return 1;
}

/* Where the first byte of w (8 bytes of a string, in memory order) that needs a look of its
   own is: a '"', a backslash, a control or a byte of a multi-byte character; 8 when there
   is none. Each term is the classic "a byte is zero / below n" test: a borrow only runs
   upwards from a byte that matches, so the lowest flagged byte is exact. */
static inline unsigned first_special(uint64_t w) {
    const uint64_t ones = 0x0101010101010101ull;
    const uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
    const uint64_t flagged = (((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) |
                              ((w - ones * 0x20) & ~w) | w) &
                             (ones * 0x80);
    if (flagged == 0) return 8;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (unsigned)__builtin_ctzll(flagged) / 8;
#else
    return 0; /* elsewhere the bytes of this word are read one by one */
#endif
}

/* Validates the UTF-8 and escapes of a string's contents and finds its closing quote.
   Plain ASCII is skipped a word at a time. */
static int read_string(reader *r, const char **s, uint32_t *len, uint8_t *esc) {
    const unsigned char *p = ++r->p; /* after the opening quote */
    const unsigned char *end = r->end;
    const unsigned char *start = p;
    while (p < end) {
        if (end - p >= 8) {
            uint64_t word;
            memcpy(&word, p, 8);
            unsigned plain = first_special(word);
            p += plain;
            if (plain == 8) continue;
        }
        unsigned char c = *p;
        if (c == '"') {
            *s = (const char *)start;
            *len = (uint32_t)(p - start);
            r->p = p + 1;
            return 0;
        }
        if (c < 0x20) return -1;
        if (c == '\\') {
            int n = escape_length(p, end);
            if (n < 0 || esc == NULL) return -1; /* names with escapes: the Python path */
            *esc = 1;
            p += n;
            continue;
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        int n = utf8_sequence(p, end);
        if (n < 0) return -1;
        p += n;
    }
    return -1;
}

static int read_value(reader *r, jnode *out, int depth);

static inline int same_name(const jnode *a, const jnode *b) {
    return a->klen == b->klen && memcmp(a->key, b->key, a->klen) == 0;
}

/* A cheap hash of a name: its length and its first and last bytes (names are short, and
   an equal hash only costs one comparison). */
static uint32_t name_hash(const jnode *m) {
    uint32_t h = m->klen * 0x9E3779B1u;
    const unsigned char *k = (const unsigned char *)m->key;
    if (m->klen >= 4) {
        uint32_t head, tail;
        memcpy(&head, k, 4);
        memcpy(&tail, k + m->klen - 4, 4);
        h ^= head * 0x85EBCA77u;
        h ^= tail * 0xC2B2AE3Du;
    } else {
        for (uint32_t i = 0; i < m->klen; i++) h = (h ^ k[i]) * 0x01000193u;
    }
    return h ^ (h >> 15);
}

/* 1 when two members of an object share a name (the Python path rejects the record;
   orjson alone would keep the last). Small objects compare pairwise, larger ones through a
   table of member indexes; -1 when memory ran out (the caller gives up either way). */
static int repeats_a_name(jdoc *doc, const jnode *m, size_t n) {
    if (n <= 8) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (same_name(&m[i], &m[j])) return 1;
        return 0;
    }
    size_t size = 16;
    while (size < 2 * n) size *= 2;
    if (size > doc->seen_cap) {
        uint32_t *grown = realloc(doc->seen, size * sizeof(uint32_t));
        if (grown == NULL) return -1;
        doc->seen = grown;
        doc->seen_cap = size;
    }
    memset(doc->seen, 0, size * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) {
        size_t slot = name_hash(&m[i]) & (size - 1);
        while (doc->seen[slot] != 0) {
            if (same_name(&m[i], &m[doc->seen[slot] - 1])) return 1;
            slot = (slot + 1) & (size - 1);
        }
        doc->seen[slot] = (uint32_t)i + 1;
    }
    return 0;
}

static int read_container(reader *r, jnode *out, int depth, int object) {
    jdoc *doc = r->doc;
    if (depth > r->max_depth) return -1;
    r->p++;
    size_t base = doc->sp;
    skip_ws(r);
    char close = object ? '}' : ']';
    if (r->p < r->end && *r->p == close) {
        r->p++;
    } else {
        for (;;) {
            if (doc->sp >= doc->cap) return -1;
            jnode *slot = &doc->stack[doc->sp++];
            slot->key = NULL;
            slot->klen = 0;
            if (object) {
                skip_ws(r);
                if (r->p >= r->end || *r->p != '"') return -1;
                if (read_string(r, &slot->key, &slot->klen, NULL) < 0) return -1;
                skip_ws(r);
                if (r->p >= r->end || *r->p != ':') return -1;
                r->p++;
            }
            skip_ws(r);
            if (read_value(r, slot, depth + 1) < 0) return -1;
            skip_ws(r);
            if (r->p >= r->end) return -1;
            if (*r->p == ',') {
                r->p++;
                continue;
            }
            if (*r->p != close) return -1;
            r->p++;
            break;
        }
    }
    size_t n = doc->sp - base;
    if (object && repeats_a_name(doc, doc->stack + base, n)) return -1;
    if (doc->used + n > doc->cap) return -1;
    out->kids = doc->arena + doc->used;
    memcpy(out->kids, doc->stack + base, n * sizeof(jnode));
    doc->used += n;
    doc->sp = base;
    out->type = object ? J_OBJ : J_ARR;
    out->len = (uint32_t)n;
    out->s = NULL;
    return 0;
}

static int literal(reader *r, const char *word, size_t n) {
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) return -1;
    r->p += n;
    return 0;
}

static int read_value(reader *r, jnode *out, int depth) {
    if (r->p >= r->end) return -1;
    out->kids = NULL;
    out->s = NULL;
    out->len = 0;
    out->esc = 0;
    switch (*r->p) {
    case '{':
        return read_container(r, out, depth, 1);
    case '[':
        return read_container(r, out, depth, 0);
    case '"':
        out->type = J_STR;
        return read_string(r, &out->s, &out->len, &out->esc);
    case 't':
        out->type = J_TRUE;
        return literal(r, "true", 4);
    case 'f':
        out->type = J_FALSE;
        return literal(r, "false", 5);
    case 'n':
        out->type = J_NULL;
        return literal(r, "null", 4);
    default: {
        const unsigned char *start = r->p;
        const unsigned char *p = start;
        if (*p == '-') p++;
        const unsigned char *digits = p;
        while (p < r->end && *p >= '0' && *p <= '9') p++;
        size_t n = (size_t)(p - digits);
        if (n == 0 || n > 18) return -1;
        if (digits[0] == '0' && (n > 1 || digits != start)) return -1; /* 01, -0 */
        if (p < r->end && (*p == '.' || *p == 'e' || *p == 'E')) return -1;
        out->type = J_INT;
        out->s = (const char *)start;
        out->len = (uint32_t)(p - start);
        r->p = p;
        return 0;
    }
    }
}

int json_parse(jdoc *doc, const char *text, size_t len, int max_depth, jnode *root) {
    /* Every node but the root takes at least two bytes of text ("1," or "1]"). */
    size_t need = len / 2 + 4;
    if (need > doc->cap) {
        free(doc->arena);
        free(doc->stack);
        doc->arena = malloc(need * sizeof(jnode));
        doc->stack = malloc(need * sizeof(jnode));
        if (doc->arena == NULL || doc->stack == NULL) {
            free(doc->arena);
            free(doc->stack);
            doc->arena = doc->stack = NULL;
            doc->cap = 0;
            return -1;
        }
        doc->cap = need;
    }
    doc->used = doc->sp = 0;
    reader r = {(const unsigned char *)text, (const unsigned char *)text + len, doc, max_depth};
    skip_ws(&r);
    root->key = NULL;
    root->klen = 0;
    if (read_value(&r, root, 1) < 0) return -1;
    skip_ws(&r);
    return r.p == r.end ? 0 : -1;
}

void jdoc_free(jdoc *doc) {
    free(doc->arena);
    free(doc->stack);
    free(doc->seen);
    doc->arena = doc->stack = NULL;
    doc->seen = NULL;
    doc->cap = doc->seen_cap = 0;
}

/* -- private trees ------------------------------------------------------------------------ */

ptree *ptree_new(void) { return calloc(1, sizeof(ptree)); }

int ptree_find(const ptree *t, const char *name, size_t len, const ptree **sub) {
    if (t == NULL) return 0;
    for (size_t i = 0; i < t->n; i++) {
        if (t->e[i].len == len && memcmp(t->e[i].name, name, len) == 0) {
            *sub = t->e[i].sub;
            return 1;
        }
    }
    return 0;
}

static pentry *ptree_entry(ptree *t, const char *name, size_t len) {
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].len == len && memcmp(t->e[i].name, name, len) == 0) return &t->e[i];
    pentry *grown = realloc(t->e, (t->n + 1) * sizeof(pentry));
    if (grown == NULL) return NULL;
    t->e = grown;
    pentry *e = &t->e[t->n];
    e->name = malloc(len + 1);
    if (e->name == NULL) return NULL;
    memcpy(e->name, name, len);
    e->name[len] = 0;
    e->len = len;
    e->sub = ptree_new();
    if (e->sub == NULL) {
        free(e->name);
        return NULL;
    }
    t->n++;
    return e;
}

/* Same rules as processor/canonical.py compile_private: the last part drops the member, a
   shorter path that already drops it wins over a longer one. */
int ptree_add(ptree *t, const char *path, size_t len) {
    ptree *node = t;
    size_t start = 0;
    for (;;) {
        size_t end = start;
        while (end < len && path[end] != '.') end++;
        int last = end == len;
        const ptree *existing;
        int found = ptree_find(node, path + start, end - start, &existing);
        if (found && existing == NULL) return 0; /* already dropped whole */
        pentry *e = ptree_entry(node, path + start, end - start);
        if (e == NULL) return -1;
        if (last) {
            ptree_free(e->sub);
            e->sub = NULL;
            return 0;
        }
        node = e->sub;
        start = end + 1;
    }
}

void ptree_free(ptree *t) {
    if (t == NULL) return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->e[i].name);
        ptree_free(t->e[i].sub);
    }
    free(t->e);
    free(t);
}

/* -- writing ------------------------------------------------------------------------------ */

int jbuf_grow(jbuf *b, size_t more) {
    if (b->failed) return -1;
    if (b->len + more <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->failed = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void jbuf_reset(jbuf *b) {
    b->len = 0;
    b->failed = 0;
}

void jbuf_free(jbuf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void jbuf_str(jbuf *b, const char *s, size_t n) {
    jbuf_byte(b, '"');
    jbuf_put(b, s, n);
    jbuf_byte(b, '"');
}

void jbuf_then_str(jbuf *b, const char *lit, size_t lit_n, const char *s, size_t n) {
    jbuf_put(b, lit, lit_n);
    jbuf_str(b, s, n);
}

void jbuf_then_raw(jbuf *b, const char *lit, size_t lit_n, const char *s, size_t n) {
    jbuf_put(b, lit, lit_n);
    jbuf_put(b, s, n);
}

static const char HEXDIGITS[] = "0123456789abcdef";

/* One code point as orjson writes it inside a string. */
static void put_code_point(jbuf *b, unsigned cp) {
    char out[6];
    size_t n;
    if (cp < 0x20 || cp == '"' || cp == '\\') {
        out[0] = '\\';
        n = 2;
        switch (cp) {
        case '"': out[1] = '"'; break;
        case '\\': out[1] = '\\'; break;
        case '\b': out[1] = 'b'; break;
        case '\t': out[1] = 't'; break;
        case '\n': out[1] = 'n'; break;
        case '\f': out[1] = 'f'; break;
        case '\r': out[1] = 'r'; break;
        default:
            out[1] = 'u';
            out[2] = '0';
            out[3] = '0';
            out[4] = HEXDIGITS[cp >> 4];
            out[5] = HEXDIGITS[cp & 0x0F];
            n = 6;
        }
    } else if (cp < 0x80) {
        out[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    jbuf_put(b, out, n);
}

void jbuf_escaped(jbuf *b, const char *s, size_t n) {
    jbuf_byte(b, '"');
    size_t run = 0; /* the start of the bytes that need no escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\') {
            jbuf_put(b, s + run, i - run);
            put_code_point(b, c);
            run = i + 1;
        }
    }
    jbuf_put(b, s + run, n - run);
    jbuf_byte(b, '"');
}

/* The code point of the escape at p (validated by the reader), and its length. */
static size_t read_escape(const unsigned char *p, unsigned *cp) {
    switch (p[1]) {
    case 'b': *cp = '\b'; return 2;
    case 'f': *cp = '\f'; return 2;
    case 'n': *cp = '\n'; return 2;
    case 'r': *cp = '\r'; return 2;
    case 't': *cp = '\t'; return 2;
    case 'u': {
        unsigned hi = 0, lo = 0;
        hex4(p + 2, &hi);
        if (hi < 0xD800 || hi > 0xDBFF) {
            *cp = hi;
            return 6;
        }
        hex4(p + 8, &lo);
        *cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
        return 12;
    }
    default: /* " \ / */
        *cp = p[1];
        return 2;
    }
}

/* A string read with escapes, decoded and written as orjson does. */
static void write_unescaped(jbuf *b, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    jbuf_byte(b, '"');
    while (p < end) {
        const unsigned char *run = p;
        while (p < end && *p != '\\') p++;
        jbuf_put(b, run, (size_t)(p - run));
        if (p >= end) break;
        unsigned cp = 0;
        p += read_escape(p, &cp);
        put_code_point(b, cp);
    }
    jbuf_byte(b, '"');
}

static inline int key_cmp(const jnode *a, const jnode *b) {
    size_t n = a->klen < b->klen ? a->klen : b->klen;
    int c = memcmp(a->key, b->key, n);
    if (c != 0) return c;
    return (a->klen > b->klen) - (a->klen < b->klen);
}

static int member_cmp_qsort(const void *a, const void *b) {
    return key_cmp(((const jmember *)a)->node, ((const jmember *)b)->node);
}

size_t json_public_members(const jnode *obj, const ptree *t, jmember *out) {
    size_t n = 0;
    for (uint32_t i = 0; i < obj->len; i++) {
        const jnode *kid = &obj->kids[i];
        const ptree *sub = NULL;
        if (ptree_find(t, kid->key, kid->klen, &sub) && sub == NULL) continue;
        out[n].node = kid;
        out[n].sub = sub;
        n++;
    }
    return n;
}

int json_public_truthy(const jnode *node, const ptree *t) {
    switch (node->type) {
    case J_NULL:
    case J_FALSE:
        return 0;
    case J_TRUE:
        return 1;
    case J_INT:
        return !(node->len == 1 && node->s[0] == '0');
    case J_OBJ:
        for (uint32_t i = 0; i < node->len; i++) {
            const ptree *sub = NULL;
            const jnode *kid = &node->kids[i];
            if (!ptree_find(t, kid->key, kid->klen, &sub) || sub != NULL) return 1;
        }
        return 0;
    default: /* strings and arrays: a private path drops no element of an array */
        return node->len != 0;
    }
}

void json_sort_members(jmember *m, size_t n) {
    if (n > 16) {
        qsort(m, n, sizeof(jmember), member_cmp_qsort);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        jmember x = m[i];
        size_t j = i;
        while (j > 0 && key_cmp(m[j - 1].node, x.node) > 0) {
            m[j] = m[j - 1];
            j--;
        }
        m[j] = x;
    }
}

#define SMALL_OBJECT 64

static void write_object(jbuf *b, const jnode *node, const ptree *t, int sorted) {
    jmember small[SMALL_OBJECT];
    jmember *m = small;
    if (node->len > SMALL_OBJECT) {
        m = malloc(node->len * sizeof(jmember));
        if (m == NULL) {
            b->failed = 1;
            return;
        }
    }
    size_t n = json_public_members(node, t, m);
    if (sorted) json_sort_members(m, n);
    jbuf_byte(b, '{');
    for (size_t i = 0; i < n; i++) {
        const jnode *kid = m[i].node;
        if (i) jbuf_byte(b, ',');
        jbuf_str(b, kid->key, kid->klen);
        jbuf_byte(b, ':');
        json_write(b, kid, m[i].sub, sorted);
    }
    jbuf_byte(b, '}');
    if (m != small) free(m);
}

void json_write(jbuf *b, const jnode *node, const ptree *t, int sorted) {
    switch (node->type) {
    case J_NULL:
        JBUF_LIT(b, "null");
        return;
    case J_FALSE:
        JBUF_LIT(b, "false");
        return;
    case J_TRUE:
        JBUF_LIT(b, "true");
        return;
    case J_INT:
        jbuf_put(b, node->s, node->len);
        return;
    case J_STR:
        if (node->esc)
            write_unescaped(b, node->s, node->len);
        else
            jbuf_str(b, node->s, node->len);
        return;
    case J_ARR:
        /* A private path through an array applies to each element. */
        jbuf_byte(b, '[');
        for (uint32_t i = 0; i < node->len; i++) {
            if (i) jbuf_byte(b, ',');
            json_write(b, &node->kids[i], t, sorted);
        }
        jbuf_byte(b, ']');
        return;
    default:
        write_object(b, node, t, sorted);
    }
}
