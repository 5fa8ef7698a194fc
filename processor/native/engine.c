/* processor._native: the per-record path of Core.process for the common case, in C.

   Engine.process takes one JSON upsert, delete or tombstone and the key's packed state and
   returns what the Python path would (the same Result: event bytes, headers, packed state
   and changelog value), or None when the record is anything but plain: a dead letter, a
   float, an escaped string, a state kept in a rare form... The Python path then handles
   it, and stays the reference: tests/unit/test_native.py compares the two on every shape
   of input. An engine has scratch buffers of its own: one engine per Core, one Core per
   thread. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <string.h>

#include "hashes.h"
#include "json.h"
#include "timeid.h"

#define HEADROOM 65536 /* processor/core.py _HEADROOM */
#define FAST_MAX_BYTES (256 * 1024)
#define MAX_NAMES 256
#define MAX_DEPTH 128

enum { K_CREATE, K_AVC, K_STATE, K_OPSTATUS, K_DELETE, NKINDS };
enum {
    T_STRING = 1,
    T_NULL = 2,
    T_BOOLEAN = 4,
    T_ARRAY = 8,
    T_OBJECT = 16,
    T_NUMBER = 32,
};

/* packed state (processor/compact.py) */
#define PK_MARK 0x01
#define PK_DELETED 0x01
#define PK_HREF_KEYED 0x02
#define PK_ID_PACKED 0x04
#define PK_TIME_OBSERVED 0x08
#define PK_PROFILE_INLINE 0x20
#define PK_AVRO 0x40
#define PK_HEAD 29

typedef struct {
    const char *s;
    size_t n;
} span;

typedef struct rule {
    char *member;
    size_t mlen;
    unsigned mask;
    int has_enum;
    int nullable;
    span *enums;
    size_t nenum;
    long min_length;
    struct rule *items;
} rule;

typedef struct {
    int present;
    PyObject *name;  /* str */
    PyObject *topic; /* str */
    PyObject *type_header;
    PyObject *schema_header;
    span name_b, topic_b, type_json, schema_json;
} evconst;

typedef struct {
    PyObject_HEAD
    int v5, delta;
    long long max_record, max_message;
    int max_depth;
    ptree *private_tree;
    int enabled[2];
    span *state_fields[2];
    size_t nstate[2];
    rule *rules[2];
    size_t nrules[2];
    evconst ev[2][NKINDS];
    PyObject *et_str[2];
    span et_name[2]; /* their UTF-8 */
    span default_type[2];
    span input_topic;
    PyObject *spec_header, *source_header, *content_type_header;
    span source_json, constants, entity_ref;
    PyTypeObject *out_message, *result_type; /* named tuples: built as tuples */
    PyObject *profiles, *profile_ids, *profile_by_id;
    PyObject *keep; /* owns every string the spans above point into */
    jdoc doc;
    jbuf canon, out, state, cloud;
    blake2b_state *prefix;
    long long *prefix_part;
    size_t nprefix;
} Engine;

static PyObject *S_EMIT, *S_UNCHANGED, *S_STALE, *S_REPLAYED, *S_DISABLED, *S_UNKNOWN_DELETE,
    *S_INTERN;
static PyObject *H_ID, *H_TIME, *H_SUBJECT, *H_PARTITIONKEY, *H_CORRELATIONID, *H_VERSION,
    *H_PREVIOUSID, *H_TRACEPARENT;

/* -- helpers ------------------------------------------------------------------------------ */

static int span_eq(span a, const char *s, size_t n) {
    return a.n == n && memcmp(a.s, s, n) == 0;
}

static int put_varint(jbuf *b, long long n) {
    uint64_t z = ((uint64_t)n << 1) ^ (uint64_t)(n >> 63);
    if (jbuf_reserve(b, 10) < 0) return -1;
    while (z >= 0x80) {
        b->p[b->len++] = (char)((z & 0x7F) | 0x80);
        z >>= 7;
    }
    b->p[b->len++] = (char)z;
    return 0;
}

static int put_avro_bytes(jbuf *b, const char *s, size_t n) {
    if (put_varint(b, (long long)n) < 0) return -1;
    return jbuf_put(b, s, n);
}

static int put_avro_opt(jbuf *b, const char *s, size_t n) {
    if (s == NULL) return jbuf_put(b, "\0", 1);
    if (jbuf_put(b, "\2", 1) < 0) return -1;
    return put_avro_bytes(b, s, n);
}

static int put_le(jbuf *b, uint64_t v, int n) {
    if (jbuf_reserve(b, (size_t)n) < 0) return -1;
    for (int i = 0; i < n; i++) b->p[b->len++] = (char)(v >> (8 * i));
    return 0;
}

static const jnode *member(const jnode *obj, const char *name, size_t n) {
    for (uint32_t i = 0; i < obj->len; i++)
        if (obj->kids[i].klen == n && memcmp(obj->kids[i].key, name, n) == 0)
            return &obj->kids[i];
    return NULL;
}

static PyObject *header(PyObject *name, const char *s, size_t n) {
    PyObject *v = PyBytes_FromStringAndSize(s, (Py_ssize_t)n);
    if (v == NULL) return NULL;
    PyObject *t = PyTuple_Pack(2, name, v);
    Py_DECREF(v);
    return t;
}

static int utf8_of(PyObject *o, span *out) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    if (s == NULL) return -1;
    out->s = s;
    out->n = (size_t)n;
    return 0;
}

/* -- instance rules ----------------------------------------------------------------------- */

static size_t codepoints(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* 1 when the value passes the rule; 0 when it may not (the Python path says why). */
static int rule_ok(const rule *r, const jnode *v) {
    if (v->esc && (r->has_enum || r->min_length >= 0)) return 0; /* compared decoded: Python */
    if (r->mask) {
        unsigned t = v->type == J_STR     ? T_STRING
                     : v->type == J_NULL  ? T_NULL
                     : v->type == J_ARR   ? T_ARRAY
                     : v->type == J_OBJ   ? T_OBJECT
                     : v->type == J_INT   ? T_NUMBER
                                          : T_BOOLEAN;
        if (!(r->mask & t)) return 0;
    }
    if (r->has_enum && !(v->type == J_NULL && r->nullable)) {
        if (v->type != J_STR) return 0;
        size_t i;
        for (i = 0; i < r->nenum; i++)
            if (span_eq(r->enums[i], v->s, v->len)) break;
        if (i == r->nenum) return 0;
    }
    if (r->min_length >= 0 && v->type == J_STR && codepoints(v->s, v->len) < (size_t)r->min_length)
        return 0;
    if (r->items != NULL && v->type == J_ARR)
        for (uint32_t i = 0; i < v->len; i++)
            if (!rule_ok(r->items, &v->kids[i])) return 0;
    return 1;
}

static void rule_free(rule *r) {
    if (r == NULL) return;
    free(r->enums);
    rule_free(r->items);
    free(r->items);
}

/* (member, mask, enum strings or None, nullable, min_length or -1, items or None) */
static int rule_from(PyObject *spec, rule *r, PyObject *keep) {
    PyObject *name, *enums, *items;
    unsigned mask;
    int nullable;
    long min_length;
    memset(r, 0, sizeof *r);
    if (!PyArg_ParseTuple(spec, "OIOplO", &name, &mask, &enums, &nullable, &min_length, &items))
        return -1;
    if (name != Py_None) {
        span s;
        if (utf8_of(name, &s) < 0 || PyList_Append(keep, name) < 0) return -1;
        r->member = (char *)s.s;
        r->mlen = s.n;
    }
    r->mask = mask;
    r->nullable = nullable;
    r->min_length = min_length;
    if (enums != Py_None) {
        r->has_enum = 1;
        Py_ssize_t n = PySequence_Size(enums);
        if (n < 0) return -1;
        r->enums = calloc((size_t)n + 1, sizeof(span));
        if (r->enums == NULL) return -1;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *e = PySequence_GetItem(enums, i);
            if (e == NULL) return -1;
            int rc = PyList_Append(keep, e);
            if (rc == 0 && utf8_of(e, &r->enums[r->nenum]) == 0) r->nenum++;
            Py_DECREF(e);
            if (rc < 0 || PyErr_Occurred()) return -1;
        }
    }
    if (items != Py_None) {
        r->items = malloc(sizeof(rule));
        if (r->items == NULL || rule_from(items, r->items, keep) < 0) return -1;
    }
    return 0;
}

