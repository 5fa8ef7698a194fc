/* The batch path: a run of consumed messages through the stages in one call, for
   processor/task.py Task.take (docs/native.md#the-batch-path).

   Engine.take reads each message as the loop's to_record would, looks the key's prior state
   up as Task.process does (this batch's staged state, else the store's), runs the stages
   (engine.c run_stages) and, for a record the C path answers, does what Task.process does
   with the Result: stages the new state, appends the messages to produce, remembers the
   partition's next offset and counts the outcome. It stops at the first message it cannot
   answer — a consumer error, a record the stages hand over, a key that is not UTF-8 — and
   returns its index (and how many records it took since the tallies were last read): the
   Python path takes that message, and the next call goes on after it, so records of one
   key are always answered in order. */
#include <string.h>

#include "engine.h"

static PyObject *CALL_ERROR, *CALL_PARTITION, *CALL_KEY, *CALL_VALUE, *CALL_OFFSET, *CALL_TIMESTAMP, *CALL_HEADERS;

static int intern_methods(void) {
    if (CALL_ERROR != NULL) return 0;
    const char *names[] = {"error", "partition", "key", "value", "offset", "timestamp", "headers"};
    PyObject **slots[] = {&CALL_ERROR, &CALL_PARTITION, &CALL_KEY, &CALL_VALUE, &CALL_OFFSET, &CALL_TIMESTAMP,
                          &CALL_HEADERS};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if ((*slots[i] = PyUnicode_InternFromString(names[i])) == NULL) return -1;
    return 0;
}

/* Engine.take's arguments. */
typedef struct {
    PyObject *messages, *live, *staged, *held, *out, *offsets, *traceparent_of;
} batch;

/* Engine.process's arguments of one message (new references), its partition as a C long. */
typedef struct {
    PyObject *argv[8]; /* value, key, key_text, partition, offset, timestamp, traceparent, prior */
    long partition;
} message;

static void message_clear(message *m) {
    for (int i = 0; i < 8; i++) Py_CLEAR(m->argv[i]);
}

enum { TAKE = 0, STOP = 1, SKIP = 2 }; /* what read_message makes of a message (or ERROR) */

/* The record time: Message.timestamp() is (type, ms); type 0 means none. */
static PyObject *timestamp_of(PyObject *pair) {
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) return NULL;
    PyObject *type = PyTuple_GET_ITEM(pair, 0);
    long t = PyLong_AsLong(type);
    if (t == -1 && PyErr_Occurred()) return NULL;
    return Py_NewRef(t == 0 ? Py_None : PyTuple_GET_ITEM(pair, 1));
}

/* The prior state Task.process would pass: this batch's staged one, else the store's. */
static PyObject *prior_of(const batch *b, PyObject *partition, PyObject *key_text) {
    PyObject *part = PyDict_GetItemWithError(b->staged, partition);
    if (part != NULL) {
        PyObject *entry = PyDict_GetItemWithError(part, key_text);
        if (entry != NULL)
            return PyTuple_Check(entry) && PyTuple_GET_SIZE(entry) == 2
                       ? Py_NewRef(PyTuple_GET_ITEM(entry, 0))
                       : NULL;
    }
    if (PyErr_Occurred()) return NULL;
    part = PyDict_GetItemWithError(b->held, partition);
    PyObject *held = part != NULL ? PyDict_GetItemWithError(part, key_text) : NULL;
    if (PyErr_Occurred()) return NULL;
    return Py_NewRef(held != NULL ? held : Py_None);
}

/* The key as text, or NULL with no error set when it is not UTF-8 (or absent): the Python
   path dead-letters such records. */
static PyObject *key_text_of(PyObject *key) {
    if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) == 0) return NULL;
    PyObject *text = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), NULL);
    if (text == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) PyErr_Clear();
    return text;
}

static int read_headers(const batch *b, PyObject *msg, message *m) {
    PyObject *headers = PyObject_CallMethodNoArgs(msg, CALL_HEADERS);
    if (headers == NULL) return ERROR;
    if (headers == Py_None || (PyList_Check(headers) && PyList_GET_SIZE(headers) == 0)) {
        m->argv[6] = Py_NewRef(Py_None);
    } else {
        m->argv[6] = PyObject_CallOneArg(b->traceparent_of, headers);
    }
    Py_DECREF(headers);
    return m->argv[6] == NULL ? ERROR : TAKE;
}

