/* decide: which events a change fires (processor/decide.py decide), with the canonical
   rendering, hash and fingerprints of processor/canonical.py on the way, and the member
   rules of processor/instance_check.py. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "engine.h"

/* -- the public instance (canonical.py) --------------------------------------------------- */

/* The canonical rendering of the public instance (w->canon), its BLAKE2b-128, and where each
   member's value lies in it: its fingerprint is the CRC-32 of those bytes. */
static int canonical(Engine *e, const jnode *inst, decision *d) {
    work *w = e->w;
    memcpy(w->sorted, w->pub, d->npub * sizeof(jmember));
    json_sort_members(w->sorted, d->npub);
    jbuf *b = &w->canon;
    jbuf_reset(b);
    jbuf_byte(b, '{');
    for (size_t i = 0; i < d->npub; i++) {
        const jnode *m = w->sorted[i].node;
        size_t k = (size_t)(m - inst->kids);
        if (i) jbuf_byte(b, ',');
        jbuf_str(b, m->key, m->klen);
        jbuf_byte(b, ':');
        w->start[k] = b->len;
        json_write(b, m, w->sorted[i].sub, 1);
        w->end[k] = b->len;
    }
    jbuf_byte(b, '}');
    if (b->failed) return HAND_OVER;
    blake2b_state hs;
    blake2b_init(&hs, 16);
    blake2b_update(&hs, b->p, b->len);
    blake2b_final(&hs, d->hash);
    d->hash_n = 16;
    return GO;
}

/* The top-level names joined by NUL and a big-endian CRC-32 per member (fingerprints), and
   the members the state keeps (href and @type). */
static int fingerprints(Engine *e, const jnode *inst, decision *d) {
    work *w = e->w;
    size_t n = 0;
    for (size_t i = 0; i < d->npub; i++) {
        const jnode *m = w->pub[i].node;
        if (n + m->klen + 1 > NAMES_BYTES) return HAND_OVER;
        if (i) w->names[n++] = 0;
        memcpy(w->names + n, m->key, m->klen);
        n += m->klen;
        size_t k = (size_t)(m - inst->kids);
        uLong crc = crc32_z(0, (const Bytef *)w->canon.p + w->start[k], w->end[k] - w->start[k]);
        for (int b = 0; b < 4; b++) w->digests[4 * i + (size_t)b] = (char)(crc >> (24 - 8 * b));
        if (m->klen == 4 && memcmp(m->key, "href", 4) == 0) d->href = m;
        if (m->klen == 5 && memcmp(m->key, "@type", 5) == 0) d->at_type = m;
    }
    d->names = (span){w->names, n};
    d->digests = (span){w->digests, 4 * d->npub};
    /* kept in the state as they are: escaped ones only the Python path decodes */
    if ((d->href != NULL && d->href->esc) || (d->at_type != NULL && d->at_type->esc))
        return HAND_OVER;
    if (d->href != NULL && d->href->type == J_STR)
        d->state_href = (span){d->href->s, d->href->len};
    if (d->at_type != NULL && d->at_type->type == J_STR)
        d->state_at = (span){d->at_type->s, d->at_type->len};
    return GO;
}

/* -- member rules (instance_check.py) ------------------------------------------------------ */