/* -- engine construction ------------------------------------------------------------------ */

static int keep_span(Engine *e, PyObject *spec, const char *key, span *out) {
    PyObject *v = PyDict_GetItemString(spec, key);
    if (v == NULL) {
        PyErr_Format(PyExc_KeyError, "engine spec lacks %s", key);
        return -1;
    }
    if (PyList_Append(e->keep, v) < 0) return -1;
    if (PyBytes_Check(v)) {
        out->s = PyBytes_AS_STRING(v);
        out->n = (size_t)PyBytes_GET_SIZE(v);
        return 0;
    }
    return utf8_of(v, out);
}

static PyObject *get(PyObject *spec, const char *key) {
    PyObject *v = PyDict_GetItemString(spec, key);
    if (v == NULL) PyErr_Format(PyExc_KeyError, "engine spec lacks %s", key);
    return v;
}

static int engine_init(Engine *self, PyObject *args, PyObject *kwds) {
    (void)kwds;
    PyObject *spec;
    if (!PyArg_ParseTuple(args, "O!", &PyDict_Type, &spec)) return -1;
    self->keep = PyList_New(0);
    if (self->keep == NULL) return -1;
    PyObject *v;
    if ((v = get(spec, "v5")) == NULL) return -1;
    self->v5 = PyObject_IsTrue(v);
    if ((v = get(spec, "delta")) == NULL) return -1;
    self->delta = PyObject_IsTrue(v);
    if ((v = get(spec, "max_record_bytes")) == NULL) return -1;
    self->max_record = PyLong_AsLongLong(v);
    if ((v = get(spec, "max_message_bytes")) == NULL) return -1;
    self->max_message = PyLong_AsLongLong(v);
    if ((v = get(spec, "max_json_depth")) == NULL) return -1;
    long depth = PyLong_AsLong(v);
    if (PyErr_Occurred()) return -1;
    /* The reader and writers recurse: deeper documents take the Python path. */
    self->max_depth = depth > MAX_DEPTH ? MAX_DEPTH : (int)depth;
    if (keep_span(self, spec, "input_topic", &self->input_topic) < 0 ||
        keep_span(self, spec, "source_json", &self->source_json) < 0 ||
        keep_span(self, spec, "constants_json", &self->constants) < 0 ||
        keep_span(self, spec, "entity_ref_json", &self->entity_ref) < 0)
        return -1;
    const char *objs[] = {"spec_header", "source_header", "content_type_header", "out_message",
                          "result", "profiles"};
    PyObject **slots[] = {&self->spec_header, &self->source_header, &self->content_type_header,
                          (PyObject **)&self->out_message, (PyObject **)&self->result_type,
                          &self->profiles};
    for (int i = 0; i < 6; i++) {
        if ((v = get(spec, objs[i])) == NULL) return -1;
        Py_INCREF(v);
        *slots[i] = v;
    }
    if (!PyType_Check(self->out_message) || !PyType_IsSubtype(self->out_message, &PyTuple_Type) ||
        !PyType_Check(self->result_type) || !PyType_IsSubtype(self->result_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "out_message and result must be named tuples");
        return -1;
    }
    self->profile_ids = PyObject_GetAttrString(self->profiles, "ids");
    self->profile_by_id = PyObject_GetAttrString(self->profiles, "by_id");
    if (self->profile_ids == NULL || self->profile_by_id == NULL) return -1;
    if (!PyDict_Check(self->profile_ids) || !PyDict_Check(self->profile_by_id)) {
        PyErr_SetString(PyExc_TypeError, "profiles.ids and profiles.by_id must be dicts");
        return -1;
    }
    self->private_tree = ptree_new();
    if (self->private_tree == NULL) return PyErr_NoMemory(), -1;
    if ((v = get(spec, "private")) == NULL) return -1;
    Py_ssize_t np = PySequence_Size(v);
    if (np < 0) return -1;
    for (Py_ssize_t i = 0; i < np; i++) {
        PyObject *path = PySequence_GetItem(v, i);
        span s = {0};
        int rc = path == NULL ? -1 : utf8_of(path, &s);
        if (rc == 0 && ptree_add(self->private_tree, s.s, s.n) < 0) rc = -1, PyErr_NoMemory();
        Py_XDECREF(path);
        if (rc < 0) return -1;
    }
    PyObject *types = get(spec, "entity_types"); /* "service", "resource": a dict each */
    if (types == NULL) return -1;
    const char *ets[2] = {"service", "resource"};
    for (int t = 0; t < 2; t++) {
        PyObject *et = PyDict_GetItemString(types, ets[t]);
        if (et == NULL || !PyDict_Check(et)) {
            PyErr_Format(PyExc_KeyError, "engine spec lacks entity type %s", ets[t]);
            return -1;
        }
        if ((v = get(et, "name")) == NULL) return -1;
        Py_INCREF(v);
        self->et_str[t] = v;
        if (utf8_of(v, &self->et_name[t]) < 0) return -1;
        if ((v = get(et, "enabled")) == NULL) return -1;
        self->enabled[t] = PyObject_IsTrue(v);
        if (keep_span(self, et, "default_type", &self->default_type[t]) < 0) return -1;
        if ((v = get(et, "state_fields")) == NULL) return -1;
        Py_ssize_t n = PySequence_Size(v);
        if (n < 0) return -1;
        self->state_fields[t] = calloc((size_t)n + 1, sizeof(span));
        if (self->state_fields[t] == NULL) return PyErr_NoMemory(), -1;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *f = PySequence_GetItem(v, i);
            int rc = f == NULL ? -1 : PyList_Append(self->keep, f);
            if (rc == 0) rc = utf8_of(f, &self->state_fields[t][i]);
            Py_XDECREF(f);
            if (rc < 0) return -1;
        }
        self->nstate[t] = (size_t)n;
        if ((v = get(et, "rules")) == NULL) return -1;
        n = PySequence_Size(v);
        if (n < 0) return -1;
        self->rules[t] = calloc((size_t)n + 1, sizeof(rule));
        if (self->rules[t] == NULL) return PyErr_NoMemory(), -1;
        self->nrules[t] = (size_t)n;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *r = PySequence_GetItem(v, i);
            int rc = r == NULL ? -1 : rule_from(r, &self->rules[t][i], self->keep);
            Py_XDECREF(r);
            if (rc < 0) return -1;
        }
        if ((v = get(et, "events")) == NULL) return -1;
        if (PySequence_Size(v) != NKINDS) {
            PyErr_SetString(PyExc_ValueError, "events must list every kind");
            return -1;
        }
        for (int k = 0; k < NKINDS; k++) {
            PyObject *c = PySequence_GetItem(v, k);
            if (c == NULL) return -1;
            int rc = PyList_Append(self->keep, c);
            Py_DECREF(c);
            if (rc < 0) return -1;
            if (c == Py_None) continue;
            evconst *ev = &self->ev[t][k];
            PyObject *tj, *sj;
            if (!PyArg_ParseTuple(c, "UUOOSS", &ev->name, &ev->topic, &ev->type_header,
                                  &ev->schema_header, &tj, &sj))
                return -1;
            if (utf8_of(ev->name, &ev->name_b) < 0 || utf8_of(ev->topic, &ev->topic_b) < 0)
                return -1;
            ev->type_json = (span){PyBytes_AS_STRING(tj), (size_t)PyBytes_GET_SIZE(tj)};
            ev->schema_json = (span){PyBytes_AS_STRING(sj), (size_t)PyBytes_GET_SIZE(sj)};
            ev->present = 1;
        }
    }
    return 0;
}

