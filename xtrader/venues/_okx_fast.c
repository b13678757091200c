/*
 * OKX's hot frames, from bytes straight into column buffers: no Python object per message.
 *
 * `Accumulator(scale, counted, keep_text=True).parse(frame, receipt)` takes a data push
 * `{"arg":{"channel":..,"instId":..},"action":..,"data":[{..},..]}` of the books, books-l2-tbt, books50-l2-tbt,
 * books5, trades, bbo-tbt or tickers channel, appends its rows to C buffers and returns True. It returns False,
 * with nothing appended, for any frame it does not fully accept (events and acks, other channels, anything odd),
 * and the Python parser (xtrader/venues/okx.py) then decides. It accepts only a subset of what that parser
 * accepts, and appends the same values:
 *   - the whole frame is strict JSON of printable ASCII without escapes; keys come in any order at every level;
 *     an `event` key, or a duplicate of a key the push uses (arg, action, data, a record's fields), declines;
 *   - every field a record uses has exactly the type the Python parser checks; `ts` is a string of ASCII digits
 *     (a leading '-' allowed) whose ms fit int64 in ns; seqId, prevSeqId, checksum are ints that fit int64 (or
 *     null / absent where the Python parser allows it);
 *   - prices and sizes are plain decimals (`-?[0-9]+(\.[0-9]+)?`, at most 40 characters), converted with correct
 *     rounding, as Arrow's cast and float() do; book levels keep their exact text (the checksum's input);
 *     tickers' "" (an empty side) is taken only when a side's price and size are both "".
 * A push with several records is taken whole or declined whole. The buffers, `take()` and the rest of the type are
 * xtrader/venues/_accumulator.h's.
 */
#include "_accumulator.h"

/* ---------------------------------------------------------------- the channels and a record's fields */

enum { CH_BOOKS, CH_BOOKS5, CH_TRADES, CH_BBO_TBT, CH_TICKERS };

/* arg.channel -> its handler in okx.py (_HANDLERS); -1: not one C takes */
static int channel_of(const Val *v) {
    if (v->kind != K_STR) return -1;
    if (is_str(v, "books") || is_str(v, "books-l2-tbt") || is_str(v, "books50-l2-tbt")) return CH_BOOKS;
    if (is_str(v, "books5")) return CH_BOOKS5;
    if (is_str(v, "trades")) return CH_TRADES;
    if (is_str(v, "bbo-tbt")) return CH_BBO_TBT;
    if (is_str(v, "tickers")) return CH_TICKERS;
    return -1;
}

enum { F_asks, F_bids, F_ts, F_checksum, F_seqId, F_prevSeqId, F_tradeId, F_px, F_sz, F_side, F_bidPx, F_bidSz,
       F_askPx, F_askSz, NFIELDS };

#define BIT(f) (1u << (f))
/* the fields each channel's handler reads; every other key of a record is skipped */
static const unsigned FIELDS[] = {
    [CH_BOOKS] = BIT(F_asks) | BIT(F_bids) | BIT(F_ts) | BIT(F_checksum) | BIT(F_seqId) | BIT(F_prevSeqId),
    [CH_BOOKS5] = BIT(F_asks) | BIT(F_bids) | BIT(F_ts) | BIT(F_seqId),
    [CH_TRADES] = BIT(F_tradeId) | BIT(F_px) | BIT(F_sz) | BIT(F_side) | BIT(F_ts),
    [CH_BBO_TBT] = BIT(F_asks) | BIT(F_bids) | BIT(F_ts) | BIT(F_seqId),
    [CH_TICKERS] = BIT(F_bidPx) | BIT(F_bidSz) | BIT(F_askPx) | BIT(F_askSz) | BIT(F_ts),
};

static int field_of(const Val *key) {
    switch (key->end - key->start) {
    case 2:
        if (key_is(key, "ts")) return F_ts;
        if (key_is(key, "px")) return F_px;
        if (key_is(key, "sz")) return F_sz;
        return -1;
    case 4:
        if (key_is(key, "asks")) return F_asks;
        if (key_is(key, "bids")) return F_bids;
        if (key_is(key, "side")) return F_side;
        return -1;
    case 5:
        if (key_is(key, "seqId")) return F_seqId;
        if (key_is(key, "bidPx")) return F_bidPx;
        if (key_is(key, "bidSz")) return F_bidSz;
        if (key_is(key, "askPx")) return F_askPx;
        if (key_is(key, "askSz")) return F_askSz;
        return -1;
    case 7:
        if (key_is(key, "tradeId")) return F_tradeId;
        return -1;
    case 8:
        if (key_is(key, "checksum")) return F_checksum;
        return -1;
    case 9:
        if (key_is(key, "prevSeqId")) return F_prevSeqId;
        return -1;
    }
    return -1;
}

