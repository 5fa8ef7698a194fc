/* The engine built from its spec: processor/native.py build_engine writes the spec, this
   reads it. Strings are kept alive by `keep` and read through spans into them. */
#include <stdlib.h>
#include <string.h>

#include "engine.h"

static PyObject *get(PyObject *spec, const char *key) {
    PyObject *v = PyDict_GetItemString(spec, key);
    if (v == NULL) PyErr_Format(PyExc_KeyError, "engine spec lacks %s", key);
    return v;
}

/* A str or bytes of the spec, kept alive by the engine, as a span. */
static int keep_span(Engine *e, PyObject *spec, const char *key, span *out) {
    PyObject *v = get(spec, key);
    if (v == NULL || PyList_Append(e->keep, v) < 0) return -1;
    if (PyBytes_Check(v)) {
        out->s = PyBytes_AS_STRING(v);
        out->n = (size_t)PyBytes_GET_SIZE(v);
        return 0;
    }
    return utf8_of(v, out);
}

static int keep_item(Engine *e, PyObject *item, span *out) {
    if (PyList_Append(e->keep, item) < 0) return -1;
    return utf8_of(item, out);
}

static int get_long(PyObject *spec, const char *key, long long *out) {
    PyObject *v = get(spec, key);
    if (v == NULL) return -1;
    *out = PyLong_AsLongLong(v);
    return PyErr_Occurred() ? -1 : 0;
}

static int get_flag(PyObject *spec, const char *key, int *out) {
    PyObject *v = get(spec, key);
    if (v == NULL) return -1;
    *out = PyObject_IsTrue(v);
    return *out < 0 ? -1 : 0;
}

/* A named tuple type whose fields are exactly `names` (contract.h). */
static int check_fields(PyObject *type, const char *const *names, Py_ssize_t n) {
    if (!PyType_Check(type) || !PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "out_message and result must be named tuples");
        return -1;
    }
    PyObject *fields = PyObject_GetAttrString(type, "_fields");
    if (fields == NULL) return -1;
    int ok = PyTuple_Check(fields) && PyTuple_GET_SIZE(fields) == n;
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        PyObject *f = PyTuple_GET_ITEM(fields, i);
        ok = PyUnicode_Check(f) && PyUnicode_CompareWithASCIIString(f, names[i]) == 0;
    }
    Py_DECREF(fields);
    if (!ok) PyErr_Format(PyExc_TypeError, "%R has fields the C path does not know", type);
    return ok ? 0 : -1;
}

static int init_scalars(Engine *e, PyObject *spec) {
    long long depth;
    if (get_flag(spec, "v5", &e->v5) < 0 || get_flag(spec, "delta", &e->delta) < 0 ||
        get_long(spec, "max_record_bytes", &e->max_record) < 0 ||
        get_long(spec, "max_message_bytes", &e->max_message) < 0 ||
        get_long(spec, "headroom", &e->headroom) < 0 ||
        get_long(spec, "max_json_depth", &depth) < 0)
        return -1;
    e->max_depth = depth > MAX_DEPTH ? MAX_DEPTH : (int)depth;
    if (keep_span(e, spec, "input_topic", &e->input_topic) < 0 ||
        keep_span(e, spec, "source_json", &e->source_json) < 0 ||
        keep_span(e, spec, "constants_json", &e->constants) < 0 ||
        keep_span(e, spec, "entity_ref_json", &e->entity_ref) < 0)
        return -1;
    return 0;
}

static int init_objects(Engine *e, PyObject *spec) {
    static const char *const result_fields[] = {RESULT_FIELDS};
    static const char *const message_fields[] = {OUT_MESSAGE_FIELDS};
    const char *names[] = {"spec_header", "source_header", "content_type_header",
                           "out_message", "result",        "profiles"};
    PyObject **slots[] = {&e->spec_header, &e->source_header, &e->content_type_header,
                          (PyObject **)&e->out_message, (PyObject **)&e->result_type,
                          &e->profiles};
    for (int i = 0; i < 6; i++) {
        PyObject *v = get(spec, names[i]);
        if (v == NULL) return -1;
        *slots[i] = Py_NewRef(v);
    }
    if (check_fields((PyObject *)e->result_type, result_fields, R_FIELDS) < 0 ||
        check_fields((PyObject *)e->out_message, message_fields, M_FIELDS) < 0)
        return -1;
    e->profile_ids = PyObject_GetAttrString(e->profiles, "ids");
    e->profile_by_id = PyObject_GetAttrString(e->profiles, "by_id");
    if (e->profile_ids == NULL || e->profile_by_id == NULL) return -1;
    if (!PyDict_Check(e->profile_ids) || !PyDict_Check(e->profile_by_id)) {
        PyErr_SetString(PyExc_TypeError, "profiles.ids and profiles.by_id must be dicts");
        return -1;
    }
    return 0;
}

