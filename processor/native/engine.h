/* The engine: one record through the stages of Core.process, each named after its Python
   twin (docs/native.md#the-stages):

     decode.c   records.py Decoder.decode, packed.py unpack    record, prior
     decide.c   decide.py decide (canonical.py on the way)      decision
     render.c   render.py Renderer.render                       the event messages
     encode.c   codec.py encode_state, packed.py pack           changelog value, held state

   Every stage answers GO, HAND_OVER (the Python path takes the record: it is not plain, or
   the C path cannot be sure to answer alike) or ERROR (a Python exception is set: only a
   failed allocation of a Python object). Large scratch arrays live in the engine's `work`,
   never on the stack. */
#ifndef TMF_ENGINE_H
#define TMF_ENGINE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "blake2b.h"
#include "contract.h"
#include "json.h"

#define FAST_MAX_BYTES (256 * 1024) /* larger values take the Python path */
#define MAX_NAMES 256               /* top-level members of an instance the C path takes */
#define MAX_DEPTH 128 /* the reader and writers recurse: deeper documents take the Python path */
#define NAMES_BYTES 8192 /* the NUL-joined attribute names */
#define HREF_BYTES 1024  /* a held href rebuilt from its profile's prefix and the key */
#define MAX_PLANS 3      /* events of one record: attribute, state, operating status */
#define ID_PREFIXES 4096 /* (topic, partition) hash states kept */

enum { GO = 0, HAND_OVER = 1, ERROR = -1 };

typedef struct {
    const char *s;
    size_t n;
} span;

static inline int span_eq(span a, const char *s, size_t n) {
    return a.n == n && (n == 0 || memcmp(a.s, s, n) == 0);
}

/* A member rule of an event schema (processor/instance_check.py), as native.py _rule
   gives it. */
typedef struct rule {
    span member;
    unsigned mask;
    int has_enum;
    int nullable;
    span *enums;
    size_t nenum;
    long min_length;
    struct rule *items;
} rule;

/* One event kind of one entity type (render.py _EventConst), absent where the profile
   has no such event. */
typedef struct {
    int present;
    PyObject *name;  /* str */
    PyObject *topic; /* str */
    PyObject *type_header, *schema_header;
    span name_b, topic_b, type_json, schema_json;
} evconst;

typedef struct {
    PyObject *name; /* "service" or "resource" */
    span name_b;
    int enabled;
    span default_type;
    span *state_fields;
    size_t nstate;
    rule *rules;
    size_t nrules;
    evconst ev[NKINDS];
} entity;

typedef struct {
    span v[MAX_NAMES];
    size_t n;
} nameset;

/* -- what the stages hand on ------------------------------------------------------------ */

/* decode: the record and its change (records.py InputRecord and Change). */
typedef struct {
    PyObject *key, *key_text, *traceparent; /* borrowed; traceparent may be None */
    span value;                             /* value.s NULL: a tombstone */
    span k;                                 /* the key's bytes */
    long long partition, offset, timestamp; /* timestamp -1: none */
    int et;                                 /* ET_*, or -1: a tombstone's (the state says) */
    int is_delete;
    span corr;        /* the correlation id: correlationId, else the key */
    int corr_given;   /* correlationId was in the record */
    const jnode *inst; /* NULL for deletes */
    long long time_ms;
} record;

/* decode: the key's prior state, as packed.py unpack reads it (the parts deciding needs). */
typedef struct {
    int present, deleted, et;
    long long version, observed_at, offset;
    span hash, digests, names;
    span href, at_type; /* s NULL: none */
    PyObject *profile;  /* borrowed from the profile table */
    const char *pid;
    int has_id;
    char id[36];
} prior;

/* decide.py Planned */
typedef struct {
    int kind;
    span *changed; /* sorted; in work.planned */
    size_t nchanged;
} plan;

/* decide: what the record does (decide.py Decision, and what render and encode need). */
typedef struct {
    int et;
    plan plans[MAX_PLANS];
    int nplans;
    size_t npub;          /* public members, in work.pub */
    uint8_t hash[16];
    size_t hash_n;        /* 0 for a delete */
    span names, digests;  /* the new state's attribute names and fingerprints */
    const jnode *href, *at_type; /* the instance's public members (NULL: none) */
    span state_href, state_at;   /* what the new state keeps (s NULL: none) */
    long long version;
} decision;