/* ---------------------------------------------------------------- levels */

/* a book level read, kept until the record is complete (asks come before bids on the wire; bids go first in the
 * buffers) */
typedef struct {
    Val price, size;
    double pv, sv;
} Level;

/* the levels of the record being read (the GIL is held throughout a frame: one scratch area is enough) */
static Level *scratch;
static Py_ssize_t scratch_cap;

static int scratch_reserve(Py_ssize_t need) {
    if (need <= scratch_cap) return 0;
    Py_ssize_t cap = scratch_cap ? scratch_cap : 64;
    while (cap < need) cap *= 2;
    Level *grown = PyMem_Realloc(scratch, sizeof(Level) * (size_t)cap);
    if (!grown) {
        PyErr_NoMemory();
        return -1;
    }
    scratch = grown;
    scratch_cap = cap;
    return 0;
}

/* `"px", "sz"` (two strings) at p, inside a level after its '['; then any further items (ignored, as zip() in
 * okx._book does) up to its ']'. The end of the level, or NULL */
static const char *level_scan(const char *p, const char *end, Val *price, Val *size) {
    Val other;
    int closed = 0;
    p = ws(p, end);
    if (p >= end || *p != '"' || !(p = scan_str(p, end, price))) return NULL;
    p = ws(p, end);
    if (p >= end || *p != ',') return NULL;
    p = ws(p + 1, end);
    if (p >= end || *p != '"' || !(p = scan_str(p, end, size))) return NULL;
    if (!(p = scan_next(p, end, ']', &closed))) return NULL;
    while (!closed)
        if (!(p = scan_value(p, end, &other, 4)) || !(p = scan_next(p, end, ']', &closed))) return NULL;
    return p;
}

/* book levels `[["px","sz",..],..]` at p (its '['), appended to the scratch area from *count on (plain decimals
 * only). The end of the array, or NULL: declined (*error set: out of memory) */
static const char *levels_scan(const char *p, const char *end, Py_ssize_t *count, int *error) {
    int closed = 0;
    p = ws(p + 1, end);
    if (p < end && *p == ']') return p + 1;
    while (!closed) {
        if (p >= end || *p != '[') return NULL;
        if (scratch_reserve(*count + 1) < 0) {
            *error = 1;
            return NULL;
        }
        Level *level = &scratch[*count];
        if (!(p = level_scan(p + 1, end, &level->price, &level->size))) return NULL;
        if (!decimal(&level->price, &level->pv) || !decimal(&level->size, &level->sv)) return NULL;
        ++*count;
        if (!(p = scan_next(p, end, ']', &closed))) return NULL;
    }
    return p;
}

/* bbo-tbt's side `[["px","sz",..],..]` at p (its '['): only its first level is read, as okx._best does (the
 * others are any JSON). *has: 0 when the side is empty. The end of the array, or NULL */
static const char *best_scan(const char *p, const char *end, Val *price, Val *size, int *has) {
    Val other;
    int closed = 0;
    p = ws(p + 1, end);
    *has = 0;
    if (p < end && *p == ']') return p + 1;
    if (p >= end || *p != '[' || !(p = level_scan(p + 1, end, price, size))) return NULL;
    *has = 1;
    if (!(p = scan_next(p, end, ']', &closed))) return NULL;
    while (!closed)
        if (!(p = scan_value(p, end, &other, 3)) || !(p = scan_next(p, end, ']', &closed))) return NULL;
    return p;
}

/* ---------------------------------------------------------------- one record */

/* what a record's asks / bids held: scratch levels (books), or the first level (bbo-tbt) */
typedef struct {
    Py_ssize_t start, count;
    int has;
    Val price, size;
} Side;

/* the record object at p (its '{'): the channel's fields recorded (a duplicate declines), book sides read into the
 * scratch area from index 0 on. The end of the object, or NULL: declined (*error set: out of memory) */
