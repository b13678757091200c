/*
 * What the compiled parsers share (xtrader/venues/_binance_fast.c, _deribit_fast.c, _okx_fast.c): JSON scanning of
 * a strict subset (printable ASCII without escapes), decimals converted with correct rounding, interned symbols,
 * and the `Accumulator` type: column buffers for l2, trades and bbo rows, handed over by `take()` as bytes that
 * numpy / Arrow wrap without a copy (xtrader/venues/compiled_columns.py).
 *
 * A venue's file includes this header, defines
 *     static int frame(Acc *self, const char *p, const char *end, int64_t now);
 * (1: the frame's rows appended, 0: declined with nothing appended, -1: an exception set) and calls
 * `acc_module(&def, type_name)` from its PyInit function. A frame is declined whenever it is not fully inside the
 * subset the venue's file accepts; the Python parser then decides, unchanged.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------- growable buffers */

typedef struct {
    char *data;
    Py_ssize_t len; /* bytes used */
    Py_ssize_t cap;
} Buf;

static int buf_reserve(Buf *b, Py_ssize_t extra) {
    if (b->len + extra <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (!data) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

#define PUSH(buf, type, value)                                      \
    do {                                                            \
        *(type *)((buf).data + (buf).len) = (value);                \
        (buf).len += (Py_ssize_t)sizeof(type);                      \
    } while (0)

static PyObject *buf_bytes(Buf *b) { return PyBytes_FromStringAndSize(b->data ? b->data : "", b->len); }

/* ---------------------------------------------------------------- JSON scanning */

enum { K_NONE = 0, K_STR, K_INT, K_NUM, K_EXP, K_TRUE, K_FALSE, K_NULL, K_ARR, K_OBJ, K_LEVELS };

typedef struct {
    const char *start; /* the value's first byte (a string: after its quote) */
    const char *end;   /* one past its last byte (a string: its closing quote) */
    int kind;
    int64_t ival;     /* K_INT; K_LEVELS: the index of its first level in the l2 buffers */
    Py_ssize_t count; /* K_LEVELS: how many */
} Val;

#define MAX_DEPTH 32
#define MAX_SYMBOLS 65536

static inline const char *ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}

/* a string of printable ASCII without escapes; p at the opening quote. NULL: declined */
static const char *scan_str(const char *p, const char *end, Val *v) {
    p++;
    v->start = p;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            v->end = p;
            v->kind = K_STR;
            return p + 1;
        }
        if (c < 0x20 || c >= 0x7f || c == '\\') return NULL;
        p++;
    }
    return NULL;
}

/* a JSON number; an int (no fraction, no exponent) that fits int64 and is not -0 becomes K_INT; one with an
 * exponent K_EXP (at most 40 characters), any other K_NUM (at most 24). A venue converts only the kinds it checks
 * for: a K_EXP field it uses declines the frame */
static const char *scan_num(const char *p, const char *end, Val *v) {
    const char *s = p;
    int neg = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end || *p < '0' || *p > '9') return NULL;
    const char *digits = p;
    uint64_t acc = 0;
    int overflow = 0;
    if (*p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9') return NULL; /* leading zero */
    } else {
        while (p < end && *p >= '0' && *p <= '9') {
            uint64_t d = (uint64_t)(*p - '0');
            if (acc > (UINT64_MAX - d) / 10) overflow = 1;
            else acc = acc * 10 + d;
            p++;
        }
    }
    Py_ssize_t ndigits = p - digits;
    int integer = 1;
    if (p < end && *p == '.') {
        integer = 0;
        p++;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) { /* K_EXP: skipped only (no venue converts it: Python does) */
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        while (p < end && *p >= '0' && *p <= '9') p++;
        if (p - s > 40) return NULL;
        v->start = s;
        v->end = p;
        v->kind = K_EXP;
        return p;
    }
    if (p - s > 24) return NULL;
    v->start = s;
    v->end = p;
    if (integer && !overflow && ndigits <= 19) {
        if (neg) {
            if (acc == 0 || acc > (uint64_t)INT64_MAX + 1) goto other;
            v->ival = acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc;
        } else {
            if (acc > (uint64_t)INT64_MAX) goto other;
            v->ival = (int64_t)acc;
        }
        v->kind = K_INT;
        return p;
    }
other:
    v->kind = K_NUM;
    return p;
}

static const char *scan_value(const char *p, const char *end, Val *v, int depth);

