/* decode: the record's arguments, its value (processor/records.py Decoder.decode) and the
   key's prior state (processor/state/packed.py unpack).

   Only what the Python path accepts exactly as it is passes; everything else is handed
   over, so the Python path writes every dead letter. A prior state is read only where
   unpack would read it the same way; a state unpack rejects is always handed over. */
#include <string.h>

#include "engine.h"
#include "timeid.h"

/* A Python int as a long long; HAND_OVER when it is outside int64 (Kafka never sends
   such numbers; replay refuses them), ERROR for anything but an int. */
static int as_int64(PyObject *o, long long *out) {
    int overflow = 0;
    *out = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow) return HAND_OVER;
    return *out == -1 && PyErr_Occurred() ? ERROR : GO;
}

/* (value, key, key_text, partition, offset, timestamp_ms, traceparent, packed) */
int decode_args(PyObject *const *args, Py_ssize_t nargs, record *rec) {
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "process(value, key, key_text, partition, offset, "
                                         "timestamp_ms, traceparent, packed)");
        return ERROR;
    }
    PyObject *value = args[0];
    memset(rec, 0, sizeof *rec);
    rec->key = args[1];
    rec->key_text = args[2];
    rec->traceparent = args[6];
    if ((value != Py_None && !PyBytes_Check(value)) || !PyBytes_Check(rec->key) ||
        !PyUnicode_Check(rec->key_text) ||
        (rec->traceparent != Py_None && !PyBytes_Check(rec->traceparent)))
        return HAND_OVER;
    if (value != Py_None)
        rec->value = (span){PyBytes_AS_STRING(value), (size_t)PyBytes_GET_SIZE(value)};
    rec->k = (span){PyBytes_AS_STRING(rec->key), (size_t)PyBytes_GET_SIZE(rec->key)};
    int rc = as_int64(args[3], &rec->partition);
    if (rc == GO) rc = as_int64(args[4], &rec->offset);
    rec->timestamp = -1;
    if (rc == GO && args[5] != Py_None) rc = as_int64(args[5], &rec->timestamp);
    return rc;
}

static int is_name(const jnode *m, const char *name) {
    size_t n = strlen(name);
    return m->klen == n && memcmp(m->key, name, n) == 0;
}

static const jnode *member(const jnode *obj, const char *name) {
    for (uint32_t i = 0; i < obj->len; i++)
        if (is_name(&obj->kids[i], name)) return &obj->kids[i];
    return NULL;
}

static int is_string(const jnode *v, const char *s) {
    size_t n = strlen(s);
    return v->type == J_STR && !v->esc && v->len == n && memcmp(v->s, s, n) == 0;
}

typedef struct {
    const jnode *entity_type, *operation, *id, *observed, *corr, *inst;
} envelope;

/* The envelope's members, each of a type `_envelope_ok` accepts; HAND_OVER for any other
   member or shape (names are distinct: the reader saw to it). */
static int envelope_members(const jnode *root, envelope *env) {
    memset(env, 0, sizeof *env);
    for (uint32_t i = 0; i < root->len; i++) {
        const jnode *m = &root->kids[i];
        if (m->esc) return HAND_OVER; /* compared or copied as they are: no escapes */
        int str_or_null = m->type == J_STR || m->type == J_NULL;
        if (is_name(m, "entityType") && m->type == J_STR)
            env->entity_type = m;
        else if (is_name(m, "operation") && m->type == J_STR)
            env->operation = m;
        else if (is_name(m, "id") && str_or_null)
            env->id = m;
        else if (is_name(m, "observedAt") && str_or_null)
            env->observed = m->type == J_STR ? m : NULL;
        else if (is_name(m, "correlationId") && str_or_null)
            env->corr = m->type == J_STR ? m : NULL;
        else if (is_name(m, "instance"))
            env->inst = m;
        else
            return HAND_OVER;
    }
    return env->entity_type == NULL ? HAND_OVER : GO;
}