static void engine_dealloc(Engine *self) {
    ptree_free(self->private_tree);
    for (int t = 0; t < 2; t++) {
        free(self->state_fields[t]);
        if (self->rules[t] != NULL)
            for (size_t i = 0; i < self->nrules[t]; i++) rule_free(&self->rules[t][i]);
        free(self->rules[t]);
        Py_XDECREF(self->et_str[t]);
    }
    Py_XDECREF(self->spec_header);
    Py_XDECREF(self->source_header);
    Py_XDECREF(self->content_type_header);
    Py_XDECREF(self->out_message);
    Py_XDECREF(self->result_type);
    Py_XDECREF(self->profiles);
    Py_XDECREF(self->profile_ids);
    Py_XDECREF(self->profile_by_id);
    Py_XDECREF(self->keep);
    jdoc_free(&self->doc);
    free(self->canon.p);
    free(self->out.p);
    free(self->state.p);
    free(self->cloud.p);
    free(self->prefix);
    free(self->prefix_part);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The hash state after "<topic>\0<partition>\0", per partition (processor/ids.py). */
static const blake2b_state *id_prefix(Engine *e, long long partition) {
    for (size_t i = 0; i < e->nprefix; i++)
        if (e->prefix_part[i] == partition) return &e->prefix[i];
    if (e->nprefix >= 4096) e->nprefix = 0; /* a bounded cache */
    if (e->prefix == NULL) {
        e->prefix = malloc(4096 * sizeof(blake2b_state));
        e->prefix_part = malloc(4096 * sizeof(long long));
        if (e->prefix == NULL || e->prefix_part == NULL) return NULL;
    }
    blake2b_state *s = &e->prefix[e->nprefix];
    char num[24];
    int n = snprintf(num, sizeof num, "%lld", partition);
    blake2b_init(s, 10);
    blake2b_update(s, e->input_topic.s, e->input_topic.n);
    blake2b_update(s, "\0", 1);
    blake2b_update(s, num, (size_t)n);
    blake2b_update(s, "\0", 1);
    e->prefix_part[e->nprefix++] = partition;
    return s;
}

/* -- the previous state ------------------------------------------------------------------- */

typedef struct {
    int present;
    int deleted;
    int et; /* 0 service, 1 resource */
    long long version, observed_at, offset;
    span hash, digests, names;
    span href; /* href.s NULL: no href */
    char href_buf[1024];
    PyObject *profile; /* borrowed from the profile table */
    const char *pid;
    int has_id;
    char id[36];
} prev_state;

/* 0: read; -1: a form only the Python path reads. */
static int read_prev(Engine *e, PyObject *packed, span key, prev_state *st) {
    memset(st, 0, sizeof *st);
    if (packed == Py_None) return 0;
    if (!PyBytes_Check(packed)) return -1;
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(packed);
    size_t n = (size_t)PyBytes_GET_SIZE(packed);
    if (n < PK_HEAD || p[0] != PK_MARK) return -1;
    unsigned flags = p[1];
    if (flags == PK_AVRO || (flags & PK_PROFILE_INLINE)) return -1;
    int64_t q[3];
    memcpy(q, p + 2, 24); /* little-endian hosts only, checked at import */
    size_t hash_len = p[26];
    size_t dig_len = (size_t)p[27] | ((size_t)p[28] << 8);
    size_t pos = PK_HEAD;
    if (pos + hash_len + dig_len + 4 > n) return -1;
    st->hash = (span){(const char *)p + pos, hash_len};
    pos += hash_len;
    st->digests = (span){(const char *)p + pos, dig_len};
    pos += dig_len;
    st->pid = (const char *)p + pos;
    PyObject *pid = PyBytes_FromStringAndSize(st->pid, 4);
    if (pid == NULL) return -2;
    PyObject *profile = PyDict_GetItemWithError(e->profile_by_id, pid);
    Py_DECREF(pid);
    if (profile == NULL) return PyErr_Occurred() ? -2 : -1;
    pos += 4;
    if (!PyTuple_Check(profile) || PyTuple_GET_SIZE(profile) != 5) return -1;
    PyObject *et = PyTuple_GET_ITEM(profile, 0);
    if (PyUnicode_Check(et) && PyUnicode_CompareWithASCIIString(et, "service") == 0)
        st->et = 0;
    else if (PyUnicode_Check(et) && PyUnicode_CompareWithASCIIString(et, "resource") == 0)
        st->et = 1;
    else
        return -1;
    PyObject *names = PyTuple_GET_ITEM(profile, 1);
    if (!PyUnicode_Check(names) || utf8_of(names, &st->names) < 0) return PyErr_Clear(), -1;
    if (flags & PK_HREF_KEYED) {
        PyObject *prefix = PyTuple_GET_ITEM(profile, 4);
        span pre;
        if (!PyUnicode_Check(prefix) || utf8_of(prefix, &pre) < 0) return PyErr_Clear(), -1;
        if (pre.n + key.n > sizeof st->href_buf) return -1;
        memcpy(st->href_buf, pre.s, pre.n);
        memcpy(st->href_buf + pre.n, key.s, key.n);
        st->href = (span){st->href_buf, pre.n + key.n};
    } else {
        if (pos >= n) return -1;
        if (p[pos] == 2) {
            pos++;
            uint64_t z = 0;
            int shift = 0;
            for (;;) {
                if (pos >= n || shift > 63) return -1;
                unsigned char b = p[pos++];
                z |= (uint64_t)(b & 0x7F) << shift;
                if (b < 0x80) break;
                shift += 7;
            }
            long long len = (long long)(z >> 1) ^ -(long long)(z & 1);
            if (len < 0 || (size_t)len > n - pos) return -1;
            st->href = (span){(const char *)p + pos, (size_t)len};
            pos += (size_t)len;
        } else if (p[pos] == 0) {
            pos++;
        } else {
            return -1;
        }
    }
    if (flags & PK_ID_PACKED) {
        if (pos + 16 > n) return -1;
        uuid_text(p + pos, st->id);
        st->has_id = 1;
    } else if (pos >= n || p[pos] != 0) {
        return -1; /* an id in a form of its own */
    }
    st->present = 1;
    st->deleted = (flags & PK_DELETED) != 0;
    st->version = q[0];
    st->observed_at = q[1];
    st->offset = q[2];
    st->profile = profile;
    return 0;
}

/* -- which attributes changed (processor/canonical.py changed_attributes, decide._changes) -- */

typedef struct {
    span v[MAX_NAMES];
    size_t n;
} nameset;

static int set_has(const nameset *s, const char *p, size_t n) {
    for (size_t i = 0; i < s->n; i++)
        if (span_eq(s->v[i], p, n)) return 1;
    return 0;
}

static int set_add(nameset *s, const char *p, size_t n) {
    if (set_has(s, p, n)) return 0;
    if (s->n >= MAX_NAMES) return -1;
    s->v[s->n++] = (span){p, n};
    return 0;
}

/* Splits NUL-joined names; -1 when there are too many. "" has none. */
static int split_names(span names, span *out, size_t *count) {
    *count = 0;
    if (names.n == 0) return 0;
    size_t start = 0;
    for (size_t i = 0; i <= names.n; i++) {
        if (i == names.n || names.s[i] == 0) {
            if (*count >= MAX_NAMES) return -1;
            out[(*count)++] = (span){names.s + start, i - start};
            start = i + 1;
        }
    }
    return 0;
}

static uint32_t be32(const char *p) {
    const unsigned char *u = (const unsigned char *)p;
    return ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | u[3];
}

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, n);
    return c != 0 ? c : (x->n > y->n) - (x->n < y->n);
}