static const char *scan_lit(const char *p, const char *end, const char *lit, Py_ssize_t n, int kind, Val *v) {
    if (end - p < n || memcmp(p, lit, (size_t)n) != 0) return NULL;
    v->start = p;
    v->end = p + n;
    v->kind = kind;
    return p + n;
}

/* `"key" :` at p: the key read, p moved to its value; NULL when not there */
static const char *scan_key(const char *p, const char *end, Val *key) {
    if (p >= end || *p != '"' || !(p = scan_str(p, end, key))) return NULL;
    p = ws(p, end);
    if (p >= end || *p != ':') return NULL;
    return ws(p + 1, end);
}

/* after a member or element at p: the next one's start (*closed 0), or past `close` (*closed 1); NULL if neither */
static const char *scan_next(const char *p, const char *end, char close, int *closed) {
    p = ws(p, end);
    if (p >= end) return NULL;
    *closed = *p == close;
    if (*closed) return p + 1;
    return *p == ',' ? ws(p + 1, end) : NULL;
}

/* any JSON value, validated; p at its first byte */
static const char *scan_value(const char *p, const char *end, Val *v, int depth) {
    if (p >= end) return NULL;
    switch (*p) {
    case '"':
        return scan_str(p, end, v);
    case 't':
        return scan_lit(p, end, "true", 4, K_TRUE, v);
    case 'f':
        return scan_lit(p, end, "false", 5, K_FALSE, v);
    case 'n':
        return scan_lit(p, end, "null", 4, K_NULL, v);
    case '[':
    case '{': {
        if (depth >= MAX_DEPTH) return NULL;
        const char *s = p;
        const int object = *p == '{';
        const char close = object ? '}' : ']';
        Val key, inner;
        int closed = 0;
        p = ws(p + 1, end);
        if (p < end && *p == close) {
            p++;
            closed = 1;
        }
        while (!closed)
            if ((object && !(p = scan_key(p, end, &key))) || !(p = scan_value(p, end, &inner, depth + 1)) ||
                !(p = scan_next(p, end, close, &closed)))
                return NULL;
        v->start = s;
        v->end = p;
        v->kind = object ? K_OBJ : K_ARR;
        return p;
    }
    default:
        if (*p == '-' || (*p >= '0' && *p <= '9')) return scan_num(p, end, v);
        return NULL;
    }
}

/* ---------------------------------------------------------------- decimals */

static const double POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* a price or size string `-?[0-9]+(\.[0-9]+)?` -> its correctly rounded double; 0 when it is not one */
static int decimal(const Val *v, double *out) {
    const char *p = v->start, *end = v->end;
    Py_ssize_t n = end - p;
    if (n < 1 || n > 40) return 0;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    uint64_t mantissa = 0;
    int digits = 0, frac = 0, seen = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (mantissa || *p != '0') digits++;
        if (digits <= 19) mantissa = mantissa * 10 + (uint64_t)(*p - '0');
        p++;
        seen = 1;
    }
    if (!seen) return 0;
    if (p < end && *p == '.') {
        p++;
        if (p >= end) return 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (mantissa || *p != '0') digits++;
            if (digits <= 19) mantissa = mantissa * 10 + (uint64_t)(*p - '0');
            frac++;
            p++;
        }
        if (!frac) return 0;
    }
    if (p != end) return 0;
    if (digits <= 15 && frac <= 22) { /* exact operands, one correctly rounded division (Clinger's fast path) */
        double value = (double)mantissa / POW10[frac];
        *out = neg ? -value : value;
        return 1;
    }
    char text[48];
    memcpy(text, v->start, (size_t)n);
    text[n] = '\0';
    double value = PyOS_string_to_double(text, NULL, NULL); /* correctly rounded (dtoa), locale-free */
    if (value == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    *out = value;
    return 1;
}

/* ---------------------------------------------------------------- symbols */

typedef struct {
    char *text;
    Py_ssize_t len;
    PyObject *name; /* str */
    uint64_t hash;
} Sym;

static uint64_t fnv(const char *p, Py_ssize_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}


/* ---------------------------------------------------------------- the accumulator's columns */

/* l2: per message, then per level (a message's bids, then its asks). The text buffers (Arrow string offsets and
 * data of each level's price and size as the wire wrote them) are filled only with `keep_text`. */
