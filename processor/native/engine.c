/* processor._native: the per-record path of Core.process for the common case, in C.

   Engine.process takes one JSON upsert, delete or tombstone and the key's packed state and
   returns what the Python path would (the same Result: event bytes, headers, packed state
   and changelog value), or None when the record is anything but plain: a dead letter, a
   float, an escaped name, a state kept in a rare form... The Python path then handles it,
   and stays the reference: tests/unit/test_native.py and the fuzzer (tests/fuzz/) compare
   the two. The stages are in engine.h; an engine has scratch memory of its own: one engine
   per Core, one Core per thread. */
#include <string.h>

#include "engine.h"
#include "timeid.h"

PyObject *S_OUTCOME[NOUTCOMES], *S_INTERN;
PyObject *H_ID, *H_TIME, *H_SUBJECT, *H_PARTITIONKEY, *H_CORRELATIONID, *H_VERSION,
    *H_PREVIOUSID, *H_TRACEPARENT;

int utf8_of(PyObject *o, span *out) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    if (s == NULL) return -1;
    out->s = s;
    out->n = (size_t)n;
    return 0;
}

/* An instance of a named tuple type, its items stolen (NULL items: fails, releasing the
   rest; the exception is the one that made the item NULL). */
PyObject *named_tuple(PyTypeObject *type, PyObject **items, Py_ssize_t n) {
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

/* Result(outcome, [], key, entity_type): a record that emits nothing. */
static PyObject *quiet_result(Engine *e, int outcome, const record *rec, int et) {
    PyObject *items[R_FIELDS];
    for (int i = 0; i < R_FIELDS; i++) items[i] = NULL;
    items[R_OUTCOME] = Py_NewRef(S_OUTCOME[outcome]);
    items[R_MESSAGES] = PyList_New(0);
    items[R_KEY] = Py_NewRef(rec->key_text);
    items[R_ENTITY_TYPE] = Py_NewRef(et < 0 ? Py_None : e->types[et].name);
    items[R_EVENT_TYPES] = PyTuple_New(0);
    items[R_REASON] = Py_NewRef(Py_None);
    items[R_TIME_MS] = Py_NewRef(Py_None);
    items[R_STORED] = Py_NewRef(Py_None);
    items[R_ENCODED] = Py_NewRef(Py_None);
    return named_tuple(e->result_type, items, R_FIELDS);
}

/* Result("emit", messages, key, entity_type, event_types, None, time_ms, stored, encoded),
   its parts stolen. */
static PyObject *emit_result(Engine *e, const record *rec, const decision *d,
                             PyObject *messages, PyObject *types, PyObject *packed,
                             PyObject *encoded) {
    PyObject *items[R_FIELDS];
    items[R_OUTCOME] = Py_NewRef(S_OUTCOME[O_EMIT]);
    items[R_MESSAGES] = messages;
    items[R_KEY] = Py_NewRef(rec->key_text);
    items[R_ENTITY_TYPE] = Py_NewRef(e->types[d->et].name);
    items[R_EVENT_TYPES] = types;
    items[R_REASON] = Py_NewRef(Py_None);
    items[R_TIME_MS] = PyLong_FromLongLong(rec->time_ms);
    items[R_STORED] = packed;
    items[R_ENCODED] = encoded;
    return named_tuple(e->result_type, items, R_FIELDS);
}

/* The stages in the order of Core.process: decode, decide, render, encode, over the
   arguments of Engine.process. GO with the outcome (and, for O_EMIT, the new messages,
   event types, changelog value and held state in `out`), HAND_OVER or ERROR. */
int run_stages(Engine *e, PyObject *const *args, Py_ssize_t nargs, staged_out *out) {
    prior st;
    memset(out, 0, sizeof *out);
    int rc = decode_args(args, nargs, &out->rec);
    if (rc == GO) rc = decode_record(e, &out->rec);
    if (rc == GO) rc = decode_prior(e, args[7], out->rec.k, &st);
    if (rc == GO) rc = decide(e, &out->rec, &st, &out->d, &out->outcome);
    if (rc != GO || out->outcome != O_EMIT) return rc;
    rc = render(e, &out->rec, &st, &out->d, &out->messages, &out->types);
    if (rc == GO) rc = encode(e, &out->rec, &st, &out->d, &out->encoded, &out->packed);
    if (rc != GO) staged_out_clear(out);
    return rc;
}

void staged_out_clear(staged_out *out) {
    Py_CLEAR(out->messages);
    Py_CLEAR(out->types);
    Py_CLEAR(out->encoded);
    Py_CLEAR(out->packed);
}

static PyObject *engine_process(Engine *e, PyObject *const *args, Py_ssize_t nargs) {
    staged_out out;
    int rc = run_stages(e, args, nargs, &out);
    if (rc == ERROR) return NULL;
    if (rc == HAND_OVER) Py_RETURN_NONE;
    if (out.outcome != O_EMIT) return quiet_result(e, out.outcome, &out.rec, out.d.et);
    return emit_result(e, &out.rec, &out.d, out.messages, out.types, out.packed, out.encoded);
}

static PyMethodDef engine_methods[] = {
    {"process", (PyCFunction)(void (*)(void))engine_process, METH_FASTCALL,
     "process(value, key, key_text, partition, offset, timestamp_ms, traceparent, packed) "
     "-> Result | None"},
    {"take", (PyCFunction)(void (*)(void))engine_take, METH_FASTCALL,
     "take(messages, start, live, staged, held, out, offsets, traceparent_of) -> (int, int)"},
    {"tallies", (PyCFunction)(void (*)(void))engine_tallies, METH_NOARGS,
     "tallies() -> (records, consumed, outcomes, emitted, times); resets them"},
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

/* -- functions for the tests -------------------------------------------------------------- */

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
    {"format_ms", py_format_ms, METH_O, "format_ms(ms) -> str (tests)"},
    {"parse_ms", py_parse_ms, METH_O, "parse_ms(text) -> int | None (tests)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "processor._native",
    "The C fast path of the decision core (see processor/native.py).", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

/* -- the contract (contract.h), for the tests that hold it to the Python side -------------- */

static PyObject *names_tuple(const char *const *names, Py_ssize_t n) {
    PyObject *t = PyTuple_New(n);
    for (Py_ssize_t i = 0; t != NULL && i < n; i++) {
        PyObject *s = PyUnicode_InternFromString(names[i]);
        if (s == NULL) Py_CLEAR(t);
        else PyTuple_SET_ITEM(t, i, s);
    }
    return t;
}

static PyObject *contract(void) {
    static const char *const result[] = {RESULT_FIELDS}, *const message[] = {OUT_MESSAGE_FIELDS},
                             *const outcomes[] = {OUTCOMES}, *const types[] = {ENTITY_TYPE_NAMES},
                             *const kinds[] = {KIND_NAMES};
    return Py_BuildValue(
        "{sNsNsNsNsN"
        "s{sssisisisisisisisisi}"
        "s{sisisisisisi}"
        "s{sLsL}si}",
        "result_fields", names_tuple(result, R_FIELDS), "out_message_fields",
        names_tuple(message, M_FIELDS), "outcomes", names_tuple(outcomes, NOUTCOMES),
        "entity_types", names_tuple(types, NTYPES), "kinds", names_tuple(kinds, NKINDS),
        "packed", "head", PK_HEAD_FORMAT, "head_size", PK_HEAD, "mark", PK_MARK, "deleted",
        PK_DELETED, "href_keyed", PK_HREF_KEYED, "id_packed", PK_ID_PACKED, "time_observed",
        PK_TIME_OBSERVED, "time_packed", PK_TIME_PACKED, "profile_inline", PK_PROFILE_INLINE,
        "avro", PK_AVRO, "type_bits", "string", T_STRING, "null", T_NULL, "boolean", T_BOOLEAN,
        "array", T_ARRAY, "object", T_OBJECT, "number", T_NUMBER, "time", "min_ms", MIN_MS,
        "max_ms", MAX_MS, "max_depth", MAX_DEPTH);
}

static int intern_all(void) {
    static const char *const outcomes[] = {OUTCOMES};
    for (int i = 0; i < NOUTCOMES; i++)
        if ((S_OUTCOME[i] = PyUnicode_InternFromString(outcomes[i])) == NULL) return -1;
    const char *names[] = {"intern",        "ce_id",           "ce_time",
                           "ce_subject",    "ce_partitionkey", "ce_correlationid",
                           "ce_entityversion", "ce_previousid", "ce_traceparent"};
    PyObject **slots[] = {&S_INTERN,       &H_ID,           &H_TIME,
                          &H_SUBJECT,      &H_PARTITIONKEY, &H_CORRELATIONID,
                          &H_VERSION,      &H_PREVIOUSID,   &H_TRACEPARENT};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if ((*slots[i] = PyUnicode_InternFromString(names[i])) == NULL) return -1;
    return 0;
}

PyMODINIT_FUNC PyInit__native(void) {
    const uint16_t probe = 1;
    if (*(const uint8_t *)&probe != 1) {
        PyErr_SetString(PyExc_ImportError, "the fast path needs a little-endian host");
        return NULL;
    }
    if (PyType_Ready(&EngineType) < 0 || intern_all() < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    PyObject *shapes = contract();
    if (shapes == NULL || PyModule_AddObjectRef(m, "Engine", (PyObject *)&EngineType) < 0 ||
        PyModule_AddObjectRef(m, "CONTRACT", shapes) < 0) {
        Py_XDECREF(shapes);
        Py_DECREF(m);
        return NULL;
    }
    Py_DECREF(shapes);
    return m;
}