/* Fills changed/removed; 1 when the fingerprints could be compared, 0 when not. */
static int diff_attributes(span old_names, span old_dig, span new_names, span new_dig,
                           span *scratch_old, span *scratch_new, nameset *changed,
                           nameset *removed) {
    size_t no, nn;
    if (split_names(new_names, scratch_new, &nn) < 0) return -1;
    if (nn * 4 != new_dig.n) return 0;
    if (span_eq(old_names, new_names.s, new_names.n)) {
        if (old_dig.n != new_dig.n) return -1;
        for (size_t i = 0; i < nn; i++)
            if (memcmp(old_dig.s + 4 * i, new_dig.s + 4 * i, 4) != 0 &&
                set_add(changed, scratch_new[i].s, scratch_new[i].n) < 0)
                return -1;
        return 1;
    }
    if (split_names(old_names, scratch_old, &no) < 0) return -1;
    if (no * 4 != old_dig.n) return 0;
    for (size_t i = 0; i < nn; i++) {
        /* dict(zip(...)): the last of equal old names wins */
        int found = 0;
        uint32_t old = 0;
        for (size_t j = no; j-- > 0;)
            if (span_eq(scratch_old[j], scratch_new[i].s, scratch_new[i].n)) {
                found = 1;
                old = be32(old_dig.s + 4 * j);
                break;
            }
        if ((!found || old != be32(new_dig.s + 4 * i)) &&
            set_add(changed, scratch_new[i].s, scratch_new[i].n) < 0)
            return -1;
    }
    for (size_t j = 0; j < no; j++) {
        int kept = 0;
        for (size_t i = 0; i < nn && !kept; i++)
            kept = span_eq(scratch_new[i], scratch_old[j].s, scratch_old[j].n);
        if (!kept && (set_add(removed, scratch_old[j].s, scratch_old[j].n) < 0 ||
                      set_add(changed, scratch_old[j].s, scratch_old[j].n) < 0))
            return -1;
    }
    return 1;
}

typedef struct {
    int kind;
    span changed[MAX_NAMES];
    size_t nchanged;
} planned;

/* -- process ------------------------------------------------------------------------------ */

/* An instance of a named tuple type, its items stolen (NULL items: fails, releasing the rest). */
static PyObject *named(PyTypeObject *type, PyObject **items, Py_ssize_t n) {
    PyObject *t = NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        if (items[i] == NULL) goto fail;
    t = type->tp_alloc(type, n);
    if (t == NULL) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) PyTuple_SET_ITEM(t, i, items[i]);
    return t;
fail:
    for (Py_ssize_t i = 0; i < n; i++) Py_XDECREF(items[i]);
    return NULL;
}

/* Result(outcome, [], key, entity_type=et): a record that emits nothing. */
static PyObject *small_result(Engine *e, PyObject *outcome, PyObject *key, PyObject *et) {
    PyObject *items[9] = {Py_NewRef(outcome), PyList_New(0), Py_NewRef(key),
                          Py_NewRef(et),      PyTuple_New(0), Py_NewRef(Py_None),
                          Py_NewRef(Py_None), Py_NewRef(Py_None), Py_NewRef(Py_None)};
    return named(e->result_type, items, 9);
}

#define PUT(b, lit) jbuf_put((b), (lit), sizeof(lit) - 1)

static size_t varint_size(long long n) {
    uint64_t z = ((uint64_t)n << 1) ^ (uint64_t)(n >> 63);
    size_t k = 1;
    while (z >= 0x80) {
        z >>= 7;
        k++;
    }
    return k;
}

static int truthy(const jnode *v) {
    switch (v->type) {
    case J_NULL:
    case J_FALSE:
        return 0;
    case J_TRUE:
        return 1;
    case J_INT:
        return !(v->len == 1 && v->s[0] == '0');
    default:
        return v->len != 0;
    }
}

static int str_eq(PyObject *o, const char *s, size_t n) {
    if (s == NULL) return o == Py_None;
    if (!PyUnicode_Check(o)) return 0;
    span u;
    if (utf8_of(o, &u) < 0) {
        PyErr_Clear();
        return 0;
    }
    return span_eq(u, s, n);
}

static PyObject *str_or_none(const char *s, size_t n) {
    if (s == NULL) Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, NULL);
}

#define BAIL() \
    do {       \
        result = Py_None; \
        Py_INCREF(result); \
        goto done; \
    } while (0)
#define FAIL() goto done

typedef struct {
    int et; /* 0 service, 1 resource, -1 a tombstone's (the state says) */
    int is_delete;
    const jnode *corr, *inst;
    long long time_ms;
} envelope;

/* The change record's envelope (processor/records.py): 0 when it is exactly what the Python
   path accepts as it is; -1 for anything else. */
static int read_envelope(Engine *e, jnode *root, const char *vs, size_t vn, const char *ks,
                         size_t kn, long long timestamp, envelope *env) {
    if (json_parse(&e->doc, vs, vn, e->max_depth, root) < 0 || root->type != J_OBJ) return -1;

    /* the envelope (processor/records.py): only what the Python path accepts as it is */
    const jnode *et_node = NULL, *obs = NULL, *corr = NULL, *inst = NULL;
    unsigned seen = 0;
    int is_delete = 0;
    for (uint32_t i = 0; i < root->len; i++) {
        const jnode *m = &root->kids[i];
        if (m->esc) return -1; /* compared or copied as they are: no escapes */
        static const char *names[] = {"entityType", "operation", "id", "observedAt",
                                      "correlationId", "instance"};
        int k;
        for (k = 0; k < 6; k++)
            if (m->klen == strlen(names[k]) && memcmp(m->key, names[k], m->klen) == 0) break;
        if (k == 6 || (seen & (1u << k))) return -1;
        seen |= 1u << k;
        switch (k) {
        case 0:
            if (m->type != J_STR) return -1;
            et_node = m;
            break;
        case 1:
            if (m->type == J_STR && m->len == 6 && memcmp(m->s, "delete", 6) == 0)
                is_delete = 1;
            else if (m->type != J_STR || m->len != 6 || memcmp(m->s, "upsert", 6) != 0)
                return -1;
            break;
        case 2:
            if (m->type == J_NULL) break;
            if (m->type != J_STR || m->len != kn || memcmp(m->s, ks, kn) != 0) return -1;
            break;
        case 3:
            if (m->type == J_STR)
                obs = m;
            else if (m->type != J_NULL)
                return -1;
            break;
        case 4:
            if (m->type == J_STR)
                corr = m;
            else if (m->type != J_NULL)
                return -1;
            break;
        default:
            inst = m;
        }
    }
    if (et_node == NULL || (inst == NULL && !is_delete)) return -1;
    if (inst != NULL && inst->type == J_NULL && is_delete) inst = NULL;
    if (inst != NULL && inst->type != J_OBJ) return -1;
    int et;
    if (et_node->len == 7 && memcmp(et_node->s, "service", 7) == 0)
        et = 0;
    else if (et_node->len == 8 && memcmp(et_node->s, "resource", 8) == 0)
        et = 1;
    else
        return -1;
    const jnode *iid = inst != NULL ? member(inst, "id", 2) : NULL;
    if (inst != NULL && (iid == NULL || iid->type != J_STR || iid->esc || iid->len != kn ||
                         memcmp(iid->s, ks, kn) != 0))
        return -1;
    long long time_ms;
    if (obs != NULL) {
        if (parse_canonical_ms(obs->s, obs->len, &time_ms) < 0) return -1;
    } else {
        if (timestamp < 0 || timestamp > MAX_MS) return -1;
        time_ms = timestamp;
    }
    env->et = et;
    env->is_delete = is_delete;
    env->corr = corr;
    env->inst = inst;
    env->time_ms = time_ms;
    return 0;
}