typedef struct {
    Buf sym, ets, rts, seq, pseq, pnull, fseq, fnull, snap, cks, cnull, brows, arows;
    Buf price, size, ptoff, ptext, stoff, stext;
    Py_ssize_t m, n;
} L2;
#define L2_MESSAGE_BUFS 13
#define L2_BUFS 19

typedef struct {
    Buf sym, ets, rts, id_off, id_data, side, price, size;
    Py_ssize_t k;
} Trades;
#define TRADES_BUFS 8

/* bbo: a side's null (bnull / anull) nulls its price and size */
typedef struct {
    Buf sym, ets, enull, rts, seq, snull, bp, bs, ap, as, bnull, anull;
    Py_ssize_t j;
} Bbo;
#define BBO_BUFS 12

typedef struct {
    PyObject_HEAD
    Sym *syms;
    Py_ssize_t nsyms, capsyms;
    int32_t *slots; /* open addressing: index into syms, -1 empty */
    Py_ssize_t nslots;
    L2 l2;
    Trades tr;
    Bbo bbo;
    int64_t scale;     /* ns per wire time unit */
    int keep_text;     /* l2 levels keep their wire text (a venue whose checksum is computed over it) */
    PyObject *counted; /* a tuple of lists whose lengths `rows` adds (the Python parser's row lists) */
    PyObject *taken;   /* what `parse_or` returns for a frame taken here (the venues' NO_CONTROL) */
    PyObject *declined; /* `parse_or` calls it with (frame, receipt) for a frame declined here */
} Acc;

/* the venue's: 1 taken, 0 declined (nothing appended), -1 an exception set */
static int frame(Acc *self, const char *p, const char *end, int64_t now);

static void bufs_free(Buf *b, int n) {
    for (int i = 0; i < n; i++) PyMem_Free(b[i].data);
}

static void acc_dealloc(Acc *self) {
    for (Py_ssize_t i = 0; i < self->nsyms; i++) {
        PyMem_Free(self->syms[i].text);
        Py_XDECREF(self->syms[i].name);
    }
    PyMem_Free(self->syms);
    PyMem_Free(self->slots);
    Py_XDECREF(self->counted);
    Py_XDECREF(self->taken);
    Py_XDECREF(self->declined);
    bufs_free((Buf *)&self->l2, L2_BUFS);
    bufs_free((Buf *)&self->tr, TRADES_BUFS);
    bufs_free((Buf *)&self->bbo, BBO_BUFS);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int slots_grow(Acc *self) {
    Py_ssize_t nslots = self->nslots ? self->nslots * 2 : 64;
    int32_t *slots = PyMem_Malloc(sizeof(int32_t) * (size_t)nslots);
    if (!slots) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < nslots; i++) slots[i] = -1;
    for (Py_ssize_t i = 0; i < self->nsyms; i++) {
        Py_ssize_t at = (Py_ssize_t)(self->syms[i].hash & (uint64_t)(nslots - 1));
        while (slots[at] >= 0) at = (at + 1) & (nslots - 1);
        slots[at] = (int32_t)i;
    }
    PyMem_Free(self->slots);
    self->slots = slots;
    self->nslots = nslots;
    return 0;
}

/* the symbol's code (stable for the accumulator's life); -1 with an exception set, -2 declined (too many names) */
static int32_t intern(Acc *self, const Val *v) {
    Py_ssize_t n = v->end - v->start;
    uint64_t h = fnv(v->start, n);
    if (self->nslots) {
        Py_ssize_t at = (Py_ssize_t)(h & (uint64_t)(self->nslots - 1));
        while (self->slots[at] >= 0) {
            Sym *s = &self->syms[self->slots[at]];
            if (s->hash == h && s->len == n && memcmp(s->text, v->start, (size_t)n) == 0) return self->slots[at];
            at = (at + 1) & (self->nslots - 1);
        }
    }
    if (self->nsyms >= MAX_SYMBOLS) return -2; /* a stream of ever new names: the Python parser takes them */
    if ((self->nsyms + 1) * 2 > self->nslots && slots_grow(self) < 0) return -1;
    if (self->nsyms == self->capsyms) {
        Py_ssize_t cap = self->capsyms ? self->capsyms * 2 : 16;
        Sym *syms = PyMem_Realloc(self->syms, sizeof(Sym) * (size_t)cap);
        if (!syms) {
            PyErr_NoMemory();
            return -1;
        }
        self->syms = syms;
        self->capsyms = cap;
    }
    Sym *s = &self->syms[self->nsyms];
    s->text = PyMem_Malloc((size_t)(n ? n : 1));
    if (!s->text) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(s->text, v->start, (size_t)n);
    s->name = PyUnicode_FromStringAndSize(v->start, n);
    if (!s->name) {
        PyMem_Free(s->text);
        return -1;
    }
    s->len = n;
    s->hash = h;
    Py_ssize_t at = (Py_ssize_t)(h & (uint64_t)(self->nslots - 1));
    while (self->slots[at] >= 0) at = (at + 1) & (self->nslots - 1);
    self->slots[at] = (int32_t)self->nsyms;
    return (int32_t)self->nsyms++;
}

