/* encode: the new state as the changelog carries it (processor/state/codec.py encode_state,
   with the last event as a structured CloudEvent: model.py structured_cloudevent) and as the
   store holds it (processor/state/packed.py pack). */
#include <string.h>

#include "engine.h"

static void put_varint(jbuf *b, long long n) {
    uint64_t z = ((uint64_t)n << 1) ^ (uint64_t)(n >> 63);
    char out[10];
    size_t k = 0;
    while (z >= 0x80) {
        out[k++] = (char)((z & 0x7F) | 0x80);
        z >>= 7;
    }
    out[k++] = (char)z;
    jbuf_put(b, out, k);
}

static size_t varint_size(long long n) {
    uint64_t z = ((uint64_t)n << 1) ^ (uint64_t)(n >> 63);
    size_t k = 1;
    while (z >= 0x80) {
        z >>= 7;
        k++;
    }
    return k;
}

static void put_avro_bytes(jbuf *b, const char *s, size_t n) {
    put_varint(b, (long long)n);
    jbuf_put(b, s, n);
}

static void put_avro_opt(jbuf *b, span v) {
    if (v.s == NULL) {
        jbuf_byte(b, 0);
        return;
    }
    jbuf_byte(b, 2);
    put_avro_bytes(b, v.s, v.n);
}

static void put_le(jbuf *b, uint64_t v, int n) {
    for (int i = 0; i < n; i++) jbuf_byte(b, (char)(v >> (8 * i)));
}

/* The last event as the state stores it: structured_cloudevent(headers, value). */
static void cloudevent(Engine *e, const record *rec, jbuf *b) {
    const work *w = e->w;
    const evconst *c = w->last;
    jbuf_reset(b);
    JBUF_STR(b, "{\"specversion\":\"1.0\",\"id\":", w->id, 36);
    JBUF_RAW(b, ",\"source\":", e->source_json.s, e->source_json.n);
    JBUF_RAW(b, ",\"type\":", c->type_json.s, c->type_json.n);
    JBUF_STR(b, ",\"time\":", w->time, 24);
    JBUF_STR(b, ",\"subject\":", rec->k.s, rec->k.n);
    JBUF_RAW(b, ",\"dataschema\":", c->schema_json.s, c->schema_json.n);
    JBUF_STR(b, ",\"partitionkey\":", rec->k.s, rec->k.n);
    JBUF_STR(b, ",\"correlationid\":", rec->corr.s, rec->corr.n);
    JBUF_STR(b, ",\"entityversion\":", w->ver, w->ver_n);
    if (w->has_prev) JBUF_STR(b, ",\"previousid\":", w->prev, 36);
    if (rec->traceparent != Py_None)
        JBUF_STR(b, ",\"traceparent\":", PyBytes_AS_STRING(rec->traceparent),
                 (size_t)PyBytes_GET_SIZE(rec->traceparent));
    JBUF_RAW(b, ",\"datacontenttype\":\"application/json\",\"data\":",
             PyBytes_AS_STRING(w->last_value), (size_t)PyBytes_GET_SIZE(w->last_value));
    jbuf_byte(b, '}');
}

/* encode_state: one event (a block with its byte size), then the fields. */
static void changelog(Engine *e, const record *rec, const decision *d, jbuf *b) {
    const work *w = e->w;
    const span name = w->last->name_b, topic = w->last->topic_b, ce = {w->cloud.p, w->cloud.len};
    size_t items = varint_size(36) + 36 + varint_size((long long)name.n) + name.n +
                   varint_size(24) + 24 + varint_size((long long)topic.n) + topic.n +
                   varint_size((long long)ce.n) + ce.n;
    jbuf_reset(b);
    put_varint(b, -1); /* one event; a negative count announces the block's size */
    put_varint(b, (long long)items);
    put_avro_bytes(b, w->id, 36);
    put_avro_bytes(b, name.s, name.n);
    put_avro_bytes(b, w->time, 24);
    put_avro_bytes(b, topic.s, topic.n);
    put_avro_bytes(b, ce.s, ce.n);
    jbuf_byte(b, 0); /* the end of the events */
    put_avro_bytes(b, e->types[d->et].name_b.s, e->types[d->et].name_b.n);
    put_varint(b, d->version);
    put_avro_bytes(b, (const char *)d->hash, d->hash_n);
    put_avro_bytes(b, d->names.s, d->names.n);
    put_avro_bytes(b, d->digests.s, d->digests.n);
    jbuf_byte(b, rec->is_delete ? 1 : 0);
    put_varint(b, rec->time_ms);
    put_varint(b, rec->offset);
    put_avro_opt(b, d->state_href);
    put_avro_opt(b, d->state_at);
    put_avro_opt(b, (span){w->id, 36});
    put_avro_opt(b, name);
    put_avro_opt(b, (span){w->time, 24});
}