static PyObject *engine_process(Engine *e, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "process(value, key, key_text, partition, offset, "
                                         "timestamp_ms, traceparent, packed)");
        return NULL;
    }
    PyObject *value = args[0], *key = args[1], *key_text = args[2], *traceparent = args[6];
    PyObject *result = NULL, *messages = NULL, *types = NULL, *encoded = NULL, *packed = NULL;
    PyObject *pid_obj = NULL;
    if ((value != Py_None && !PyBytes_Check(value)) || !PyBytes_Check(key) ||
        (traceparent != Py_None && !PyBytes_Check(traceparent)))
        Py_RETURN_NONE;
    const char *vs = value == Py_None ? "" : PyBytes_AS_STRING(value);
    size_t vn = value == Py_None ? 0 : (size_t)PyBytes_GET_SIZE(value);
    const char *ks = PyBytes_AS_STRING(key);
    size_t kn = (size_t)PyBytes_GET_SIZE(key);
    long long partition = PyLong_AsLongLong(args[3]);
    long long offset = PyLong_AsLongLong(args[4]);
    long long timestamp = args[5] == Py_None ? -1 : PyLong_AsLongLong(args[5]);
    if (PyErr_Occurred()) return NULL;
    if (kn == 0 || (long long)vn > e->max_record || vn > FAST_MAX_BYTES) Py_RETURN_NONE;
    /* The key is written into JSON as it is (payload id, subject, default correlation id):
       one that would need escaping takes the Python path. A tombstone's key is checked by
       nothing else. */
    for (size_t i = 0; i < kn; i++) {
        unsigned char c = (unsigned char)ks[i];
        if (c < 0x20 || c == '"' || c == '\\') Py_RETURN_NONE;
    }

    jnode root;
    envelope env;
    if (value == Py_None) { /* a tombstone: a delete of whatever the state holds */
        if (timestamp < 0 || timestamp > MAX_MS) Py_RETURN_NONE;
        env = (envelope){-1, 1, NULL, NULL, timestamp};
    } else if (read_envelope(e, &root, vs, vn, ks, kn, timestamp, &env) < 0) {
        Py_RETURN_NONE;
    }
    int et = env.et, is_delete = env.is_delete;
    const jnode *corr = env.corr, *inst = env.inst;
    long long time_ms = env.time_ms;
    const char *corr_s = corr != NULL ? corr->s : ks;
    size_t corr_n = corr != NULL ? corr->len : kn;

    /* decide (processor/decide.py) */
    prev_state st;
    int rc = read_prev(e, args[7], (span){ks, kn}, &st);
    if (rc == -2) return NULL;
    if (rc < 0) Py_RETURN_NONE;
    if (et < 0) { /* a tombstone */
        if (!st.present) return small_result(e, S_UNKNOWN_DELETE, key_text, Py_None);
        et = st.et;
    }
    PyObject *et_str = e->et_str[et];
    if (st.present) {
        if (st.et != et) Py_RETURN_NONE; /* a dead letter: the Python path writes it */
        if (offset <= st.offset) return small_result(e, S_REPLAYED, key_text, et_str);
    }
    if (!e->enabled[et]) return small_result(e, S_DISABLED, key_text, et_str);
    if (st.present && time_ms < st.observed_at) return small_result(e, S_STALE, key_text, et_str);

    jmember pubs[MAX_NAMES];
    size_t np = 0;
    uint8_t hash[16];
    size_t hash_n = 16;
    char names_buf[8192];
    char digs_buf[4 * MAX_NAMES];
    size_t names_n = 0;
    const jnode *href = NULL, *at_type = NULL; /* the instance's */
    const char *href_s = NULL, *at_s = NULL;    /* the state's */
    size_t href_n = 0, at_n = 0;
    planned plans[3];
    int nplans = 0;
    nameset removed;
    removed.n = 0;
    if (is_delete) {
        if (!st.present || st.deleted) return small_result(e, S_UNKNOWN_DELETE, key_text, et_str);
        hash_n = 0;
        plans[0].kind = K_DELETE;
        plans[0].nchanged = 0;
        nplans = 1;
        href_s = st.href.s;
        href_n = st.href.n;
        PyObject *at = PyTuple_GET_ITEM(st.profile, 2);
        if (at != Py_None) {
            span u;
            if (!PyUnicode_Check(at) || utf8_of(at, &u) < 0) {
                PyErr_Clear();
                Py_RETURN_NONE;
            }
            at_s = u.s;
            at_n = u.n;
        }
    } else {
        if (inst->len > MAX_NAMES) Py_RETURN_NONE;
        np = json_public_members(inst, e->private_tree, pubs);
        /* canonical rendering, sorted members; each member's value bytes give its fingerprint
           (start/end by the member's place in the instance) */
        jmember sorted[MAX_NAMES];
        size_t start[MAX_NAMES], end[MAX_NAMES];
        memcpy(sorted, pubs, np * sizeof(jmember));
        if (json_sort_members(sorted, np) < 0) Py_RETURN_NONE; /* a duplicate member */
        jbuf *cb = &e->canon;
        cb->len = 0;
        if (PUT(cb, "{") < 0) return PyErr_NoMemory();
        for (size_t i = 0; i < np; i++) {
            const jnode *m = sorted[i].node;
            size_t k = (size_t)(m - inst->kids);
            if ((i && PUT(cb, ",") < 0) || jbuf_str(cb, m->key, m->klen) < 0 || PUT(cb, ":") < 0)
                return PyErr_NoMemory();
            start[k] = cb->len;
            if (json_write(cb, m, sorted[i].sub, 1) < 0) Py_RETURN_NONE; /* duplicate, or memory */
            end[k] = cb->len;
        }
        if (PUT(cb, "}") < 0) return PyErr_NoMemory();
        blake2b_state hs;
        blake2b_init(&hs, 16);
        blake2b_update(&hs, cb->p, cb->len);
        blake2b_final(&hs, hash);
        if (st.present && !st.deleted && st.hash.n == 16 && memcmp(st.hash.s, hash, 16) == 0)
            return small_result(e, S_UNCHANGED, key_text, et_str);
        for (size_t r = 0; r < e->nrules[et]; r++) {
            const rule *ru = &e->rules[et][r];
            for (size_t i = 0; i < np; i++) {
                const jnode *m = pubs[i].node;
                if (m->klen == ru->mlen && memcmp(m->key, ru->member, ru->mlen) == 0) {
                    if (!rule_ok(ru, m)) Py_RETURN_NONE; /* schema_violation, said by Python */
                    break;
                }
            }
        }
        for (size_t i = 0; i < np; i++) {
            const jnode *m = pubs[i].node;
            if (names_n + m->klen + 1 > sizeof names_buf) Py_RETURN_NONE;
            if (i) names_buf[names_n++] = 0;
            memcpy(names_buf + names_n, m->key, m->klen);
            names_n += m->klen;
            size_t k = (size_t)(m - inst->kids);
            uint32_t crc = crc32_update(0, (const uint8_t *)cb->p + start[k], end[k] - start[k]);
            digs_buf[4 * i] = (char)(crc >> 24);
            digs_buf[4 * i + 1] = (char)(crc >> 16);
            digs_buf[4 * i + 2] = (char)(crc >> 8);
            digs_buf[4 * i + 3] = (char)crc;
            if (m->klen == 4 && memcmp(m->key, "href", 4) == 0) href = m;
            if (m->klen == 5 && memcmp(m->key, "@type", 5) == 0) at_type = m;
        }
        span new_names = {names_buf, names_n}, new_digs = {digs_buf, 4 * np};

        if (!st.present || st.deleted) {
            plans[0].kind = K_CREATE;
            plans[0].nchanged = 0;
            nplans = 1;
        } else {
            nameset changed;
            changed.n = 0;
            span so[MAX_NAMES], sn[MAX_NAMES];
            int ok = diff_attributes(st.names, st.digests, new_names, new_digs, so, sn, &changed,
                                     &removed);
            if (ok < 0) Py_RETURN_NONE;
            if (ok == 0 || changed.n == 0) {
                /* the digest moved but no fingerprint did: everything changed */
                changed.n = removed.n = 0;
                size_t no, nn;
                if (split_names(st.names, so, &no) < 0 || split_names(new_names, sn, &nn) < 0)
                    Py_RETURN_NONE;
                for (size_t i = 0; i < no; i++)
                    if (so[i].n && set_add(&changed, so[i].s, so[i].n) < 0) Py_RETURN_NONE;
                for (size_t i = 0; i < nn; i++)
                    if (sn[i].n && set_add(&changed, sn[i].s, sn[i].n) < 0) Py_RETURN_NONE;
            }
            int is_state[MAX_NAMES];
            int op_status = 0;
            for (size_t i = 0; i < changed.n; i++) {
                is_state[i] = 0;
                for (size_t f = 0; f < e->nstate[et]; f++)
                    if (span_eq(e->state_fields[et][f], changed.v[i].s, changed.v[i].n)) is_state[i] = 1;
                if (is_state[i] && e->v5 && et == 0 && span_eq(changed.v[i], "operatingStatus", 15))
                    op_status = 1;
            }
            planned *avc = &plans[nplans];
            avc->kind = K_AVC;
            avc->nchanged = 0;
            for (size_t i = 0; i < changed.n; i++)
                if (!is_state[i]) avc->changed[avc->nchanged++] = changed.v[i];
            if (avc->nchanged) nplans++;
            planned *sc = &plans[nplans];
            sc->kind = K_STATE;
            sc->nchanged = 0;
            for (size_t i = 0; i < changed.n; i++)
                if (is_state[i] && !(op_status && span_eq(changed.v[i], "operatingStatus", 15)))
                    sc->changed[sc->nchanged++] = changed.v[i];
            if (sc->nchanged) nplans++;
            if (op_status) {
                plans[nplans].kind = K_OPSTATUS;
                plans[nplans].changed[0] = (span){"operatingStatus", 15};
                plans[nplans].nchanged = 1;
                nplans++;
            }
            for (int p = 0; p < nplans; p++)
                qsort(plans[p].changed, plans[p].nchanged, sizeof(span), span_cmp);
        }
        if ((href != NULL && href->esc) || (at_type != NULL && at_type->esc))
            Py_RETURN_NONE; /* kept in the state as they are */
        if (href != NULL && href->type == J_STR) {
            href_s = href->s;
            href_n = href->len;
        }
        if (at_type != NULL && at_type->type == J_STR) {
            at_s = at_type->s;
            at_n = at_type->len;
        }
    }

    /* render (processor/render.py) */
    const blake2b_state *prefix = id_prefix(e, partition);
    if (prefix == NULL) return PyErr_NoMemory();
    char time_s[24];
    format_ms(time_ms, time_s);
    long long version = (st.present ? st.version : 0) + 1;
    char ver_s[24];
    size_t ver_n = (size_t)snprintf(ver_s, sizeof ver_s, "%lld", version);
    char prev_id[36], cur_id[36];
    uint8_t raw_id[16];
    int has_prev = st.has_id;
    if (has_prev) memcpy(prev_id, st.id, 36);
    messages = PyList_New(0);
    types = PyTuple_New(nplans);
    if (messages == NULL || types == NULL) FAIL();
    PyObject *last_value = NULL; /* borrowed from the last message */
    const evconst *last_c = NULL;
    int last_has_prev = 0;
    char last_prev[36];
    jbuf *ob = &e->out;
    for (int p = 0; p < nplans; p++) {
        const planned *pl = &plans[p];
        const evconst *c = &e->ev[et][pl->kind];
        if (!c->present) BAIL();
        event_id(prefix, time_ms, offset, (uint32_t)p, raw_id, cur_id);
        ob->len = 0;
        int w = 0;
        if (e->v5) {
            w |= PUT(ob, "{\"@type\":") | jbuf_str(ob, c->name_b.s, c->name_b.n) |
                 PUT(ob, ",\"@baseType\":\"Event\",\"eventId\":");
        } else {
            w |= PUT(ob, "{\"eventId\":");
        }
        w |= jbuf_str(ob, cur_id, 36) | PUT(ob, ",\"eventTime\":") | jbuf_str(ob, time_s, 24) |
             PUT(ob, ",\"eventType\":") | jbuf_str(ob, c->name_b.s, c->name_b.n) |
             PUT(ob, ",\"correlationId\":") | jbuf_str(ob, corr_s, corr_n) | PUT(ob, ",") |
             jbuf_put(ob, e->constants.s, e->constants.n);
        if (e->v5) {
            w |= PUT(ob, "\"timeOccurred\":") | jbuf_str(ob, time_s, 24) | PUT(ob, ",\"source\":") |
                 jbuf_put(ob, e->entity_ref.s, e->entity_ref.n) |
                 PUT(ob, ",\"reportingSystem\":") | jbuf_put(ob, e->entity_ref.s, e->entity_ref.n);
        } else {
            w |= PUT(ob, "\"timeOcurred\":") | jbuf_str(ob, time_s, 24);
            if (pl->kind == K_AVC) {
                /* fieldPath: the names joined by commas, as one JSON string */
                jbuf fp = {0};
                for (size_t i = 0; i < pl->nchanged; i++)
                    w |= (i ? PUT(&fp, ",") : 0) |
                         jbuf_put(&fp, pl->changed[i].s, pl->changed[i].n);
                w |= PUT(ob, ",\"fieldPath\":") | jbuf_escaped(ob, fp.p ? fp.p : "", fp.len);
                free(fp.p);
            }
        }
        w |= PUT(ob, ",\"event\":{") | jbuf_str(ob, e->et_name[et].s, e->et_name[et].n) |
             PUT(ob, ":");
        if (pl->kind == K_DELETE) {
            w |= PUT(ob, "{\"id\":") | jbuf_str(ob, ks, kn);
            if (href_s != NULL) w |= PUT(ob, ",\"href\":") | jbuf_escaped(ob, href_s, href_n);
            w |= PUT(ob, ",\"@type\":");
            w |= at_n ? jbuf_escaped(ob, at_s, at_n)
                      : jbuf_str(ob, e->default_type[et].s, e->default_type[et].n);
            w |= PUT(ob, "}");
        } else if (pl->kind == K_CREATE || !e->delta) {
            if (e->v5 && (at_type == NULL || at_type->type != J_STR)) BAIL();
            w |= json_write(ob, inst, e->private_tree, 0);
        } else {
            w |= PUT(ob, "{\"id\":") | jbuf_str(ob, ks, kn);
            const ptree *sub;
            if (href != NULL && href->type != J_NULL) {
                sub = NULL;
                if (!ptree_find(e->private_tree, "href", 4, &sub)) sub = NULL;
                w |= PUT(ob, ",\"href\":") | json_write(ob, href, sub, 0);
            }
            w |= PUT(ob, ",\"@type\":");
            if (at_type != NULL && truthy(at_type)) {
                sub = NULL;
                if (!ptree_find(e->private_tree, "@type", 5, &sub)) sub = NULL;
                w |= json_write(ob, at_type, sub, 0);
            } else {
                w |= jbuf_str(ob, e->default_type[et].s, e->default_type[et].n);
            }
            for (size_t i = 0; i < pl->nchanged; i++) {
                span nm = pl->changed[i];
                if (span_eq(nm, "id", 2) || span_eq(nm, "href", 4) || span_eq(nm, "@type", 5))
                    continue;
                w |= PUT(ob, ",") | jbuf_escaped(ob, nm.s, nm.n) | PUT(ob, ":");
                const jmember *found = NULL;
                if (!set_has(&removed, nm.s, nm.n))
                    for (size_t k = 0; k < np && found == NULL; k++)
                        if (span_eq(nm, pubs[k].node->key, pubs[k].node->klen)) found = &pubs[k];
                w |= found ? json_write(ob, found->node, found->sub, 0) : PUT(ob, "null");
            }
            w |= PUT(ob, "}");
        }
        w |= PUT(ob, "}}");
        if (w) BAIL();
        if ((long long)(ob->len + vn + kn) + HEADROOM >= e->max_message) BAIL();

        PyObject *val = PyBytes_FromStringAndSize(ob->p, (Py_ssize_t)ob->len);
        if (val == NULL) FAIL();
        PyObject *headers = PyList_New(0);
        PyObject *items[13];
        int nh = 0;
        items[nh++] = Py_NewRef(e->spec_header);
        items[nh++] = header(H_ID, cur_id, 36);
        items[nh++] = Py_NewRef(e->source_header);
        items[nh++] = Py_NewRef(c->type_header);
        items[nh++] = header(H_TIME, time_s, 24);
        items[nh++] = PyTuple_Pack(2, H_SUBJECT, key);
        items[nh++] = Py_NewRef(c->schema_header);
        items[nh++] = PyTuple_Pack(2, H_PARTITIONKEY, key);
        items[nh++] = corr != NULL ? header(H_CORRELATIONID, corr_s, corr_n)
                                   : PyTuple_Pack(2, H_CORRELATIONID, key);
        items[nh++] = header(H_VERSION, ver_s, ver_n);
        if (has_prev) items[nh++] = header(H_PREVIOUSID, prev_id, 36);
        if (traceparent != Py_None) items[nh++] = PyTuple_Pack(2, H_TRACEPARENT, traceparent);
        items[nh++] = Py_NewRef(e->content_type_header);
        int bad = headers == NULL;
        for (int i = 0; i < nh; i++) {
            if (items[i] == NULL || bad || PyList_Append(headers, items[i]) < 0) bad = 1;
            Py_XDECREF(items[i]);
        }
        PyObject *msg = NULL;
        if (!bad) {
            PyObject *fields[5] = {Py_NewRef(c->topic), Py_NewRef(Py_None), Py_NewRef(key),
                                   Py_NewRef(val), Py_NewRef(headers)};
            msg = named(e->out_message, fields, 5);
        }
        Py_XDECREF(headers);
        if (msg == NULL || PyList_Append(messages, msg) < 0) {
            Py_XDECREF(msg);
            Py_DECREF(val);
            FAIL();
        }
        Py_DECREF(msg);
        last_value = val;
        Py_DECREF(val); /* the message holds it */
        Py_INCREF(c->name);
        PyTuple_SET_ITEM(types, p, c->name);
        last_c = c;
        last_has_prev = has_prev;
        if (has_prev) memcpy(last_prev, prev_id, 36);
        memcpy(prev_id, cur_id, 36);
        has_prev = 1;
    }

    /* the last event as the state stores it: a structured-mode CloudEvent */
    jbuf *cl = &e->cloud;
    cl->len = 0;
    int w = PUT(cl, "{\"specversion\":\"1.0\",\"id\":") | jbuf_str(cl, cur_id, 36) |
            PUT(cl, ",\"source\":") | jbuf_put(cl, e->source_json.s, e->source_json.n) |
            PUT(cl, ",\"type\":") | jbuf_put(cl, last_c->type_json.s, last_c->type_json.n) |
            PUT(cl, ",\"time\":") | jbuf_str(cl, time_s, 24) | PUT(cl, ",\"subject\":") |
            jbuf_str(cl, ks, kn) | PUT(cl, ",\"dataschema\":") |
            jbuf_put(cl, last_c->schema_json.s, last_c->schema_json.n) |
            PUT(cl, ",\"partitionkey\":") | jbuf_str(cl, ks, kn) | PUT(cl, ",\"correlationid\":") |
            jbuf_str(cl, corr_s, corr_n) | PUT(cl, ",\"entityversion\":") |
            jbuf_str(cl, ver_s, ver_n);
    if (last_has_prev) w |= PUT(cl, ",\"previousid\":") | jbuf_str(cl, last_prev, 36);
    if (traceparent != Py_None)
        w |= PUT(cl, ",\"traceparent\":") |
             jbuf_str(cl, PyBytes_AS_STRING(traceparent), (size_t)PyBytes_GET_SIZE(traceparent));
    w |= PUT(cl, ",\"datacontenttype\":\"application/json\",\"data\":") |
         jbuf_put(cl, PyBytes_AS_STRING(last_value), (size_t)PyBytes_GET_SIZE(last_value)) |
         PUT(cl, "}");
    if (w) {
        PyErr_NoMemory();
        FAIL();
    }

    /* the changelog value (processor/state.py encode_state) */
    const span nm = last_c->name_b, tp = last_c->topic_b;
    jbuf *sb = &e->state;
    sb->len = 0;
    size_t items_n = varint_size(36) + 36 + varint_size((long long)nm.n) + nm.n +
                     varint_size(24) + 24 + varint_size((long long)tp.n) + tp.n +
                     varint_size((long long)cl->len) + cl->len;
    w = PUT(sb, "\x01") | put_varint(sb, (long long)items_n) | put_avro_bytes(sb, cur_id, 36) |
        put_avro_bytes(sb, nm.s, nm.n) | put_avro_bytes(sb, time_s, 24) |
        put_avro_bytes(sb, tp.s, tp.n) | put_avro_bytes(sb, cl->p, cl->len) | PUT(sb, "\x00") |
        put_avro_bytes(sb, e->et_name[et].s, e->et_name[et].n) | put_varint(sb, version) |
        put_avro_bytes(sb, (const char *)hash, hash_n) | put_avro_bytes(sb, names_buf, names_n) |
        put_avro_bytes(sb, digs_buf, 4 * np) | jbuf_put(sb, is_delete ? "\x01" : "\x00", 1) |
        put_varint(sb, time_ms) |
        put_varint(sb, offset) | put_avro_opt(sb, href_s, href_n) | put_avro_opt(sb, at_s, at_n) |
        put_avro_opt(sb, cur_id, 36) | put_avro_opt(sb, nm.s, nm.n) | put_avro_opt(sb, time_s, 24);
    if (w) {
        PyErr_NoMemory();
        FAIL();
    }
    encoded = PyBytes_FromStringAndSize(sb->p, (Py_ssize_t)sb->len);
    if (encoded == NULL) FAIL();

    /* the packed in-memory form (processor/compact.py) */
    unsigned flags = PK_ID_PACKED | PK_TIME_OBSERVED | (is_delete ? PK_DELETED : 0);
    const char *prefix_s = NULL;
    size_t prefix_n = 0;
    if (href_s != NULL && href_n >= kn && memcmp(href_s + href_n - kn, ks, kn) == 0) {
        flags |= PK_HREF_KEYED;
        prefix_s = href_s;
        prefix_n = href_n - kn;
    }
    char pid[4];
    PyObject *pr = st.present ? st.profile : NULL;
    if (pr != NULL && str_eq(PyTuple_GET_ITEM(pr, 1), names_buf, names_n) &&
        str_eq(PyTuple_GET_ITEM(pr, 2), at_s, at_n) &&
        str_eq(PyTuple_GET_ITEM(pr, 3), nm.s, nm.n) &&
        str_eq(PyTuple_GET_ITEM(pr, 4), prefix_s, prefix_n)) {
        memcpy(pid, st.pid, 4); /* the same profile: ids are content hashes */
    } else {
        PyObject *profile = PyTuple_New(5);
        if (profile == NULL) FAIL();
        PyTuple_SET_ITEM(profile, 0, Py_NewRef(et_str));
        PyTuple_SET_ITEM(profile, 1, str_or_none(names_buf, names_n));
        PyTuple_SET_ITEM(profile, 2, str_or_none(at_s, at_n));
        PyTuple_SET_ITEM(profile, 3, Py_NewRef(last_c->name));
        PyTuple_SET_ITEM(profile, 4, str_or_none(prefix_s, prefix_n));
        for (int i = 1; i < 5; i++)
            if (PyTuple_GET_ITEM(profile, i) == NULL) {
                Py_DECREF(profile);
                FAIL();
            }
        pid_obj = PyDict_GetItemWithError(e->profile_ids, profile);
        if (pid_obj != NULL) {
            Py_INCREF(pid_obj);
        } else if (!PyErr_Occurred()) {
            pid_obj = PyObject_CallMethodObjArgs(e->profiles, S_INTERN, profile, NULL);
        }
        Py_DECREF(profile);
        if (pid_obj == NULL) FAIL();
        if (!PyBytes_Check(pid_obj) || PyBytes_GET_SIZE(pid_obj) != 4) BAIL(); /* table full */
        memcpy(pid, PyBytes_AS_STRING(pid_obj), 4);
    }
    if (4 * np > 0xFFFF) BAIL();
    jbuf *pb = &e->canon; /* the canonical rendering is no longer needed */
    pb->len = 0;
    w = jbuf_reserve(pb, PK_HEAD) | PUT(pb, "\x01");
    if (w) {
        PyErr_NoMemory();
        FAIL();
    }
    pb->p[pb->len++] = (char)flags;
    w = put_le(pb, (uint64_t)version, 8) | put_le(pb, (uint64_t)time_ms, 8) |
        put_le(pb, (uint64_t)offset, 8) | put_le(pb, hash_n, 1) | put_le(pb, 4 * np, 2) |
        jbuf_put(pb, hash, hash_n) | jbuf_put(pb, digs_buf, 4 * np) | jbuf_put(pb, pid, 4);
    if (!(flags & PK_HREF_KEYED)) w |= put_avro_opt(pb, href_s, href_n);
    w |= jbuf_put(pb, raw_id, 16);
    if (w) {
        PyErr_NoMemory();
        FAIL();
    }
    packed = PyBytes_FromStringAndSize(pb->p, (Py_ssize_t)pb->len);
    if (packed == NULL) FAIL();
    PyObject *items[9] = {Py_NewRef(S_EMIT), messages, Py_NewRef(key_text), Py_NewRef(et_str),
                          types, Py_NewRef(Py_None), PyLong_FromLongLong(time_ms), packed, encoded};
    messages = types = packed = encoded = NULL; /* stolen */
    result = named(e->result_type, items, 9);