/* an object at p (its '{'), validated; the value of each field `field_of` knows recorded in `fields` (a duplicate
 * declines). The end of the object, or NULL: declined */
static inline const char *scan_fields(const char *p, const char *end, int (*field_of)(const Val *), Val *fields,
                                      int depth) {
    Val key, value;
    int closed = 0;
    p = ws(p + 1, end);
    if (p < end && *p == '}') return p + 1;
    while (!closed) {
        if (!(p = scan_key(p, end, &key)) || !(p = scan_value(p, end, &value, depth + 1))) return NULL;
        int f = field_of(&key);
        if (f >= 0) {
            if (fields[f].kind != K_NONE) return NULL;
            fields[f] = value;
        }
        if (!(p = scan_next(p, end, '}', &closed))) return NULL;
    }
    return p;
}

/* ---------------------------------------------------------------- appending rows */

static int key_is(const Val *key, const char *name) {
    size_t n = strlen(name);
    return (size_t)(key->end - key->start) == n && memcmp(key->start, name, n) == 0;
}

static int is_str(const Val *v, const char *text) { return v->kind == K_STR && key_is(v, text); }

/* ts (wire units) * scale -> ns, 0 on overflow */
static int scaled(int64_t ts, int64_t scale, int64_t *out) { return !__builtin_mul_overflow(ts, scale, out); }

static int reserve_all(Buf *b, int n, const Py_ssize_t *sizes) {
    for (int i = 0; i < n; i++)
        if (buf_reserve(&b[i], sizes[i]) < 0) return -1;
    return 0;
}

/* one level at index `at` of l2's level buffers (past the committed rows: nothing is committed here; levels of one
 * message are put at increasing indexes from l2->n on). 1 put, 0 declined (text beyond 2 GiB), -1 out of memory */
static int level_put(Acc *self, Py_ssize_t at, double price, double size, const Val *price_text, const Val *size_text) {
    L2 *l2 = &self->l2;
    Py_ssize_t need = (Py_ssize_t)sizeof(double) * (at + 1);
    if (buf_reserve(&l2->price, need - l2->price.len) < 0 || buf_reserve(&l2->size, need - l2->size.len) < 0)
        return -1;
    ((double *)l2->price.data)[at] = price;
    ((double *)l2->size.data)[at] = size;
    if (self->keep_text) {
        Buf *offs[2] = {&l2->ptoff, &l2->stoff}, *texts[2] = {&l2->ptext, &l2->stext};
        const Val *vals[2] = {price_text, size_text};
        for (int i = 0; i < 2; i++) {
            Py_ssize_t ineed = (Py_ssize_t)sizeof(int32_t) * (at + 2);
            if (buf_reserve(offs[i], ineed - offs[i]->len) < 0) return -1;
            int32_t *off = (int32_t *)offs[i]->data;
            if (at == 0) off[0] = 0;
            Py_ssize_t len = vals[i]->end - vals[i]->start;
            if ((Py_ssize_t)off[at] + len > INT32_MAX) return 0;
            /* written past the committed text, as the values are past the committed levels: `len` moves only in
             * l2_message, so a declined frame leaves nothing behind */
            if (buf_reserve(texts[i], (Py_ssize_t)off[at] + len - texts[i]->len) < 0) return -1;
            memcpy(texts[i]->data + off[at], vals[i]->start, (size_t)len);
            off[at + 1] = (int32_t)(off[at] + len);
        }
    }
    return 1;
}

/* one l2 message whose `bids + asks` levels were put from l2->n on (level_put); has_*: 0 appends a null.
 * 1 appended, -1 out of memory (the frame() convention) */