/* Scratch memory of one engine (an engine serves one thread). */
typedef struct {
    jnode root; /* the value's root: its nodes live in the engine's jdoc */
    jmember pub[MAX_NAMES], sorted[MAX_NAMES];
    size_t start[MAX_NAMES], end[MAX_NAMES]; /* each member's value in the rendering */
    char names[NAMES_BYTES];
    char digests[4 * MAX_NAMES];
    span old_names[MAX_NAMES], new_names[MAX_NAMES];
    nameset changed, removed;
    span planned[MAX_PLANS][MAX_NAMES];
    char href[HREF_BYTES];
    jbuf canon, out, fieldpath, cloud, state, packed;
    /* render → encode: the last event */
    char time[24], ver[24], id[36], prev[36];
    size_t ver_n;
    uint8_t raw_id[16];
    int has_prev;
    const evconst *last;
    PyObject *last_value; /* borrowed from the last message */
} work;

#define TALLY_PARTITIONS 4096 /* partitions a batch counts; higher ones take the Python path */

/* What the batch path counts between two commits (batch.c; Task.commit reads and resets it):
   processor/task.py Tallies for the records the C path took. */
typedef struct {
    long long records;
    long long consumed[TALLY_PARTITIONS];
    int touched[TALLY_PARTITIONS]; /* the partitions counted, in order */
    size_t ntouched;
    long long outcomes[NOUTCOMES];
    long long emitted[NTYPES][NKINDS];
    long long *times; /* event times of emitting records */
    size_t ntimes, cap;
} tally;

typedef struct {
    PyObject_HEAD
    int v5, delta;
    long long max_record, max_message, headroom;
    int max_depth;
    ptree *private_tree;
    entity types[NTYPES];
    span input_topic;
    PyObject *spec_header, *source_header, *content_type_header;
    span source_json, constants, entity_ref;
    PyTypeObject *out_message, *result_type; /* named tuples: built as tuples */
    PyObject *profiles, *profile_ids, *profile_by_id;
    PyObject *keep; /* owns every string the spans above point into */
    jdoc doc;
    work *w;
    blake2b_state *prefix;
    long long *prefix_part;
    size_t nprefix;
    tally *tally;
} Engine;

/* One record through the stages (engine.c run_stages): its record and decision, the
   outcome and, for an emitting record, the new Python objects it made (owned). */
typedef struct {
    record rec;
    decision d;
    int outcome;
    PyObject *messages, *types, *encoded, *packed;
} staged_out;

/* Interned strings (engine.c). */
extern PyObject *S_OUTCOME[NOUTCOMES], *S_INTERN;
extern PyObject *H_ID, *H_TIME, *H_SUBJECT, *H_PARTITIONKEY, *H_CORRELATIONID, *H_VERSION,
    *H_PREVIOUSID, *H_TRACEPARENT;

/* spec.c: the engine from its spec (native.py build_engine). */
int engine_init(Engine *e, PyObject *args, PyObject *kwds);
void engine_dealloc(Engine *e);

/* decode.c */
int decode_args(PyObject *const *args, Py_ssize_t nargs, record *rec);
int decode_record(Engine *e, record *rec);
int decode_prior(Engine *e, PyObject *packed, span key, prior *st);

/* decide.c: GO and the outcome (O_EMIT: d holds the events to render), or HAND_OVER. */
int decide(Engine *e, const record *rec, const prior *st, decision *d, int *outcome);

/* render.c: the event messages (a new list) and their type names (a new tuple). */
int render(Engine *e, const record *rec, const prior *st, const decision *d,
           PyObject **messages, PyObject **types);

/* encode.c: the changelog value and the held (packed) state, new bytes objects. */
int encode(Engine *e, const record *rec, const prior *st, const decision *d,
           PyObject **encoded, PyObject **packed);

/* engine.c: the stages over Engine.process's arguments, and the release of what they made. */
int run_stages(Engine *e, PyObject *const *args, Py_ssize_t nargs, staged_out *out);
void staged_out_clear(staged_out *out);

/* batch.c: Engine.take and Engine.tallies. */
PyObject *engine_take(Engine *e, PyObject *const *args, Py_ssize_t nargs);
PyObject *engine_tallies(Engine *e, PyObject *unused);

/* Helpers shared by the stages. */
int utf8_of(PyObject *o, span *out);                  /* engine.c */
PyObject *named_tuple(PyTypeObject *type, PyObject **items, Py_ssize_t n); /* engine.c */
int nameset_has(const nameset *s, span v);            /* decide.c */
const blake2b_state *id_prefix(Engine *e, long long partition); /* render.c */

#endif