static const char *record_scan(int ch, const char *p, const char *end, Val *f, Side *sides, int *error) {
    Val key, value;
    Py_ssize_t levels = 0;
    int closed = 0;
    p = ws(p + 1, end);
    if (p < end && *p == '}') return p + 1;
    while (!closed) {
        if (!(p = scan_key(p, end, &key))) return NULL;
        int k = field_of(&key);
        if (k >= 0 && !(FIELDS[ch] & BIT(k))) k = -1;
        if (k < 0) {
            p = scan_value(p, end, &value, 3);
        } else {
            if (f[k].kind != K_NONE) return NULL; /* a duplicate */
            if (k == F_asks || k == F_bids) {
                Side *side = &sides[k == F_bids];
                if (p >= end || *p != '[') return NULL; /* asks / bids must be arrays */
                f[k].kind = K_ARR;
                if (ch == CH_BBO_TBT) {
                    p = best_scan(p, end, &side->price, &side->size, &side->has);
                } else {
                    side->start = levels;
                    p = levels_scan(p, end, &levels, error);
                    side->count = levels - side->start;
                }
            } else {
                p = scan_value(p, end, &f[k], 3);
            }
        }
        if (!p || !(p = scan_next(p, end, '}', &closed))) return NULL;
    }
    return p;
}

/* `ts` (ms as a string of ASCII digits, '-' first allowed: what int() reads the same way) -> its ms and ns. 0 when it
 * is not such a string, or its ns overflow int64 (the Python parser keeps it; the flush rejects it) */
static int ts_of(const Val *v, int64_t scale, int64_t *ms, int64_t *ns) {
    const char *p = v->start, *end = v->end;
    int neg = 0;
    uint64_t acc = 0;
    if (v->kind != K_STR) return 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end || end - p > 19) return 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9') return 0;
        acc = acc * 10 + (uint64_t)(*p - '0');
    }
    if (acc > (uint64_t)INT64_MAX) return 0;
    *ms = neg ? -(int64_t)acc : (int64_t)acc;
    return scaled(*ms, scale, ns);
}

/* an optional int (okx._opt_int): absent or null -> *has 0; an int64 -> *has 1; 0: anything else (declined) */
static int opt_int(const Val *v, int *has) {
    *has = v->kind == K_INT;
    return v->kind == K_NONE || v->kind == K_NULL || v->kind == K_INT;
}

/* one books / books5 record: 1 appended, 0 declined, -1 error */
static int book(Acc *self, int ch, int32_t code, int snapshot, const Val *f, const Side *sides, int64_t now) {
    int64_t ms, ets, seq, pseq = 0, cks = 0;
    int has_pseq = 0, has_cks = 0;
    if (f[F_asks].kind != K_ARR || f[F_bids].kind != K_ARR) return 0;
    if (!ts_of(&f[F_ts], self->scale, &ms, &ets)) return 0;
    if (f[F_seqId].kind == K_NONE || f[F_seqId].kind == K_NULL) { /* before seqId existed: ts in ms */
        seq = ms;
    } else {
        if (f[F_seqId].kind != K_INT) return 0;
        seq = f[F_seqId].ival;
        if (ch == CH_BOOKS) { /* prevSeqId is read only with a seqId */
            if (!opt_int(&f[F_prevSeqId], &has_pseq)) return 0;
            pseq = f[F_prevSeqId].ival;
            if (has_pseq && pseq == -1) has_pseq = 0; /* a snapshot's */
        }
    }
    if (ch == CH_BOOKS) {
        if (!opt_int(&f[F_checksum], &has_cks)) return 0;
        cks = f[F_checksum].ival;
    }
    const Side *bids = &sides[1], *asks = &sides[0];
    if (bids->count > INT32_MAX || asks->count > INT32_MAX) return 0;
    Py_ssize_t at = self->l2.n;
    for (int s = 0; s < 2; s++) { /* bids, then asks */
        const Side *side = s ? asks : bids;
        for (Py_ssize_t i = side->start; i < side->start + side->count; i++) {
            const Level *level = &scratch[i];
            int put = level_put(self, at++, level->pv, level->sv, &level->price, &level->size);
            if (put <= 0) return put;
        }
    }
    return l2_message(self, code, ets, now, seq, has_pseq, pseq, 0, 0, snapshot, has_cks, cks, bids->count,
                      asks->count);
}