static int l2_message(Acc *self, int32_t code, int64_t ets, int64_t now, int64_t seq, int has_pseq, int64_t pseq,
                      int has_fseq, int64_t fseq, int snapshot, int has_cks, int64_t cks, Py_ssize_t bids,
                      Py_ssize_t asks) {
    L2 *l2 = &self->l2;
    const Py_ssize_t sizes[L2_MESSAGE_BUFS] = {4, 8, 8, 8, 8, 1, 8, 1, 1, 8, 1, 4, 4};
    if (reserve_all((Buf *)l2, L2_MESSAGE_BUFS, sizes) < 0) return -1;
    PUSH(l2->sym, int32_t, code);
    PUSH(l2->ets, int64_t, ets);
    PUSH(l2->rts, int64_t, now);
    PUSH(l2->seq, int64_t, seq);
    PUSH(l2->pseq, int64_t, has_pseq ? pseq : 0);
    PUSH(l2->pnull, uint8_t, has_pseq ? 0 : 1);
    PUSH(l2->fseq, int64_t, has_fseq ? fseq : 0);
    PUSH(l2->fnull, uint8_t, has_fseq ? 0 : 1);
    PUSH(l2->snap, uint8_t, snapshot ? 1 : 0);
    PUSH(l2->cks, int64_t, has_cks ? cks : 0);
    PUSH(l2->cnull, uint8_t, has_cks ? 0 : 1);
    PUSH(l2->brows, int32_t, (int32_t)bids);
    PUSH(l2->arows, int32_t, (int32_t)asks);
    l2->m++;
    l2->n += bids + asks;
    l2->price.len = l2->size.len = (Py_ssize_t)sizeof(double) * l2->n;
    if (self->keep_text) {
        Py_ssize_t offsets = l2->n ? (Py_ssize_t)sizeof(int32_t) * (l2->n + 1) : 0;
        l2->ptoff.len = l2->stoff.len = offsets;
        l2->ptext.len = l2->n ? ((int32_t *)l2->ptoff.data)[l2->n] : 0;
        l2->stext.len = l2->n ? ((int32_t *)l2->stoff.data)[l2->n] : 0;
    }
    return 1;
}

/* one trade; `id` is kept as its text; sell: the taker sold. 1 appended, 0 declined (ids beyond 2 GiB), -1 */
static int trade_row(Acc *self, int32_t code, int64_t ets, int64_t now, const Val *id, int sell, double price,
                     double size) {
    Trades *tr = &self->tr;
    Py_ssize_t id_len = id->end - id->start;
    const Py_ssize_t sizes[TRADES_BUFS] = {4, 8, 8, 4 * 2, id_len, 1, 8, 8};
    if (tr->id_data.len + id_len > INT32_MAX) return 0;
    if (reserve_all((Buf *)tr, TRADES_BUFS, sizes) < 0) return -1;
    if (tr->id_off.len == 0) PUSH(tr->id_off, int32_t, 0);
    PUSH(tr->sym, int32_t, code);
    PUSH(tr->ets, int64_t, ets);
    PUSH(tr->rts, int64_t, now);
    memcpy(tr->id_data.data + tr->id_data.len, id->start, (size_t)id_len);
    tr->id_data.len += id_len;
    PUSH(tr->id_off, int32_t, (int32_t)tr->id_data.len);
    PUSH(tr->side, int8_t, sell ? 1 : 0);
    PUSH(tr->price, double, price);
    PUSH(tr->size, double, size);
    tr->k++;
    return 1;
}

/* one top of book; has_*: 0 appends a null (a side's: its price and size). 1 appended, -1 out of memory */
static int bbo_row(Acc *self, int32_t code, int has_ets, int64_t ets, int64_t now, int has_seq, int64_t seq,
                   int has_bid, double bp, double bs, int has_ask, double ap, double as) {
    Bbo *b = &self->bbo;
    const Py_ssize_t sizes[BBO_BUFS] = {4, 8, 1, 8, 8, 1, 8, 8, 8, 8, 1, 1};
    if (reserve_all((Buf *)b, BBO_BUFS, sizes) < 0) return -1;
    PUSH(b->sym, int32_t, code);
    PUSH(b->ets, int64_t, has_ets ? ets : 0);
    PUSH(b->enull, uint8_t, has_ets ? 0 : 1);
    PUSH(b->rts, int64_t, now);
    PUSH(b->seq, int64_t, has_seq ? seq : 0);
    PUSH(b->snull, uint8_t, has_seq ? 0 : 1);
    PUSH(b->bp, double, has_bid ? bp : 0.0);
    PUSH(b->bs, double, has_bid ? bs : 0.0);
    PUSH(b->ap, double, has_ask ? ap : 0.0);
    PUSH(b->as, double, has_ask ? as : 0.0);
    PUSH(b->bnull, uint8_t, has_bid ? 0 : 1);
    PUSH(b->anull, uint8_t, has_ask ? 0 : 1);
    b->j++;
    return 1;
}