done:
    Py_XDECREF(messages);
    Py_XDECREF(types);
    Py_XDECREF(encoded);
    Py_XDECREF(packed);
    Py_XDECREF(pid_obj);
    return result;
}

/* -- module ------------------------------------------------------------------------------- */

static PyMethodDef engine_methods[] = {
    {"process", (PyCFunction)(void (*)(void))engine_process, METH_FASTCALL,
     "process(value, key, key_text, partition, offset, timestamp_ms, traceparent, packed) -> Result | None"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "processor._native.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The per-record fast path of Core.process, built from an engine spec.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)engine_init,
    .tp_dealloc = (destructor)engine_dealloc,
    .tp_methods = engine_methods,
};

static PyObject *py_blake2b(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data;
    int outlen;
    if (!PyArg_ParseTuple(args, "y*i", &data, &outlen)) return NULL;
    if (outlen < 1 || outlen > 64) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "digest size must be 1..64");
        return NULL;
    }
    blake2b_state s;
    uint8_t out[64];
    blake2b_init(&s, (size_t)outlen);
    blake2b_update(&s, data.buf, (size_t)data.len);
    blake2b_final(&s, out);
    PyBuffer_Release(&data);
    return PyBytes_FromStringAndSize((const char *)out, outlen);
}

static PyObject *py_crc32(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*", &data)) return NULL;
    uint32_t c = crc32_update(0, data.buf, (size_t)data.len);
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLong(c);
}