/* The change of a JSON value, exactly as Decoder._validate makes it. */
static int read_change(const envelope *env, record *rec) {
    if (is_string(env->entity_type, "service"))
        rec->et = ET_SERVICE;
    else if (is_string(env->entity_type, "resource"))
        rec->et = ET_RESOURCE;
    else
        return HAND_OVER;
    if (env->operation != NULL && !is_string(env->operation, "upsert")) {
        if (!is_string(env->operation, "delete")) return HAND_OVER;
        rec->is_delete = 1;
    }
    if (env->id != NULL && env->id->type == J_STR && !span_eq(rec->k, env->id->s, env->id->len))
        return HAND_OVER; /* id_mismatch */
    const jnode *inst = env->inst;
    if (inst != NULL && inst->type == J_NULL) inst = NULL;
    if (inst == NULL && !rec->is_delete) return HAND_OVER; /* missing_instance */
    if (inst != NULL) {
        const jnode *id = inst->type == J_OBJ ? member(inst, "id") : NULL;
        if (id == NULL || id->type != J_STR || id->esc || !span_eq(rec->k, id->s, id->len))
            return HAND_OVER;
    }
    rec->inst = rec->is_delete ? NULL : inst;
    if (env->observed != NULL) {
        if (parse_canonical_ms(env->observed->s, env->observed->len, &rec->time_ms) < 0)
            return HAND_OVER;
    } else {
        if (rec->timestamp < 0 || rec->timestamp > MAX_MS) return HAND_OVER;
        rec->time_ms = rec->timestamp;
    }
    if (env->corr != NULL) {
        rec->corr = (span){env->corr->s, env->corr->len};
        rec->corr_given = 1;
    }
    return GO;
}

int decode_record(Engine *e, record *rec) {
    span k = rec->k;
    if (k.n == 0 || (long long)rec->value.n > e->max_record || rec->value.n > FAST_MAX_BYTES)
        return HAND_OVER;
    /* The key is written into JSON as it is (payload id, subject, default correlation id):
       one that would need escaping takes the Python path. */
    for (size_t i = 0; i < k.n; i++) {
        unsigned char c = (unsigned char)k.s[i];
        if (c < 0x20 || c == '"' || c == '\\') return HAND_OVER;
    }
    rec->corr = k;
    if (rec->value.s == NULL) { /* a tombstone: a delete of whatever the state holds */
        if (rec->timestamp < 0 || rec->timestamp > MAX_MS) return HAND_OVER;
        rec->et = -1;
        rec->is_delete = 1;
        rec->time_ms = rec->timestamp;
        return GO;
    }
    jnode *root = &e->w->root;
    if (json_parse(&e->doc, rec->value.s, rec->value.n, e->max_depth, root) < 0 ||
        root->type != J_OBJ)
        return HAND_OVER;
    envelope env;
    int rc = envelope_members(root, &env);
    return rc == GO ? read_change(&env, rec) : rc;
}

/* -- the prior state ---------------------------------------------------------------------- */

/* Reads packed bytes as packed.py's Reader does, or says it cannot be sure to. */
typedef struct {
    const unsigned char *p;
    size_t n, pos;
} cursor;

/* An Avro long of at most four bytes (longer ones: the Python reader's business). */
static int read_long(cursor *c, long long *out) {
    uint64_t z = 0;
    for (int shift = 0; shift < 28; shift += 7) {
        if (c->pos >= c->n) return HAND_OVER;
        unsigned char b = c->p[c->pos++];
        z |= (uint64_t)(b & 0x7F) << shift;
        if (b < 0x80) {
            *out = (long long)(z >> 1) ^ -(long long)(z & 1);
            return GO;
        }
    }
    return HAND_OVER;
}

/* Reader.opt: None, or a UTF-8 string. */
static int read_opt(cursor *c, span *out) {
    if (c->pos >= c->n) return HAND_OVER;
    unsigned char branch = c->p[c->pos++];
    *out = (span){NULL, 0};
    if (branch == 0) return GO;
    long long len;
    if (branch != 2 || read_long(c, &len) != GO) return HAND_OVER;
    if (len < 0 || (size_t)len > c->n - c->pos) return HAND_OVER;
    const char *s = (const char *)c->p + c->pos;
    if (!utf8_valid(s, (size_t)len)) return HAND_OVER;
    *out = (span){s, (size_t)len};
    c->pos += (size_t)len;
    return GO;
}

static int profile_span(PyObject *profile, int i, span *out) {
    PyObject *item = PyTuple_GET_ITEM(profile, i);
    *out = (span){NULL, 0};
    if (item == Py_None) return GO;
    if (!PyUnicode_Check(item) || utf8_of(item, out) < 0) {
        PyErr_Clear();
        return HAND_OVER;
    }
    return GO;
}

/* The interned profile named at the cursor: (entity type, attribute names, @type, last
   event type, href prefix). */