static int init_private(Engine *e, PyObject *spec) {
    e->private_tree = ptree_new();
    if (e->private_tree == NULL) return PyErr_NoMemory(), -1;
    PyObject *paths = get(spec, "private");
    if (paths == NULL) return -1;
    Py_ssize_t n = PySequence_Size(paths);
    if (n < 0) return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *path = PySequence_GetItem(paths, i);
        span s = {0};
        int rc = path == NULL ? -1 : utf8_of(path, &s);
        if (rc == 0 && ptree_add(e->private_tree, s.s, s.n) < 0) {
            PyErr_NoMemory();
            rc = -1;
        }
        Py_XDECREF(path);
        if (rc < 0) return -1;
    }
    return 0;
}

/* (member, mask, enum strings or None, nullable, min_length or -1, items or None) */
static int rule_from(Engine *e, PyObject *spec, rule *r) {
    PyObject *name, *enums, *items;
    memset(r, 0, sizeof *r);
    if (!PyArg_ParseTuple(spec, "OIOplO", &name, &r->mask, &enums, &r->nullable,
                          &r->min_length, &items))
        return -1;
    if (name != Py_None && keep_item(e, name, &r->member) < 0) return -1;
    if (enums != Py_None) {
        r->has_enum = 1;
        Py_ssize_t n = PySequence_Size(enums);
        if (n < 0) return -1;
        r->enums = calloc((size_t)n + 1, sizeof(span));
        if (r->enums == NULL) return PyErr_NoMemory(), -1;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *item = PySequence_GetItem(enums, i);
            int rc = item == NULL ? -1 : keep_item(e, item, &r->enums[r->nenum]);
            Py_XDECREF(item);
            if (rc < 0) return -1;
            r->nenum++;
        }
    }
    if (items != Py_None) {
        r->items = malloc(sizeof(rule));
        if (r->items == NULL) return PyErr_NoMemory(), -1;
        if (rule_from(e, items, r->items) < 0) {
            free(r->items);
            r->items = NULL;
            return -1;
        }
    }
    return 0;
}

static void rule_free(rule *r) {
    free(r->enums);
    if (r->items != NULL) rule_free(r->items);
    free(r->items);
}

static int init_spans(Engine *e, PyObject *list, span **out, size_t *count) {
    Py_ssize_t n = PySequence_Size(list);
    if (n < 0) return -1;
    *out = calloc((size_t)n + 1, sizeof(span));
    if (*out == NULL) return PyErr_NoMemory(), -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_GetItem(list, i);
        int rc = item == NULL ? -1 : keep_item(e, item, &(*out)[i]);
        Py_XDECREF(item);
        if (rc < 0) return -1;
        *count = (size_t)i + 1;
    }
    return 0;
}

static int init_rules(Engine *e, PyObject *list, entity *t) {
    Py_ssize_t n = PySequence_Size(list);
    if (n < 0) return -1;
    t->rules = calloc((size_t)n + 1, sizeof(rule));
    if (t->rules == NULL) return PyErr_NoMemory(), -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *r = PySequence_GetItem(list, i);
        int rc = r == NULL ? -1 : rule_from(e, r, &t->rules[i]);
        Py_XDECREF(r);
        if (rc < 0) return -1;
        t->nrules = (size_t)i + 1;
    }
    return 0;
}

