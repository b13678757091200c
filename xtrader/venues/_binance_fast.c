/*
 * Binance's hot frames, from bytes straight into column buffers: no Python object per message.
 *
 * `Accumulator(scale, counted).parse(frame, receipt)` takes a combined-stream frame (`{"stream":..,"data":{..}}`)
 * whose data is a depthUpdate, aggTrade, trade or bookTicker (with `e`, or the spot one without), appends its rows to C
 * buffers and returns True. It returns False, with nothing appended, for any frame it does not fully accept, and
 * the Python parser (xtrader/venues/binance.py) then decides. It accepts only a subset of what that parser
 * accepts, and appends the same values:
 *   - the whole frame is strict JSON of printable ASCII without escapes (anything else: declined);
 *   - every field the event uses has exactly the type the Python parser checks (a null anywhere in them, a
 *     duplicate key, an int beyond int64 or "-0", a time that overflows int64 in ns: declined);
 *   - prices and sizes are plain decimals (`-?[0-9]+(\.[0-9]+)?`, at most 40 characters), converted with correct
 *     rounding, as Arrow's cast and float() do; levels are exactly two strings.
 * The buffers, `take()` and the rest of the type are xtrader/venues/_accumulator.h's.
 */
#include "_accumulator.h"

/* ---------------------------------------------------------------- one frame */

/* the data object's fields the four events use */
enum { F_e, F_E, F_T, F_s, F_U, F_u, F_pu, F_b, F_a, F_p, F_q, F_m, F_t, F_B, F_A, NFIELDS };

static int field_of(const Val *key) {
    Py_ssize_t n = key->end - key->start;
    const char *k = key->start;
    if (n == 1) {
        switch (k[0]) {
        case 'e': return F_e;
        case 'E': return F_E;
        case 'T': return F_T;
        case 's': return F_s;
        case 'U': return F_U;
        case 'u': return F_u;
        case 'b': return F_b;
        case 'a': return F_a;
        case 'p': return F_p;
        case 'q': return F_q;
        case 'm': return F_m;
        case 't': return F_t;
        case 'B': return F_B;
        case 'A': return F_A;
        }
        return -1;
    }
    if (n == 2 && k[0] == 'p' && k[1] == 'u') return F_pu;
    return -1;
}

/* levels `[["p","q"],..]` at p (its '['), put in l2's level buffers from index `at` on (level_put); the end of the
 * array, or NULL: not such levels (*error set: out of memory) */
static const char *levels_scan(Acc *self, const char *p, const char *end, Py_ssize_t at, Py_ssize_t *count,
                               int *error) {
    Py_ssize_t k = 0;
    p = ws(p + 1, end);
    if (p < end && *p == ']') {
        *count = 0;
        return p + 1;
    }
    for (;;) {
        Val price, size;
        double pv, sv;
        if (p >= end || *p != '[') return NULL;
        p = ws(p + 1, end);
        if (p >= end || *p != '"' || !(p = scan_str(p, end, &price))) return NULL;
        p = ws(p, end);
        if (p >= end || *p != ',') return NULL;
        p = ws(p + 1, end);
        if (p >= end || *p != '"' || !(p = scan_str(p, end, &size))) return NULL;
        p = ws(p, end);
        if (p >= end || *p != ']') return NULL;
        if (!decimal(&price, &pv) || !decimal(&size, &sv)) return NULL;
        int put = level_put(self, at + k, pv, sv, &price, &size);
        if (put <= 0) {
            *error = put < 0;
            return NULL;
        }
        k++;
        p = ws(p + 1, end);
        if (p >= end) return NULL;
        if (*p == ']') {
            *count = k;
            return p + 1;
        }
        if (*p != ',') return NULL;
        p = ws(p + 1, end);
    }
}

/* the data object: each known field's value recorded (a duplicate declines). `b` and `a` holding levels are
 * parsed into the l2 buffers as they are read (K_LEVELS: ival their first index, count how many); NULL declines
 * (*error set: out of memory) */
static const char *scan_data(Acc *self, const char *p, const char *end, Val *fields, int *error) {
    Val key, value;
    Py_ssize_t at = self->l2.n; /* where the next levels go */
    int closed = 0;
    p = ws(p + 1, end);
    if (p < end && *p == '}') return p + 1;
    while (!closed) {
        if (!(p = scan_key(p, end, &key))) return NULL;
        int f = field_of(&key);
        const char *next = NULL;
        if ((f == F_b || f == F_a) && p < end && *p == '[') {
            next = levels_scan(self, p, end, at, &value.count, error);
            if (*error) return NULL;
            if (next) {
                value.start = p;
                value.end = next;
                value.kind = K_LEVELS;
                value.ival = at;
                at += value.count;
            }
        }
        if (!next) next = scan_value(p, end, &value, 2);
        p = next;
        if (!p) return NULL;
        if (f >= 0) {
            if (fields[f].kind != K_NONE) return NULL;
            fields[f] = value;
        }
        if (!(p = scan_next(p, end, '}', &closed))) return NULL;
    }
    return p;
}

/* `@depth` followed by a digit: a partial (whole top-N) depth stream */
static int partial_stream(const Val *stream) {
    const char *p = stream->start, *end = stream->end;
    for (; end - p >= 6; p++)
        if (memcmp(p, "@depth", 6) == 0) return end - p > 6 && p[6] >= '0' && p[6] <= '9';
    return 0;
}