/* ---------------------------------------------------------------- the Python type */

static int acc_init(Acc *self, PyObject *args, PyObject *kwds) {
    long long scale;
    PyObject *counted;
    int keep_text = 0;
    static char *kwlist[] = {"scale", "counted", "keep_text", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "LO!|p", kwlist, &scale, &PyTuple_Type, &counted, &keep_text))
        return -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(counted); i++)
        if (!PyList_CheckExact(PyTuple_GET_ITEM(counted, i))) {
            PyErr_SetString(PyExc_TypeError, "counted: a tuple of lists");
            return -1;
        }
    if (scale <= 0) {
        PyErr_SetString(PyExc_ValueError, "scale: ns per wire time unit, > 0");
        return -1;
    }
    self->scale = scale;
    self->keep_text = keep_text;
    Py_INCREF(counted);
    Py_XSETREF(self->counted, counted);
    return 0;
}

/* parse(frame, receipt): receipt is xtrader.clock.Receipt (wall_ns first) */
static PyObject *acc_parse(Acc *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyTuple_Check(args[1]) || PyTuple_GET_SIZE(args[1]) < 1) {
        PyErr_SetString(PyExc_TypeError, "parse(frame: bytes, receipt: Receipt)");
        return NULL;
    }
    if (!PyBytes_CheckExact(args[0])) Py_RETURN_FALSE;
    int64_t now = PyLong_AsLongLong(PyTuple_GET_ITEM(args[1], 0));
    if (now == -1 && PyErr_Occurred()) return NULL;
    const char *data = PyBytes_AS_STRING(args[0]);
    int taken = frame(self, data, data + PyBytes_GET_SIZE(args[0]), now);
    if (taken < 0) return NULL;
    return PyBool_FromLong(taken);
}

/* set_fallback(taken, declined): what parse_or returns for a frame taken here, and whom it asks otherwise */
static PyObject *acc_set_fallback(Acc *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "set_fallback(taken, declined: Callable[[frame, receipt], Any])");
        return NULL;
    }
    Py_INCREF(args[0]);
    Py_XSETREF(self->taken, args[0]);
    Py_INCREF(args[1]);
    Py_XSETREF(self->declined, args[1]);
    Py_RETURN_NONE;
}

/* parse_or(frame, receipt): `taken` when the frame's rows went to the buffers, else declined(frame, receipt) */
static PyObject *acc_parse_or(Acc *self, PyObject *const *args, Py_ssize_t nargs) {
    if (self->declined == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "parse_or: set_fallback() first");
        return NULL;
    }
    PyObject *ok = acc_parse(self, args, nargs);
    if (ok == NULL) return NULL;
    int buffered = ok == Py_True;
    Py_DECREF(ok);
    if (buffered) {
        Py_INCREF(self->taken);
        return self->taken;
    }
    return PyObject_Vectorcall(self->declined, args, (size_t)nargs, NULL);
}

/* ---------------------------------------------------------------- handing the columns over */

/* (a, b), the references to a and b taken over */
static PyObject *steal_pair(PyObject *a, PyObject *b) {
    PyObject *pair = PyTuple_Pack(2, a, b);
    Py_DECREF(a);
    Py_DECREF(b);
    return pair;
}

/* codes renumbered in first-appearance order (as xtrader.batch.dictionary_codes does); (codes bytes, names) */
static PyObject *recode(Acc *self, Buf *codes, Py_ssize_t count) {
    int32_t *map = PyMem_Malloc(sizeof(int32_t) * (size_t)(self->nsyms ? self->nsyms : 1));
    if (!map) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < self->nsyms; i++) map[i] = -1;
    PyObject *names = PyList_New(0);
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(int32_t) * count);
    if (!names || !out) goto fail;
    int32_t *src = (int32_t *)codes->data, *dst = (int32_t *)PyBytes_AS_STRING(out);
    int32_t next = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        int32_t c = src[i];
        if (map[c] < 0) {
            map[c] = next++;
            if (PyList_Append(names, self->syms[c].name) < 0) goto fail;
        }
        dst[i] = map[c];
    }
    PyMem_Free(map);
    return steal_pair(out, names);