static int str_eq(PyObject *o, span v) {
    if (v.s == NULL) return o == Py_None;
    span u;
    if (!PyUnicode_Check(o) || utf8_of(o, &u) < 0) {
        PyErr_Clear();
        return 0;
    }
    return span_eq(u, v.s, v.n);
}

static PyObject *str_or_none(span v) {
    if (v.s == NULL) return Py_NewRef(Py_None);
    return PyUnicode_DecodeUTF8(v.s, (Py_ssize_t)v.n, NULL);
}

/* The profile id of (entity type, attribute names, @type, last event type, href prefix):
   the prior's when it is the same profile (ids are content hashes), else interned. */
static int profile_id(Engine *e, const prior *st, const decision *d, span prefix, char pid[4]) {
    PyObject *pr = st->present ? st->profile : NULL;
    const evconst *c = e->w->last;
    if (pr != NULL && str_eq(PyTuple_GET_ITEM(pr, 1), d->names) &&
        str_eq(PyTuple_GET_ITEM(pr, 2), d->state_at) &&
        str_eq(PyTuple_GET_ITEM(pr, 3), c->name_b) && str_eq(PyTuple_GET_ITEM(pr, 4), prefix)) {
        memcpy(pid, st->pid, PK_PROFILE_ID);
        return GO;
    }
    PyObject *names = str_or_none(d->names), *at = str_or_none(d->state_at);
    PyObject *pre = str_or_none(prefix);
    PyObject *profile = NULL;
    if (names != NULL && at != NULL && pre != NULL)
        profile = PyTuple_Pack(5, e->types[d->et].name, names, at, c->name, pre);
    Py_XDECREF(names);
    Py_XDECREF(at);
    Py_XDECREF(pre);
    if (profile == NULL) return ERROR;
    PyObject *id = PyDict_GetItemWithError(e->profile_ids, profile);
    if (id != NULL)
        Py_INCREF(id);
    else if (!PyErr_Occurred())
        id = PyObject_CallMethodObjArgs(e->profiles, S_INTERN, profile, NULL);
    Py_DECREF(profile);
    if (id == NULL) return ERROR;
    int rc = PyBytes_Check(id) && PyBytes_GET_SIZE(id) == PK_PROFILE_ID ? GO : HAND_OVER;
    if (rc == GO) memcpy(pid, PyBytes_AS_STRING(id), PK_PROFILE_ID); /* else: table full */
    Py_DECREF(id);
    return rc;
}

/* pack: the header, hash, fingerprints, profile id, href unless keyed, event id. */
static int packed_state(Engine *e, const record *rec, const prior *st, const decision *d,
                        jbuf *b) {
    const work *w = e->w;
    unsigned flags = PK_ID_PACKED | PK_TIME_OBSERVED | (rec->is_delete ? PK_DELETED : 0);
    span href = d->state_href, prefix = {NULL, 0};
    if (href.s != NULL && href.n >= rec->k.n &&
        memcmp(href.s + href.n - rec->k.n, rec->k.s, rec->k.n) == 0) {
        flags |= PK_HREF_KEYED;
        prefix = (span){href.s, href.n - rec->k.n};
    }
    if (d->digests.n > 0xFFFF) return HAND_OVER; /* beyond the header: the Avro form */
    char pid[PK_PROFILE_ID];
    int rc = profile_id(e, st, d, prefix, pid);
    if (rc != GO) return rc;
    jbuf_reset(b);
    jbuf_byte(b, PK_MARK);
    jbuf_byte(b, (char)flags);
    put_le(b, (uint64_t)d->version, 8);
    put_le(b, (uint64_t)rec->time_ms, 8);
    put_le(b, (uint64_t)rec->offset, 8);
    put_le(b, d->hash_n, 1);
    put_le(b, d->digests.n, 2);
    jbuf_put(b, d->hash, d->hash_n);
    jbuf_put(b, d->digests.s, d->digests.n);
    jbuf_put(b, pid, PK_PROFILE_ID);
    if (!(flags & PK_HREF_KEYED)) put_avro_opt(b, href);
    jbuf_put(b, w->raw_id, 16);
    return GO;
}

int encode(Engine *e, const record *rec, const prior *st, const decision *d,
           PyObject **encoded, PyObject **packed) {
    work *w = e->w;
    cloudevent(e, rec, &w->cloud);
    changelog(e, rec, d, &w->state);
    if (w->cloud.failed || w->state.failed) return HAND_OVER;
    int rc = packed_state(e, rec, st, d, &w->packed);
    if (rc != GO) return rc;
    if (w->packed.failed) return HAND_OVER;
    *encoded = PyBytes_FromStringAndSize(w->state.p, (Py_ssize_t)w->state.len);
    *packed = PyBytes_FromStringAndSize(w->packed.p, (Py_ssize_t)w->packed.len);
    return *encoded == NULL || *packed == NULL ? ERROR : GO;
}