static size_t codepoints(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static unsigned type_bit(const jnode *v) {
    switch (v->type) {
    case J_STR: return T_STRING;
    case J_NULL: return T_NULL;
    case J_ARR: return T_ARRAY;
    case J_OBJ: return T_OBJECT;
    case J_INT: return T_NUMBER;
    default: return T_BOOLEAN;
    }
}

/* 1 when the value passes the rule; 0 when it may not (the Python path says why). */
static int rule_ok(const rule *r, const jnode *v) {
    if (v->esc && (r->has_enum || r->min_length >= 0)) return 0; /* compared decoded: Python */
    if (r->mask && !(r->mask & type_bit(v))) return 0;
    if (r->has_enum && !(v->type == J_NULL && r->nullable)) {
        if (v->type != J_STR) return 0;
        size_t i = 0;
        while (i < r->nenum && !span_eq(r->enums[i], v->s, v->len)) i++;
        if (i == r->nenum) return 0;
    }
    if (r->min_length >= 0 && v->type == J_STR && codepoints(v->s, v->len) < (size_t)r->min_length)
        return 0;
    if (r->items != NULL && v->type == J_ARR)
        for (uint32_t i = 0; i < v->len; i++)
            if (!rule_ok(r->items, &v->kids[i])) return 0;
    return 1;
}

static int rules_ok(const Engine *e, const decision *d) {
    const entity *t = &e->types[d->et];
    for (size_t r = 0; r < t->nrules; r++) {
        const rule *ru = &t->rules[r];
        for (size_t i = 0; i < d->npub; i++) {
            const jnode *m = e->w->pub[i].node;
            if (span_eq(ru->member, m->key, m->klen)) {
                if (!rule_ok(ru, m)) return 0;
                break;
            }
        }
    }
    return 1;
}

/* -- which attributes changed (canonical.py changed_attributes) ---------------------------- */

int nameset_has(const nameset *s, span v) {
    for (size_t i = 0; i < s->n; i++)
        if (span_eq(s->v[i], v.s, v.n)) return 1;
    return 0;
}

static int set_add(nameset *s, span v) {
    if (nameset_has(s, v)) return GO;
    if (s->n >= MAX_NAMES) return HAND_OVER;
    s->v[s->n++] = v;
    return GO;
}

/* canonical.py attribute_names: "" is no name, or one empty name when a fingerprint says
   so. HAND_OVER when there are more than the C path keeps. */
static int split_names(span names, size_t digests_n, span *out, size_t *count) {
    *count = 0;
    if (names.n == 0) {
        if (digests_n) out[(*count)++] = names;
        return GO;
    }
    size_t start = 0;
    for (size_t i = 0; i <= names.n; i++) {
        if (i < names.n && names.s[i] != 0) continue;
        if (*count >= MAX_NAMES) return HAND_OVER;
        out[(*count)++] = (span){names.s + start, i - start};
        start = i + 1;
    }
    return GO;
}

static uint32_t be32(const char *p) {
    const unsigned char *u = (const unsigned char *)p;
    return ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | u[3];
}

/* The changed and removed names of two attribute lists of different shapes (dict(zip(...))
   on each side: the last of equal old names wins). */
static int diff_shapes(work *w, size_t no, size_t nn, span old_dig, span new_dig) {
    for (size_t i = 0; i < nn; i++) {
        size_t j = no;
        while (j > 0 && !span_eq(w->old_names[j - 1], w->new_names[i].s, w->new_names[i].n)) j--;
        int same = j > 0 && be32(old_dig.s + 4 * (j - 1)) == be32(new_dig.s + 4 * i);
        if (!same && set_add(&w->changed, w->new_names[i]) != GO) return HAND_OVER;
    }
    for (size_t j = 0; j < no; j++) {
        size_t i = 0;
        while (i < nn && !span_eq(w->new_names[i], w->old_names[j].s, w->old_names[j].n)) i++;
        if (i < nn) continue;
        if (set_add(&w->removed, w->old_names[j]) != GO ||
            set_add(&w->changed, w->old_names[j]) != GO)
            return HAND_OVER;
    }
    return GO;
}

/* Fills w->changed and w->removed; *usable 0 when the fingerprints cannot be read (None). */
static int diff_attributes(work *w, const prior *st, const decision *d, int *usable) {
    size_t no, nn;
    *usable = 0;
    if (split_names(d->names, d->digests.n, w->new_names, &nn) != GO) return HAND_OVER;
    if (nn * 4 != d->digests.n) return GO;
    if (span_eq(st->names, d->names.s, d->names.n) && st->digests.n == d->digests.n) {
        *usable = 1;
        for (size_t i = 0; i < nn; i++)
            if (memcmp(st->digests.s + 4 * i, d->digests.s + 4 * i, 4) != 0 &&
                set_add(&w->changed, w->new_names[i]) != GO)
                return HAND_OVER;
        return GO;
    }
    if (split_names(st->names, st->digests.n, w->old_names, &no) != GO) return HAND_OVER;
    if (no * 4 != st->digests.n) return GO;
    *usable = 1;
    return diff_shapes(w, no, nn, st->digests, d->digests);
}

/* -- the events (decide.py _changes) ------------------------------------------------------- */

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = n ? memcmp(x->s, y->s, n) : 0;
    return c != 0 ? c : (x->n > y->n) - (x->n < y->n);
}

static int is_state_field(const entity *t, span name) {
    for (size_t f = 0; f < t->nstate; f++)
        if (span_eq(t->state_fields[f], name.s, name.n)) return 1;
    return 0;
}

static void add_plan(decision *d, work *w, int kind) {
    plan *p = &d->plans[d->nplans];
    p->kind = kind;
    p->changed = w->planned[d->nplans];
    p->nchanged = 0;
    d->nplans++;
}