fail:
    PyMem_Free(map);
    Py_XDECREF(names);
    Py_XDECREF(out);
    return NULL;
}

/* side codes (0 buy, 1 sell) renumbered in first-appearance order; (codes bytes int8, names) */
static PyObject *recode_side(Buf *side, Py_ssize_t count) {
    static const char *NAMES[2] = {"buy", "sell"};
    int8_t map[2] = {-1, -1}, next = 0;
    PyObject *names = PyList_New(0);
    PyObject *out = PyBytes_FromStringAndSize(NULL, count);
    if (!names || !out) goto fail;
    int8_t *src = (int8_t *)side->data, *dst = (int8_t *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < count; i++) {
        int8_t c = src[i];
        if (map[c] < 0) {
            map[c] = next++;
            PyObject *name = PyUnicode_FromString(NAMES[c]);
            if (!name || PyList_Append(names, name) < 0) {
                Py_XDECREF(name);
                goto fail;
            }
            Py_DECREF(name);
        }
        dst[i] = map[c];
    }
    return steal_pair(out, names);
fail:
    Py_XDECREF(names);
    Py_XDECREF(out);
    return NULL;
}

static void clear(Buf *b, int n) {
    for (int i = 0; i < n; i++) b[i].len = 0;
}

/* (l2, trades, bbo): each None when empty, else a tuple of the table's columns (see compiled_columns.py) */
static PyObject *acc_take(Acc *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *l2 = NULL, *tr = NULL, *bbo = NULL, *codes = NULL, *texts = NULL;
    if (self->l2.m) {
        L2 *x = &self->l2;
        if (self->keep_text && x->n) {
            texts = Py_BuildValue("(NNNN)", buf_bytes(&x->ptoff), buf_bytes(&x->ptext), buf_bytes(&x->stoff),
                                  buf_bytes(&x->stext));
            if (!texts) goto fail;
        } else {
            texts = Py_NewRef(Py_None);
        }
        if (!(codes = recode(self, &x->sym, x->m))) goto fail;
        l2 = Py_BuildValue("(nnON" "NNNNNNNNNNNNNN)", x->m, x->n, codes, buf_bytes(&x->ets), buf_bytes(&x->rts),
                           buf_bytes(&x->seq), buf_bytes(&x->pseq), buf_bytes(&x->pnull), buf_bytes(&x->fseq),
                           buf_bytes(&x->fnull), buf_bytes(&x->snap), buf_bytes(&x->cks), buf_bytes(&x->cnull),
                           buf_bytes(&x->brows), buf_bytes(&x->arows), buf_bytes(&x->price), buf_bytes(&x->size),
                           texts);
        texts = NULL; /* stolen (N) */
        Py_CLEAR(codes);
        if (!l2) goto fail;
    }
    if (self->tr.k) {
        Trades *x = &self->tr;
        PyObject *sides;
        if (!(codes = recode(self, &x->sym, x->k))) goto fail;
        if (!(sides = recode_side(&x->side, x->k))) goto fail;
        tr = Py_BuildValue("(nONNNNNNN)", x->k, codes, buf_bytes(&x->ets), buf_bytes(&x->rts), buf_bytes(&x->id_off),
                           buf_bytes(&x->id_data), sides, buf_bytes(&x->price), buf_bytes(&x->size));
        Py_CLEAR(codes);
        if (!tr) goto fail;
    }
    if (self->bbo.j) {
        Bbo *x = &self->bbo;
        if (!(codes = recode(self, &x->sym, x->j))) goto fail;
        bbo = Py_BuildValue("(nONNNNNNNNNNN)", x->j, codes, buf_bytes(&x->ets), buf_bytes(&x->enull),
                            buf_bytes(&x->rts), buf_bytes(&x->seq), buf_bytes(&x->snull), buf_bytes(&x->bp),
                            buf_bytes(&x->bs), buf_bytes(&x->ap), buf_bytes(&x->as), buf_bytes(&x->bnull),
                            buf_bytes(&x->anull));
        Py_CLEAR(codes);
        if (!bbo) goto fail;
    }
    clear((Buf *)&self->l2, L2_BUFS);
    self->l2.m = self->l2.n = 0;
    clear((Buf *)&self->tr, TRADES_BUFS);
    self->tr.k = 0;
    clear((Buf *)&self->bbo, BBO_BUFS);
    self->bbo.j = 0;
    PyObject *result = PyTuple_Pack(3, l2 ? l2 : Py_None, tr ? tr : Py_None, bbo ? bbo : Py_None);
    Py_XDECREF(l2);
    Py_XDECREF(tr);
    Py_XDECREF(bbo);
    return result;
fail:
    Py_XDECREF(texts);
    Py_XDECREF(codes);
    Py_XDECREF(l2);
    Py_XDECREF(tr);
    return NULL;
}