static int trade(Acc *self, int32_t code, const Val *f, int64_t now) {
    int64_t ms, ets;
    double price, size;
    const Val *side = &f[F_side];
    int sell = is_str(side, "sell");
    if (!sell && !is_str(side, "buy")) return 0;
    if (f[F_tradeId].kind != K_STR || f[F_px].kind != K_STR || f[F_sz].kind != K_STR) return 0;
    if (!decimal(&f[F_px], &price) || !decimal(&f[F_sz], &size) || !ts_of(&f[F_ts], self->scale, &ms, &ets)) return 0;
    return trade_row(self, code, ets, now, &f[F_tradeId], sell, price, size);
}

static int bbo_tbt(Acc *self, int32_t code, const Val *f, const Side *sides, int64_t now) {
    int64_t ms, ets;
    int has_seq;
    double bp = 0, bs = 0, ap = 0, as = 0;
    const Side *bid = &sides[1], *ask = &sides[0];
    if (f[F_asks].kind != K_ARR || f[F_bids].kind != K_ARR) return 0;
    if (!ts_of(&f[F_ts], self->scale, &ms, &ets) || !opt_int(&f[F_seqId], &has_seq)) return 0;
    if (bid->has && (!decimal(&bid->price, &bp) || !decimal(&bid->size, &bs))) return 0;
    if (ask->has && (!decimal(&ask->price, &ap) || !decimal(&ask->size, &as))) return 0;
    return bbo_row(self, code, 1, ets, now, has_seq, f[F_seqId].ival, bid->has, bp, bs, ask->has, ap, as);
}

/* a tickers side: both "" (an empty side: null), or both plain decimals; 0: anything else (declined) */
static int ticker_side(const Val *price, const Val *size, int *has, double *pv, double *sv) {
    if (price->kind != K_STR || size->kind != K_STR) return 0;
    *has = price->end != price->start;
    if (!*has) return size->end == size->start;
    return decimal(price, pv) && decimal(size, sv);
}

static int ticker(Acc *self, int32_t code, const Val *f, int64_t now) {
    int64_t ms, ets;
    int has_bid, has_ask;
    double bp = 0, bs = 0, ap = 0, as = 0;
    if (!ticker_side(&f[F_bidPx], &f[F_bidSz], &has_bid, &bp, &bs) ||
        !ticker_side(&f[F_askPx], &f[F_askSz], &has_ask, &ap, &as) || !ts_of(&f[F_ts], self->scale, &ms, &ets))
        return 0;
    return bbo_row(self, code, 1, ets, now, 0, 0, has_bid, bp, bs, has_ask, ap, as);
}

/* ---------------------------------------------------------------- one frame */

/* what the push's records append: known once arg (and, for books, action) is read */
typedef struct {
    int ch, snapshot;
    Val inst;
    int32_t code; /* -1 until the symbol is interned (at the first record appended) */
} Push;

/* the data array at p (its '['): each record read and appended. The end of the array, or NULL: declined (*error
 * set: an exception) */
static const char *data_parse(Acc *self, Push *push, const char *p, const char *end, int64_t now, int *error) {
    int closed = 0;
    p = ws(p + 1, end);
    if (p < end && *p == ']') return p + 1;
    while (!closed) {
        Val f[NFIELDS];
        Side sides[2];
        memset(f, 0, sizeof(f));
        memset(sides, 0, sizeof(sides));
        if (p >= end || *p != '{' || !(p = record_scan(push->ch, p, end, f, sides, error))) return NULL;
        if (push->code < 0) {
            push->code = intern(self, &push->inst);
            if (push->code < 0) {
                *error = push->code == -1;
                return NULL;
            }
        }
        int taken;
        switch (push->ch) {
        case CH_BOOKS:
        case CH_BOOKS5:
            taken = book(self, push->ch, push->code, push->snapshot, f, sides, now);
            break;
        case CH_TRADES:
            taken = trade(self, push->code, f, now);
            break;
        case CH_BBO_TBT:
            taken = bbo_tbt(self, push->code, f, sides, now);
            break;
        default:
            taken = ticker(self, push->code, f, now);
        }
        if (taken <= 0) {
            *error = taken < 0;
            return NULL;
        }
        if (!(p = scan_next(p, end, ']', &closed))) return NULL;
    }
    return p;
}

/* the arg object's fields: channel and instId */
enum { A_CHANNEL, A_INST, NARG };

static int arg_field(const Val *key) {
    return key_is(key, "channel") ? A_CHANNEL : key_is(key, "instId") ? A_INST : -1;
}