static PyObject *py_format_ms(PyObject *self, PyObject *arg) {
    (void)self;
    long long ms = PyLong_AsLongLong(arg);
    if (PyErr_Occurred()) return NULL;
    if (ms < 0 || ms > MAX_MS) {
        PyErr_SetString(PyExc_ValueError, "time out of range");
        return NULL;
    }
    char out[24];
    format_ms(ms, out);
    return PyUnicode_FromStringAndSize(out, 24);
}

static PyObject *py_parse_ms(PyObject *self, PyObject *arg) {
    (void)self;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(arg, &n);
    if (s == NULL) return NULL;
    long long ms;
    if (parse_canonical_ms(s, (size_t)n, &ms) < 0) Py_RETURN_NONE;
    return PyLong_FromLongLong(ms);
}

static PyMethodDef module_methods[] = {
    {"blake2b", py_blake2b, METH_VARARGS, "blake2b(data, digest_size) -> bytes (tests)"},
    {"crc32", py_crc32, METH_VARARGS, "crc32(data) -> int (tests)"},
    {"format_ms", py_format_ms, METH_O, "format_ms(ms) -> str (tests)"},
    {"parse_ms", py_parse_ms, METH_O, "parse_ms(text) -> int | None (tests)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "processor._native",
    "The C fast path of the decision core (see processor/native.py).", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

static PyObject *intern(const char *s) { return PyUnicode_InternFromString(s); }

PyMODINIT_FUNC PyInit__native(void) {
    const uint16_t probe = 1;
    if (*(const uint8_t *)&probe != 1) {
        PyErr_SetString(PyExc_ImportError, "the fast path needs a little-endian host");
        return NULL;
    }
    crc32_init();
    if (PyType_Ready(&EngineType) < 0) return NULL;
    S_EMIT = intern("emit");
    S_UNCHANGED = intern("unchanged");
    S_STALE = intern("stale");
    S_REPLAYED = intern("replayed");
    S_DISABLED = intern("disabled");
    S_UNKNOWN_DELETE = intern("unknown_delete");
    S_INTERN = intern("intern");
    H_ID = intern("ce_id");
    H_TIME = intern("ce_time");
    H_SUBJECT = intern("ce_subject");
    H_PARTITIONKEY = intern("ce_partitionkey");
    H_CORRELATIONID = intern("ce_correlationid");
    H_VERSION = intern("ce_entityversion");
    H_PREVIOUSID = intern("ce_previousid");
    H_TRACEPARENT = intern("ce_traceparent");
    if (PyErr_Occurred()) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0) {
        Py_DECREF(&EngineType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