/* The events of an update whose digest moved: always at least one. */
static void plan_changes(const Engine *e, decision *d) {
    work *w = e->w;
    const entity *t = &e->types[d->et];
    static const span op = {"operatingStatus", 15};
    int op_status = e->v5 && d->et == ET_SERVICE && nameset_has(&w->changed, op) &&
                    is_state_field(t, op);
    plan *attributes = NULL, *states = NULL;
    for (size_t i = 0; i < w->changed.n; i++) {
        span name = w->changed.v[i];
        if (!is_state_field(t, name)) {
            if (attributes == NULL) add_plan(d, w, K_AVC), attributes = &d->plans[d->nplans - 1];
            attributes->changed[attributes->nchanged++] = name;
        }
    }
    for (size_t i = 0; i < w->changed.n; i++) {
        span name = w->changed.v[i];
        if (is_state_field(t, name) && !(op_status && span_eq(name, op.s, op.n))) {
            if (states == NULL) add_plan(d, w, K_STATE), states = &d->plans[d->nplans - 1];
            states->changed[states->nchanged++] = name;
        }
    }
    if (op_status) {
        add_plan(d, w, K_OPSTATUS);
        d->plans[d->nplans - 1].changed[0] = op;
        d->plans[d->nplans - 1].nchanged = 1;
    }
    if (d->nplans == 0) add_plan(d, w, K_AVC); /* a moved digest over no attribute at all */
    for (int p = 0; p < d->nplans; p++)
        qsort(d->plans[p].changed, d->plans[p].nchanged, sizeof(span), span_cmp);
}

/* Which attributes changed; where the fingerprints say nothing (or cannot be read), every
   name on either side did. */
static int plan_update(const Engine *e, const prior *st, decision *d) {
    work *w = e->w;
    int usable;
    w->changed.n = w->removed.n = 0;
    if (diff_attributes(w, st, d, &usable) != GO) return HAND_OVER;
    if (!usable || w->changed.n == 0) {
        size_t no;
        w->changed.n = w->removed.n = 0;
        if (split_names(st->names, st->digests.n, w->old_names, &no) != GO) return HAND_OVER;
        for (size_t i = 0; i < no; i++)
            if (set_add(&w->changed, w->old_names[i]) != GO) return HAND_OVER;
        for (size_t i = 0; i < d->npub; i++) {
            const jnode *m = w->pub[i].node;
            if (set_add(&w->changed, (span){m->key, m->klen}) != GO) return HAND_OVER;
        }
    }
    plan_changes(e, d);
    return GO;
}

/* -- decide ------------------------------------------------------------------------------- */

static int decide_delete(const prior *st, decision *d, int *outcome) {
    if (!st->present || st->deleted) {
        *outcome = O_UNKNOWN_DELETE;
        return GO;
    }
    d->plans[0] = (plan){K_DELETE, NULL, 0};
    d->nplans = 1;
    d->names = d->digests = (span){"", 0}; /* a deleted state keeps no attribute */
    d->state_href = st->href;
    d->state_at = st->at_type;
    *outcome = O_EMIT;
    return GO;
}

static int decide_upsert(Engine *e, const record *rec, const prior *st, decision *d,
                         int *outcome) {
    const jnode *inst = rec->inst;
    if (inst->len > MAX_NAMES) return HAND_OVER;
    d->npub = json_public_members(inst, e->private_tree, e->w->pub);
    if (canonical(e, inst, d) != GO) return HAND_OVER;
    if (st->present && !st->deleted && span_eq(st->hash, (const char *)d->hash, 16)) {
        *outcome = O_UNCHANGED;
        return GO;
    }
    if (!rules_ok(e, d)) return HAND_OVER; /* schema_violation: the Python path says why */
    if (fingerprints(e, inst, d) != GO) return HAND_OVER;
    if (!st->present || st->deleted) {
        d->plans[0] = (plan){K_CREATE, NULL, 0};
        d->nplans = 1;
    } else if (plan_update(e, st, d) != GO) {
        return HAND_OVER;
    }
    *outcome = O_EMIT;
    return GO;
}

int decide(Engine *e, const record *rec, const prior *st, decision *d, int *outcome) {
    memset(d, 0, sizeof *d);
    d->et = rec->et;
    if (st->present) {
        if (d->et < 0) d->et = st->et;
        if (st->et != d->et) return HAND_OVER; /* entity_type_mismatch: a dead letter */
        if (rec->offset <= st->offset) return *outcome = O_REPLAYED, GO;
    }
    if (d->et >= 0 && !e->types[d->et].enabled) return *outcome = O_DISABLED, GO;
    if (st->present && rec->time_ms < st->observed_at) return *outcome = O_STALE, GO;
    d->version = (st->present ? st->version : 0) + 1;
    if (rec->is_delete) return decide_delete(st, d, outcome);
    return decide_upsert(e, rec, st, d, outcome);
}