/* One message read as to_record and Task.process read it: TAKE, SKIP (a partition not live),
   STOP (the Python path takes it) or ERROR. */
static int read_message(const batch *b, PyObject *msg, message *m) {
    memset(m, 0, sizeof *m);
    PyObject *err = PyObject_CallMethodNoArgs(msg, CALL_ERROR);
    if (err == NULL) return ERROR;
    int failed = err != Py_None;
    Py_DECREF(err);
    if (failed) return STOP;
    PyObject **a = m->argv;
    if ((a[3] = PyObject_CallMethodNoArgs(msg, CALL_PARTITION)) == NULL) return ERROR;
    int live = PySet_Contains(b->live, a[3]);
    if (live <= 0) return live < 0 ? ERROR : SKIP;
    m->partition = PyLong_AsLong(a[3]);
    if (m->partition == -1 && PyErr_Occurred()) return ERROR;
    if (m->partition < 0 || m->partition >= TALLY_PARTITIONS) return STOP;
    if ((a[1] = PyObject_CallMethodNoArgs(msg, CALL_KEY)) == NULL) return ERROR;
    if ((a[2] = key_text_of(a[1])) == NULL) return PyErr_Occurred() ? ERROR : STOP;
    if ((a[0] = PyObject_CallMethodNoArgs(msg, CALL_VALUE)) == NULL) return ERROR;
    if ((a[4] = PyObject_CallMethodNoArgs(msg, CALL_OFFSET)) == NULL) return ERROR;
    PyObject *pair = PyObject_CallMethodNoArgs(msg, CALL_TIMESTAMP);
    if (pair == NULL) return ERROR;
    a[5] = timestamp_of(pair);
    Py_DECREF(pair);
    if (a[5] == NULL) return PyErr_Occurred() ? ERROR : STOP;
    if (read_headers(b, msg, m) == ERROR) return ERROR;
    if ((a[7] = prior_of(b, a[3], a[2])) == NULL) return PyErr_Occurred() ? ERROR : STOP;
    return TAKE;
}

static int count_time(tally *t, long long ms) {
    if (t->ntimes == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 1024;
        long long *grown = realloc(t->times, cap * sizeof *grown);
        if (grown == NULL) return -1;
        t->times = grown;
        t->cap = cap;
    }
    t->times[t->ntimes++] = ms;
    return 0;
}

/* An emitting record: its messages to produce, its new state staged, its events counted. */
static int keep_emitted(Engine *e, const batch *b, const message *m, staged_out *o) {
    if (PyList_SetSlice(b->out, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, o->messages) < 0) return -1;
    PyObject *part = PyDict_GetItemWithError(b->staged, m->argv[3]);
    if (part == NULL) {
        if (PyErr_Occurred() || (part = PyDict_New()) == NULL) return -1;
        int rc = PyDict_SetItem(b->staged, m->argv[3], part);
        Py_DECREF(part); /* the staged dict holds it */
        if (rc < 0) return -1;
    }
    PyObject *entry = PyTuple_Pack(2, o->packed, o->encoded);
    if (entry == NULL) return -1;
    int rc = PyDict_SetItem(part, m->argv[2], entry);
    Py_DECREF(entry);
    if (rc < 0) return -1;
    tally *t = e->tally;
    for (int i = 0; i < o->d.nplans; i++) t->emitted[o->d.et][o->d.plans[i].kind]++;
    return count_time(t, o->rec.time_ms) < 0 ? (PyErr_NoMemory(), -1) : 0;
}

/* What Task.process does after Core.process, for a record the C path answered. */
static int keep(Engine *e, const batch *b, const message *m, staged_out *o) {
    tally *t = e->tally;
    if (o->outcome == O_EMIT) {
        if (keep_emitted(e, b, m, o) < 0) return -1;
    } else {
        t->outcomes[o->outcome]++;
    }
    PyObject *next = PyLong_FromLongLong(o->rec.offset + 1);
    if (next == NULL) return -1;
    int rc = PyDict_SetItem(b->offsets, m->argv[3], next);
    Py_DECREF(next);
    if (rc < 0) return -1;
    if (t->consumed[m->partition]++ == 0) t->touched[t->ntouched++] = (int)m->partition;
    t->records++;
    return 0;
}