/* [(symbol, is_snapshot)] of the buffered l2 messages from the `start`-th on */
static PyObject *acc_heads(Acc *self, PyObject *arg) {
    Py_ssize_t start = PyLong_AsSsize_t(arg);
    if (start == -1 && PyErr_Occurred()) return NULL;
    if (start < 0) start = 0;
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    const int32_t *codes = (const int32_t *)self->l2.sym.data;
    const uint8_t *snap = (const uint8_t *)self->l2.snap.data;
    for (Py_ssize_t i = start; i < self->l2.m; i++) {
        PyObject *head = Py_BuildValue("(OO)", self->syms[codes[i]].name, snap[i] ? Py_True : Py_False);
        if (!head || PyList_Append(out, head) < 0) {
            Py_XDECREF(head);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(head);
    }
    return out;
}

/* rows(): rows buffered here (l2 levels, trades, bbo) plus the lengths of the `counted` lists */
static PyObject *acc_rows(Acc *self, PyObject *Py_UNUSED(ignored)) {
    Py_ssize_t rows = self->l2.n + self->tr.k + self->bbo.j;
    if (self->counted)
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(self->counted); i++)
            rows += PyList_GET_SIZE(PyTuple_GET_ITEM(self->counted, i));
    return PyLong_FromSsize_t(rows);
}

static PyObject *acc_l2_messages(Acc *self, void *Py_UNUSED(closure)) { return PyLong_FromSsize_t(self->l2.m); }

static PyObject *acc_pending(Acc *self, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(self->l2.m || self->tr.k || self->bbo.j);
}

static PyMethodDef acc_methods[] = {
    {"parse", (PyCFunction)(void (*)(void))acc_parse, METH_FASTCALL,
     "parse(frame: bytes, receipt: Receipt) -> bool: the frame's rows buffered, or False (nothing buffered)"},
    {"rows", (PyCFunction)acc_rows, METH_NOARGS, "rows() -> rows buffered here plus the counted lists' lengths"},
    {"heads", (PyCFunction)acc_heads, METH_O, "heads(start) -> [(symbol, is_snapshot)] of l2 messages from start"},
    {"set_fallback", (PyCFunction)(void (*)(void))acc_set_fallback, METH_FASTCALL,
     "set_fallback(taken, declined): parse_or's answer for a frame taken, and its Python parser for the rest"},
    {"parse_or", (PyCFunction)(void (*)(void))acc_parse_or, METH_FASTCALL,
     "parse_or(frame, receipt): `taken` when buffered here, else declined(frame, receipt) (the Python parser)"},
    {"take", (PyCFunction)acc_take, METH_NOARGS, "take() -> (l2, trades, bbo): the buffered columns, then cleared"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef acc_getset[] = {
    {"l2_messages", (getter)acc_l2_messages, NULL, "l2 messages buffered", NULL},
    {"pending", (getter)acc_pending, NULL, "anything buffered", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject AccType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "Accumulator", /* the module's name set by acc_module */
    .tp_basicsize = sizeof(Acc),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Column buffers for one connection's frames, filled by the compiled parser (see the module's docstring).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)acc_init,
    .tp_dealloc = (destructor)acc_dealloc,
    .tp_methods = acc_methods,
    .tp_getset = acc_getset,
};

/* the venue module with its `Accumulator` type; `type_name` its qualified name ("xtrader.venues._x.Accumulator") */
static PyObject *acc_module(struct PyModuleDef *def, const char *type_name) {
    AccType.tp_name = type_name;
    if (PyType_Ready(&AccType) < 0) return NULL;
    PyObject *m = PyModule_Create(def);
    if (!m) return NULL;
    Py_INCREF(&AccType);
    if (PyModule_AddObject(m, "Accumulator", (PyObject *)&AccType) < 0) {
        Py_DECREF(&AccType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