/* (name, topic, type header, schema header, type as JSON, schema as JSON) or None */
static int init_event(Engine *e, PyObject *c, evconst *ev) {
    if (PyList_Append(e->keep, c) < 0) return -1;
    if (c == Py_None) return 0;
    PyObject *tj, *sj;
    if (!PyArg_ParseTuple(c, "UUOOSS", &ev->name, &ev->topic, &ev->type_header,
                          &ev->schema_header, &tj, &sj))
        return -1;
    if (utf8_of(ev->name, &ev->name_b) < 0 || utf8_of(ev->topic, &ev->topic_b) < 0) return -1;
    ev->type_json = (span){PyBytes_AS_STRING(tj), (size_t)PyBytes_GET_SIZE(tj)};
    ev->schema_json = (span){PyBytes_AS_STRING(sj), (size_t)PyBytes_GET_SIZE(sj)};
    ev->present = 1;
    return 0;
}

static int init_entity(Engine *e, PyObject *spec, entity *t) {
    PyObject *v;
    if ((v = get(spec, "name")) == NULL) return -1;
    t->name = Py_NewRef(v);
    if (utf8_of(v, &t->name_b) < 0 || get_flag(spec, "enabled", &t->enabled) < 0 ||
        keep_span(e, spec, "default_type", &t->default_type) < 0)
        return -1;
    if ((v = get(spec, "state_fields")) == NULL ||
        init_spans(e, v, &t->state_fields, &t->nstate) < 0)
        return -1;
    if ((v = get(spec, "rules")) == NULL || init_rules(e, v, t) < 0) return -1;
    if ((v = get(spec, "events")) == NULL) return -1;
    if (PySequence_Size(v) != NKINDS) {
        PyErr_SetString(PyExc_ValueError, "events must list every kind");
        return -1;
    }
    for (int k = 0; k < NKINDS; k++) {
        PyObject *c = PySequence_GetItem(v, k);
        int rc = c == NULL ? -1 : init_event(e, c, &t->ev[k]);
        Py_XDECREF(c);
        if (rc < 0) return -1;
    }
    return 0;
}

int engine_init(Engine *e, PyObject *args, PyObject *kwds) {
    (void)kwds;
    static const char *const names[] = {ENTITY_TYPE_NAMES};
    PyObject *spec;
    if (!PyArg_ParseTuple(args, "O!", &PyDict_Type, &spec)) return -1;
    if (e->keep != NULL) {
        PyErr_SetString(PyExc_TypeError, "an engine is built once");
        return -1;
    }
    e->keep = PyList_New(0);
    e->w = calloc(1, sizeof(work));
    e->tally = calloc(1, sizeof(tally));
    if (e->w == NULL || e->tally == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (e->keep == NULL) return -1;
    if (init_scalars(e, spec) < 0 || init_objects(e, spec) < 0 || init_private(e, spec) < 0)
        return -1;
    PyObject *types = get(spec, "entity_types");
    if (types == NULL) return -1;
    for (int t = 0; t < NTYPES; t++) {
        PyObject *et = PyDict_GetItemString(types, names[t]);
        if (et == NULL || !PyDict_Check(et)) {
            PyErr_Format(PyExc_KeyError, "engine spec lacks entity type %s", names[t]);
            return -1;
        }
        if (init_entity(e, et, &e->types[t]) < 0) return -1;
    }
    return 0;
}

static void free_work(work *w) {
    if (w == NULL) return;
    jbuf *bufs[] = {&w->canon, &w->out, &w->fieldpath, &w->cloud, &w->state, &w->packed};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) jbuf_free(bufs[i]);
    free(w);
}

void engine_dealloc(Engine *e) {
    ptree_free(e->private_tree);
    for (int t = 0; t < NTYPES; t++) {
        entity *et = &e->types[t];
        free(et->state_fields);
        for (size_t i = 0; et->rules != NULL && i < et->nrules; i++) rule_free(&et->rules[i]);
        free(et->rules);
        Py_XDECREF(et->name);
    }
    Py_XDECREF(e->spec_header);
    Py_XDECREF(e->source_header);
    Py_XDECREF(e->content_type_header);
    Py_XDECREF(e->out_message);
    Py_XDECREF(e->result_type);
    Py_XDECREF(e->profiles);
    Py_XDECREF(e->profile_ids);
    Py_XDECREF(e->profile_by_id);
    Py_XDECREF(e->keep);
    jdoc_free(&e->doc);
    free_work(e->w);
    if (e->tally != NULL) free(e->tally->times);
    free(e->tally);
    free(e->prefix);
    free(e->prefix_part);
    Py_TYPE(e)->tp_free((PyObject *)e);
}