static int parse_take(PyObject *const *args, Py_ssize_t nargs, batch *b, Py_ssize_t *start) {
    if (nargs != 8 || !PyList_Check(args[0]) || !PyAnySet_Check(args[2]) ||
        !PyDict_Check(args[3]) || !PyDict_Check(args[4]) || !PyList_Check(args[5]) ||
        !PyDict_Check(args[6]) || !PyCallable_Check(args[7])) {
        PyErr_SetString(PyExc_TypeError, "take(messages: list, start: int, live: set, "
                                         "staged: dict, held: dict, out: list, offsets: dict, "
                                         "traceparent_of)");
        return -1;
    }
    *b = (batch){args[0], args[2], args[3], args[4], args[5], args[6], args[7]};
    *start = PyLong_AsSsize_t(args[1]);
    return *start == -1 && PyErr_Occurred() ? -1 : 0;
}

PyObject *engine_take(Engine *e, PyObject *const *args, Py_ssize_t nargs) {
    batch b;
    Py_ssize_t i;
    if (intern_methods() < 0 || parse_take(args, nargs, &b, &i) < 0) return NULL;
    for (; i < PyList_GET_SIZE(b.messages); i++) {
        message m;
        int read = read_message(&b, PyList_GET_ITEM(b.messages, i), &m);
        int rc = read;
        staged_out o = {0};
        if (read == TAKE) rc = run_stages(e, m.argv, 8, &o);
        if (read == TAKE && rc == GO && keep(e, &b, &m, &o) < 0) rc = ERROR;
        staged_out_clear(&o);
        message_clear(&m);
        if (rc == ERROR) return NULL;
        if (read == SKIP) continue;
        if (read == STOP || rc == HAND_OVER) break;
    }
    return Py_BuildValue("(nL)", i, e->tally->records);
}

static PyObject *counts(const long long *v, int n) {
    PyObject *t = PyTuple_New(n);
    for (int i = 0; t != NULL && i < n; i++) {
        PyObject *c = PyLong_FromLongLong(v[i]);
        if (c == NULL) Py_CLEAR(t);
        else PyTuple_SET_ITEM(t, i, c);
    }
    return t;
}

static PyObject *consumed_of(const tally *t) {
    PyObject *d = PyDict_New();
    for (size_t i = 0; d != NULL && i < t->ntouched; i++) {
        PyObject *p = PyLong_FromLong(t->touched[i]);
        PyObject *n = PyLong_FromLongLong(t->consumed[t->touched[i]]);
        if (p == NULL || n == NULL || PyDict_SetItem(d, p, n) < 0) Py_CLEAR(d);
        Py_XDECREF(p);
        Py_XDECREF(n);
    }
    return d;
}

/* (records, {partition: consumed}, outcome counts by O_*, event counts by [ET_*][K_*],
   [event time of every emitting record]); the counts start again at zero. */
PyObject *engine_tallies(Engine *e, PyObject *unused) {
    (void)unused;
    tally *t = e->tally;
    PyObject *emitted = PyTuple_New(NTYPES);
    for (int et = 0; emitted != NULL && et < NTYPES; et++) {
        PyObject *row = counts(t->emitted[et], NKINDS);
        if (row == NULL) Py_CLEAR(emitted);
        else PyTuple_SET_ITEM(emitted, et, row);
    }
    PyObject *times = PyList_New((Py_ssize_t)t->ntimes);
    for (size_t i = 0; times != NULL && i < t->ntimes; i++) {
        PyObject *ms = PyLong_FromLongLong(t->times[i]);
        if (ms == NULL) Py_CLEAR(times);
        else PyList_SET_ITEM(times, (Py_ssize_t)i, ms);
    }
    PyObject *result = Py_BuildValue("(LNNNN)", t->records, consumed_of(t),
                                     counts(t->outcomes, NOUTCOMES), emitted, times);
    if (result == NULL) return NULL;
    for (size_t i = 0; i < t->ntouched; i++) t->consumed[t->touched[i]] = 0;
    t->ntouched = 0;
    t->records = 0;
    t->ntimes = 0;
    memset(t->outcomes, 0, sizeof t->outcomes);
    memset(t->emitted, 0, sizeof t->emitted);
    return result;
}