static int read_profile(Engine *e, cursor *c, prior *st) {
    if (c->n - c->pos < PK_PROFILE_ID) return HAND_OVER;
    st->pid = (const char *)c->p + c->pos;
    c->pos += PK_PROFILE_ID;
    PyObject *pid = PyBytes_FromStringAndSize(st->pid, PK_PROFILE_ID);
    if (pid == NULL) return ERROR;
    PyObject *profile = PyDict_GetItemWithError(e->profile_by_id, pid);
    Py_DECREF(pid);
    if (profile == NULL) return PyErr_Occurred() ? ERROR : HAND_OVER;
    if (!PyTuple_Check(profile) || PyTuple_GET_SIZE(profile) != 5) return HAND_OVER;
    st->profile = profile;
    PyObject *et = PyTuple_GET_ITEM(profile, 0);
    st->et = -1;
    for (int t = 0; t < NTYPES; t++)
        if (PyUnicode_Check(et) && PyUnicode_Compare(et, e->types[t].name) == 0) st->et = t;
    if (PyErr_Occurred()) return ERROR;
    if (st->et < 0 || profile_span(profile, 1, &st->names) != GO || st->names.s == NULL)
        return HAND_OVER;
    return profile_span(profile, 2, &st->at_type);
}

/* href: the profile's prefix and the key, or kept inline. */
static int read_href(Engine *e, cursor *c, unsigned flags, span key, prior *st) {
    if (!(flags & PK_HREF_KEYED)) return read_opt(c, &st->href);
    span prefix;
    if (profile_span(st->profile, 4, &prefix) != GO || prefix.s == NULL) return HAND_OVER;
    if (prefix.n + key.n > HREF_BYTES) return HAND_OVER;
    char *buf = e->w->href;
    memcpy(buf, prefix.s, prefix.n);
    memcpy(buf + prefix.n, key.s, key.n);
    st->href = (span){buf, prefix.n + key.n};
    return GO;
}

/* The last event's id and time: only checked (every emit writes new ones), so that a state
   unpack rejects is handed over. */
static int read_last_event(cursor *c, unsigned flags, prior *st) {
    if (flags & PK_ID_PACKED) {
        if (c->n - c->pos < 16) return HAND_OVER;
        uuid_text(c->p + c->pos, st->id);
        st->has_id = 1;
        c->pos += 16;
    } else {
        if (c->pos >= c->n || c->p[c->pos] != 0) return HAND_OVER; /* an id of its own form */
        c->pos++;
    }
    if (flags & PK_TIME_OBSERVED) /* format_ms(observed_at) */
        return st->observed_at < MIN_MS || st->observed_at > MAX_MS ? HAND_OVER : GO;
    if (flags & PK_TIME_PACKED) {
        int64_t ms;
        if (c->n - c->pos < 8) return HAND_OVER;
        memcpy(&ms, c->p + c->pos, 8); /* little-endian hosts only, checked at import */
        return ms < MIN_MS || ms > MAX_MS ? HAND_OVER : GO;
    }
    span time;
    return read_opt(c, &time);
}

int decode_prior(Engine *e, PyObject *packed, span key, prior *st) {
    memset(st, 0, sizeof *st);
    if (packed == Py_None) return GO;
    if (!PyBytes_Check(packed)) return HAND_OVER;
    cursor c = {(const unsigned char *)PyBytes_AS_STRING(packed),
                (size_t)PyBytes_GET_SIZE(packed), PK_HEAD};
    if (c.n < PK_HEAD || c.p[0] != PK_MARK) return HAND_OVER;
    unsigned flags = c.p[1];
    if (flags == PK_AVRO || (flags & PK_PROFILE_INLINE)) return HAND_OVER;
    int64_t q[3];
    memcpy(q, c.p + 2, 24); /* little-endian hosts only, checked at import */
    size_t hash_n = c.p[26], digests_n = (size_t)c.p[27] | ((size_t)c.p[28] << 8);
    if (c.n - c.pos < hash_n + digests_n) return HAND_OVER;
    st->hash = (span){(const char *)c.p + c.pos, hash_n};
    st->digests = (span){(const char *)c.p + c.pos + hash_n, digests_n};
    c.pos += hash_n + digests_n;
    st->version = q[0];
    st->observed_at = q[1];
    st->offset = q[2];
    st->deleted = (flags & PK_DELETED) != 0;
    if (st->version == INT64_MAX) return HAND_OVER; /* the next version: beyond the header */
    int rc = read_profile(e, &c, st);
    if (rc == GO) rc = read_href(e, &c, flags, key, st);
    if (rc == GO) rc = read_last_event(&c, flags, st);
    st->present = rc == GO;
    return rc;
}