/* 1 taken, 0 declined, -1 error */
static int depth(Acc *self, const Val *stream, const Val *f, int64_t now) {
    int64_t ts, ets;
    if (f[F_T].kind != K_NONE) {
        if (f[F_T].kind != K_INT) return 0;
        ts = f[F_T].ival;
    } else if (f[F_E].kind == K_INT) {
        ts = f[F_E].ival;
    } else {
        return 0;
    }
    if (f[F_E].kind != K_NONE && f[F_E].kind != K_INT) return 0;
    if (f[F_s].kind != K_STR || f[F_u].kind != K_INT || f[F_U].kind != K_INT) return 0;
    if (f[F_pu].kind != K_NONE && f[F_pu].kind != K_INT) return 0;
    if (f[F_b].kind != K_LEVELS || f[F_a].kind != K_LEVELS) return 0; /* levels of two decimal strings */
    if (!scaled(ts, self->scale, &ets)) return 0;
    L2 *l2 = &self->l2;
    Py_ssize_t bids = f[F_b].count, asks = f[F_a].count;
    if (f[F_b].ival != l2->n) { /* asks came first: bids go first in the buffers, so read both again */
        int error = 0;
        if (!levels_scan(self, f[F_b].start, f[F_b].end, l2->n, &bids, &error) ||
            !levels_scan(self, f[F_a].start, f[F_a].end, l2->n + bids, &asks, &error))
            return error ? -1 : 0;
    }
    if (bids > INT32_MAX || asks > INT32_MAX) return 0;
    int32_t code = intern(self, &f[F_s]);
    if (code < 0) return code == -2 ? 0 : -1;
    int has_pu = f[F_pu].kind == K_INT;
    return l2_message(self, code, ets, now, f[F_u].ival, has_pu, has_pu ? f[F_pu].ival : 0, 1, f[F_U].ival,
                      partial_stream(stream), 0, 0, bids, asks);
}

static int trade(Acc *self, const Val *f, int id_field, int64_t now) {
    double price, size;
    int64_t ets;
    if (f[F_s].kind != K_STR || f[F_T].kind != K_INT || f[id_field].kind != K_INT) return 0;
    if (f[F_p].kind != K_STR || f[F_q].kind != K_STR || (f[F_m].kind != K_TRUE && f[F_m].kind != K_FALSE)) return 0;
    if (!decimal(&f[F_p], &price) || !decimal(&f[F_q], &size) || !scaled(f[F_T].ival, self->scale, &ets)) return 0;
    int32_t code = intern(self, &f[F_s]);
    if (code < 0) return code == -2 ? 0 : -1;
    /* m: the buyer made, so the taker sold */
    return trade_row(self, code, ets, now, &f[id_field], f[F_m].kind == K_TRUE, price, size);
}

static int ticker(Acc *self, const Val *f, int64_t now) {
    double bp, bs, ap, as;
    int64_t ets = 0;
    if (f[F_s].kind != K_STR || f[F_u].kind != K_INT) return 0;
    if (f[F_b].kind != K_STR || f[F_B].kind != K_STR || f[F_a].kind != K_STR || f[F_A].kind != K_STR) return 0;
    if (f[F_T].kind != K_NONE && (f[F_T].kind != K_INT || !scaled(f[F_T].ival, self->scale, &ets))) return 0;
    if (!decimal(&f[F_b], &bp) || !decimal(&f[F_B], &bs) || !decimal(&f[F_a], &ap) || !decimal(&f[F_A], &as))
        return 0;
    int32_t code = intern(self, &f[F_s]);
    if (code < 0) return code == -2 ? 0 : -1;
    return bbo_row(self, code, f[F_T].kind != K_NONE, ets, now, 1, f[F_u].ival, 1, bp, bs, 1, ap, as);
}

static int frame(Acc *self, const char *p, const char *end, int64_t now) {
    Val fields[NFIELDS], stream = {0}, key, value;
    int have_data = 0, closed = 0;
    memset(fields, 0, sizeof(fields));
    p = ws(p, end);
    if (p >= end || *p != '{') return 0;
    p = ws(p + 1, end);
    while (!closed) {
        if (!(p = scan_key(p, end, &key))) return 0;
        if (key_is(&key, "data")) {
            int error = 0;
            if (have_data || p >= end || *p != '{') return 0;
            p = scan_data(self, p, end, fields, &error);
            if (error) return -1;
            have_data = 1;
        } else {
            p = scan_value(p, end, &value, 1);
            if (p && key_is(&key, "stream")) {
                if (stream.kind != K_NONE || value.kind != K_STR) return 0;
                stream = value;
            }
        }
        if (!p || !(p = scan_next(p, end, '}', &closed))) return 0;
    }
    if (ws(p, end) != end || !have_data || stream.kind != K_STR) return 0;
    const Val *e = &fields[F_e];
    if (e->kind == K_NONE) /* spot bookTicker: no `e`, told by `u` */
        return fields[F_u].kind != K_NONE ? ticker(self, fields, now) : 0;
    if (e->kind != K_STR) return 0;
    if (is_str(e, "depthUpdate")) return depth(self, &stream, fields, now);
    if (is_str(e, "aggTrade")) return trade(self, fields, F_a, now);
    if (is_str(e, "trade")) return trade(self, fields, F_t, now);
    if (is_str(e, "bookTicker")) return ticker(self, fields, now);
    return 0;
}

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_binance_fast", "Binance's hot frames parsed into column buffers, in C.", -1, NULL,
};

PyMODINIT_FUNC PyInit__binance_fast(void) { return acc_module(&module, "xtrader.venues._binance_fast.Accumulator"); }