/* action: okx._ACTIONS (books only) */
static int action_of(const Val *action, int *snapshot) {
    *snapshot = is_str(action, "snapshot");
    return *snapshot || is_str(action, "update");
}

/* 1 taken, 0 declined, -1 error; may leave rows appended when it does not return 1 (frame() takes them back) */
static int push_frame(Acc *self, const char *p, const char *end, int64_t now) {
    Val key, value, action = {0}, data = {0};
    Push push = {.ch = -1, .code = -1};
    int have_arg = 0, parsed = 0, closed = 0, error = 0;
    p = ws(p, end);
    if (p >= end || *p != '{') return 0;
    p = ws(p + 1, end);
    while (!closed) {
        if (!(p = scan_key(p, end, &key))) return 0;
        if (key_is(&key, "arg")) {
            Val arg[NARG] = {{0}};
            if (have_arg || p >= end || *p != '{' || !(p = scan_fields(p, end, arg_field, arg, 1))) return 0;
            push.inst = arg[A_INST];
            if ((push.ch = channel_of(&arg[A_CHANNEL])) < 0 || push.inst.kind != K_STR) return 0;
            push.snapshot = push.ch == CH_BOOKS5; /* every books5 push is a full snapshot; books: its action */
            have_arg = 1;
        } else if (key_is(&key, "data")) {
            if (data.kind != K_NONE || p >= end || *p != '[') return 0;
            data.kind = K_ARR;
            data.start = p;
            if (have_arg && (push.ch != CH_BOOKS || action.kind != K_NONE)) { /* the usual order: parse it now */
                if (push.ch == CH_BOOKS && !action_of(&action, &push.snapshot)) return 0;
                p = data_parse(self, &push, p, end, now, &error);
                if (error) return -1;
                parsed = 1;
            } else {
                p = scan_value(p, end, &value, 1); /* validated now, parsed below */
            }
        } else if (key_is(&key, "action")) {
            if (action.kind != K_NONE || !(p = scan_value(p, end, &action, 1))) return 0;
        } else if (key_is(&key, "event")) {
            return 0; /* an ack, error or notice: the Python parser's */
        } else {
            p = scan_value(p, end, &value, 1);
        }
        if (!p || !(p = scan_next(p, end, '}', &closed))) return 0;
    }
    if (ws(p, end) != end || !have_arg || data.kind == K_NONE) return 0;
    if (parsed) return 1;
    if (push.ch == CH_BOOKS && !action_of(&action, &push.snapshot)) return 0;
    if (!data_parse(self, &push, data.start, end, now, &error)) return error ? -1 : 0;
    return 1;
}

/* the buffers' lengths and counts, to take a frame's rows back */
typedef struct {
    Py_ssize_t l2[L2_BUFS], tr[TRADES_BUFS], bbo[BBO_BUFS];
    Py_ssize_t m, n, k, j;
} Lengths;

static void lengths_get(Buf *b, int count, Py_ssize_t *into) {
    for (int i = 0; i < count; i++) into[i] = b[i].len;
}

static void lengths_set(Buf *b, int count, const Py_ssize_t *from) {
    for (int i = 0; i < count; i++) b[i].len = from[i];
}

static int frame(Acc *self, const char *p, const char *end, int64_t now) {
    Lengths saved;
    lengths_get((Buf *)&self->l2, L2_BUFS, saved.l2);
    lengths_get((Buf *)&self->tr, TRADES_BUFS, saved.tr);
    lengths_get((Buf *)&self->bbo, BBO_BUFS, saved.bbo);
    saved.m = self->l2.m;
    saved.n = self->l2.n;
    saved.k = self->tr.k;
    saved.j = self->bbo.j;
    int taken = push_frame(self, p, end, now);
    if (taken != 1) { /* declined (or an error) after some records were appended: nothing of the frame stays */
        lengths_set((Buf *)&self->l2, L2_BUFS, saved.l2);
        lengths_set((Buf *)&self->tr, TRADES_BUFS, saved.tr);
        lengths_set((Buf *)&self->bbo, BBO_BUFS, saved.bbo);
        self->l2.m = saved.m;
        self->l2.n = saved.n;
        self->tr.k = saved.k;
        self->bbo.j = saved.j;
    }
    return taken;
}

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_okx_fast", "OKX's hot frames parsed into column buffers, in C.", -1, NULL,
};

PyMODINIT_FUNC PyInit__okx_fast(void) { return acc_module(&module, "xtrader.venues._okx_fast.Accumulator"); }
