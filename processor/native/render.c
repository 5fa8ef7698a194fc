/* render: the TMF event envelopes and their CloudEvents headers (processor/render.py
   Renderer.render), one Kafka message per planned event. Every byte is written by a
   statement of its own, in the order of the output. */
#include <string.h>

#include "engine.h"
#include "timeid.h"

/* The hash state after "<topic>\0<partition>\0", per partition (processor/ids.py). */
const blake2b_state *id_prefix(Engine *e, long long partition) {
    for (size_t i = 0; i < e->nprefix; i++)
        if (e->prefix_part[i] == partition) return &e->prefix[i];
    if (e->prefix == NULL) {
        e->prefix = malloc(ID_PREFIXES * sizeof(blake2b_state));
        e->prefix_part = malloc(ID_PREFIXES * sizeof(long long));
        if (e->prefix == NULL || e->prefix_part == NULL) return NULL;
    }
    if (e->nprefix >= ID_PREFIXES) e->nprefix = 0; /* a bounded cache */
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

static const ptree *private_sub(const Engine *e, const char *name, size_t n) {
    const ptree *sub = NULL;
    return ptree_find(e->private_tree, name, n, &sub) ? sub : NULL;
}

/* Render._payload of a Delete: id, href, @type, from the state. */
static void delete_payload(const Engine *e, const record *rec, const decision *d, jbuf *b) {
    JBUF_STR(b, "{\"id\":", rec->k.s, rec->k.n);
    if (d->state_href.s != NULL) {
        JBUF_LIT(b, ",\"href\":");
        jbuf_escaped(b, d->state_href.s, d->state_href.n);
    }
    JBUF_LIT(b, ",\"@type\":");
    if (d->state_at.n)
        jbuf_escaped(b, d->state_at.s, d->state_at.n);
    else
        jbuf_str(b, e->types[d->et].default_type.s, e->types[d->et].default_type.n);
    jbuf_byte(b, '}');
}

/* Render._payload of a change under `payload: delta`: the identity, then each changed
   attribute (null once removed). */
static void delta_payload(const Engine *e, const record *rec, const decision *d, const plan *p,
                          jbuf *b) {
    const work *w = e->w;
    JBUF_STR(b, "{\"id\":", rec->k.s, rec->k.n);
    if (d->href != NULL && d->href->type != J_NULL) {
        JBUF_LIT(b, ",\"href\":");
        json_write(b, d->href, private_sub(e, "href", 4), 0);
    }
    JBUF_LIT(b, ",\"@type\":");
    const ptree *at_sub = private_sub(e, "@type", 5);
    if (d->at_type != NULL && json_public_truthy(d->at_type, at_sub))
        json_write(b, d->at_type, at_sub, 0);
    else
        jbuf_str(b, e->types[d->et].default_type.s, e->types[d->et].default_type.n);
    for (size_t i = 0; i < p->nchanged; i++) {
        span name = p->changed[i];
        if (span_eq(name, "id", 2) || span_eq(name, "href", 4) || span_eq(name, "@type", 5))
            continue;
        jbuf_byte(b, ',');
        jbuf_escaped(b, name.s, name.n);
        jbuf_byte(b, ':');
        const jmember *found = NULL;
        for (size_t k = 0; k < d->npub && found == NULL && !nameset_has(&w->removed, name); k++)
            if (span_eq(name, w->pub[k].node->key, w->pub[k].node->klen)) found = &w->pub[k];
        if (found != NULL)
            json_write(b, found->node, found->sub, 0);
        else
            JBUF_LIT(b, "null");
    }
    jbuf_byte(b, '}');
}

/* fieldPath of a v4 AttributeValueChange: the names joined by commas, one JSON string. */
static void field_path(Engine *e, const plan *p, jbuf *b) {
    jbuf *names = &e->w->fieldpath;
    jbuf_reset(names);
    for (size_t i = 0; i < p->nchanged; i++) {
        if (i) jbuf_byte(names, ',');
        jbuf_put(names, p->changed[i].s, p->changed[i].n);
    }
    if (names->failed) b->failed = 1;
    JBUF_LIT(b, ",\"fieldPath\":");
    jbuf_escaped(b, names->p, names->len);
}

/* Render._envelope: the event body, payload included. HAND_OVER where only the Python path
   writes the payload (a v5 instance without a string @type). */
static int body(Engine *e, const record *rec, const decision *d, const plan *p,
                const evconst *c, jbuf *b) {
    const work *w = e->w;
    if (p->kind != K_DELETE && (p->kind == K_CREATE || !e->delta) && e->v5 &&
        (d->at_type == NULL || d->at_type->type != J_STR))
        return HAND_OVER;
    jbuf_byte(b, '{');
    if (e->v5) {
        JBUF_STR(b, "\"@type\":", c->name_b.s, c->name_b.n);
        JBUF_LIT(b, ",\"@baseType\":\"Event\",");
    }
    JBUF_STR(b, "\"eventId\":", w->id, 36);
    JBUF_STR(b, ",\"eventTime\":", w->time, 24);
    JBUF_STR(b, ",\"eventType\":", c->name_b.s, c->name_b.n);
    JBUF_STR(b, ",\"correlationId\":", rec->corr.s, rec->corr.n);
    jbuf_byte(b, ',');
    jbuf_put(b, e->constants.s, e->constants.n); /* each member followed by a comma */
    if (e->v5) {
        JBUF_STR(b, "\"timeOccurred\":", w->time, 24);
        JBUF_RAW(b, ",\"source\":", e->entity_ref.s, e->entity_ref.n);
        JBUF_RAW(b, ",\"reportingSystem\":", e->entity_ref.s, e->entity_ref.n);
    } else {
        JBUF_STR(b, "\"timeOcurred\":", w->time, 24);
        if (p->kind == K_AVC) field_path(e, p, b);
    }
    JBUF_STR(b, ",\"event\":{", e->types[d->et].name_b.s, e->types[d->et].name_b.n);
    jbuf_byte(b, ':');
    if (p->kind == K_DELETE)
        delete_payload(e, rec, d, b);
    else if (p->kind == K_CREATE || !e->delta)
        json_write(b, rec->inst, e->private_tree, 0);
    else
        delta_payload(e, rec, d, p, b);
    JBUF_LIT(b, "}}");
    return b->failed ? HAND_OVER : GO;
}

static PyObject *header(PyObject *name, const char *s, size_t n) {
    PyObject *v = PyBytes_FromStringAndSize(s, (Py_ssize_t)n);
    if (v == NULL) return NULL;
    PyObject *t = PyTuple_Pack(2, name, v);
    Py_DECREF(v);
    return t;
}

/* The headers of one event, in Render.render's order. */
static PyObject *headers(Engine *e, const record *rec, const evconst *c) {
    const work *w = e->w;
    PyObject *items[13];
    int n = 0;
    items[n++] = Py_NewRef(e->spec_header);
    items[n++] = header(H_ID, w->id, 36);
    items[n++] = Py_NewRef(e->source_header);
    items[n++] = Py_NewRef(c->type_header);
    items[n++] = header(H_TIME, w->time, 24);
    items[n++] = PyTuple_Pack(2, H_SUBJECT, rec->key);
    items[n++] = Py_NewRef(c->schema_header);
    items[n++] = PyTuple_Pack(2, H_PARTITIONKEY, rec->key);
    items[n++] = rec->corr_given ? header(H_CORRELATIONID, rec->corr.s, rec->corr.n)
                                 : PyTuple_Pack(2, H_CORRELATIONID, rec->key);
    items[n++] = header(H_VERSION, w->ver, w->ver_n);
    if (w->has_prev) items[n++] = header(H_PREVIOUSID, w->prev, 36);
    if (rec->traceparent != Py_None)
        items[n++] = PyTuple_Pack(2, H_TRACEPARENT, rec->traceparent);
    items[n++] = Py_NewRef(e->content_type_header);
    PyObject *list = PyList_New(n);
    for (int i = 0; i < n; i++) {
        if (list != NULL && items[i] != NULL) {
            PyList_SET_ITEM(list, i, items[i]); /* stolen */
            continue;
        }
        Py_XDECREF(items[i]);
        if (list != NULL) PyList_SET_ITEM(list, i, Py_NewRef(Py_None));
        Py_CLEAR(list);
    }
    return list;
}

/* One OutMessage(topic, None, key, value, headers), appended to `messages`. */
static int message(Engine *e, const record *rec, const evconst *c, PyObject *messages) {
    PyObject *value = PyBytes_FromStringAndSize(e->w->out.p, (Py_ssize_t)e->w->out.len);
    PyObject *fields[M_FIELDS];
    fields[M_TOPIC] = Py_NewRef(c->topic);
    fields[M_PARTITION] = Py_NewRef(Py_None);
    fields[M_KEY] = Py_NewRef(rec->key);
    fields[M_VALUE] = value;
    fields[M_HEADERS] = value == NULL ? NULL : headers(e, rec, c);
    PyObject *msg = named_tuple(e->out_message, fields, M_FIELDS);
    if (msg == NULL || PyList_Append(messages, msg) < 0) {
        Py_XDECREF(msg);
        return ERROR;
    }
    Py_DECREF(msg);
    e->w->last_value = value; /* the message holds it */
    return GO;
}

static int render_event(Engine *e, const record *rec, const decision *d, int index,
                        const blake2b_state *prefix, PyObject *messages) {
    work *w = e->w;
    const plan *p = &d->plans[index];
    const evconst *c = &e->types[d->et].ev[p->kind];
    if (!c->present) return HAND_OVER;
    event_id(prefix, rec->time_ms, rec->offset, (uint32_t)index, w->raw_id, w->id);
    jbuf_reset(&w->out);
    if (body(e, rec, d, p, c, &w->out) != GO) return HAND_OVER;
    /* core.py: an event that may come near the producer's message.max.bytes */
    if ((long long)(w->out.len + rec->value.n + rec->k.n) + e->headroom >= e->max_message)
        return HAND_OVER;
    int rc = message(e, rec, c, messages);
    w->last = c;
    return rc;
}

int render(Engine *e, const record *rec, const prior *st, const decision *d,
           PyObject **messages, PyObject **types) {
    work *w = e->w;
    const blake2b_state *prefix = id_prefix(e, rec->partition);
    if (prefix == NULL) return HAND_OVER;
    format_ms(rec->time_ms, w->time);
    w->ver_n = (size_t)snprintf(w->ver, sizeof w->ver, "%lld", d->version);
    w->has_prev = st->has_id;
    if (st->has_id) memcpy(w->prev, st->id, 36);
    *messages = PyList_New(0);
    *types = PyTuple_New(d->nplans);
    if (*messages == NULL || *types == NULL) return ERROR;
    for (int i = 0; i < d->nplans; i++) {
        if (i > 0) { /* the chain: each event names the one before it */
            memcpy(w->prev, w->id, 36);
            w->has_prev = 1;
        }
        int rc = render_event(e, rec, d, i, prefix, *messages);
        if (rc != GO) return rc;
        PyTuple_SET_ITEM(*types, i, Py_NewRef(w->last->name));
    }
    return GO;
}
