/*
 * Deribit's hot frames, from bytes straight into column buffers: no Python object per message.
 *
 * `Accumulator(scale, counted).parse(frame, receipt)` takes a JSON-RPC notification
 * `{"jsonrpc":"2.0","method":"subscription","params":{"channel":..,"data":..}}` (keys in any order, at every level)
 * whose channel is `book.*` (incremental `[action, price, amount]` levels, or the grouped
 * `book.{inst}.{group}.{depth}.{interval}` with `[price, amount]` pairs), `trades.*` (an array of trades), `quote.*`
 * or `ticker.*` (the best_* fields), appends its rows to C buffers and returns True. It returns False, with nothing
 * appended, for any frame it does not fully accept (responses, heartbeats, platform_state, other channels or
 * methods, anything odd), and the Python parser (xtrader/venues/deribit.py) then decides. It accepts only a subset
 * of what that parser accepts, and appends the same values:
 *   - the whole frame is strict JSON of printable ASCII without escapes (anything else: declined); a number with
 *     an exponent only in a field the handler does not use (a ticker's greeks: Deribit writes small ones so);
 *   - every field the handler uses has exactly the type the Python parser checks; a duplicate key among them (orjson
 *     keeps the last), an int beyond int64, a time that overflows int64 in ns: declined;
 *   - prices and amounts are JSON numbers as orjson gives them and Arrow's float64 cast converts them: an int within
 *     +-2**53 exactly (beyond: declined, as the Python parser rejects it), a number with a fraction correctly
 *     rounded; `-0` (orjson's int 0, +0.0) and ints beyond int64 (orjson's floats) are declined.
 * The buffers, `take()` and the rest of the type are xtrader/venues/_accumulator.h's.
 */
#include "_accumulator.h"

/* Arrow casts ints to float64 only within +-2**53 (deribit.py's _EXACT) */
#define EXACT ((int64_t)1 << 53)

/* ---------------------------------------------------------------- fields */

/* the data object's fields the book, quote and ticker handlers use */
enum { D_INST, D_TS, D_CHANGE, D_PREV, D_TYPE, D_BIDS, D_ASKS, D_BBP, D_BBA, D_BAP, D_BAA, NDATA };
/* a trade's */
enum { T_INST, T_TS, T_ID, T_DIR, T_PRICE, T_AMOUNT, NTRADE };

static int named(const Val *key, Py_ssize_t n, const char *name) { return memcmp(key->start, name, (size_t)n) == 0; }

static int data_field(const Val *key) {
    Py_ssize_t n = key->end - key->start;
    switch (n) {
    case 4:
        if (named(key, 4, "bids")) return D_BIDS;
        if (named(key, 4, "asks")) return D_ASKS;
        if (named(key, 4, "type")) return D_TYPE;
        return -1;
    case 9:
        if (named(key, 9, "timestamp")) return D_TS;
        if (named(key, 9, "change_id")) return D_CHANGE;
        return -1;
    case 14:
        if (named(key, 14, "best_bid_price")) return D_BBP;
        if (named(key, 14, "best_ask_price")) return D_BAP;
        if (named(key, 14, "prev_change_id")) return D_PREV;
        return -1;
    case 15:
        if (named(key, 15, "instrument_name")) return D_INST;
        if (named(key, 15, "best_bid_amount")) return D_BBA;
        if (named(key, 15, "best_ask_amount")) return D_BAA;
        return -1;
    }
    return -1;
}

static int trade_field(const Val *key) {
    Py_ssize_t n = key->end - key->start;
    switch (n) {
    case 5: return named(key, 5, "price") ? T_PRICE : -1;
    case 6: return named(key, 6, "amount") ? T_AMOUNT : -1;
    case 8: return named(key, 8, "trade_id") ? T_ID : -1;
    case 9:
        if (named(key, 9, "timestamp")) return T_TS;
        if (named(key, 9, "direction")) return T_DIR;
        return -1;
    case 15: return named(key, 15, "instrument_name") ? T_INST : -1;
    }
    return -1;
}

/* ---------------------------------------------------------------- values */

/* a price or amount: the float64 Arrow makes of orjson's value. 0: declined (not a number, an int beyond +-2**53,
 * `-0` or an int beyond int64, which orjson gives as int 0 or a float) */
static int number(const Val *v, double *out) {
    if (v->kind == K_INT) {
        if (v->ival > EXACT || v->ival < -EXACT) return 0;
        *out = (double)v->ival;
        return 1;
    }
    if (v->kind != K_NUM || !memchr(v->start, '.', (size_t)(v->end - v->start))) return 0;
    return decimal(v, out); /* -?[0-9]+\.[0-9]+, at most 24 characters (scan_num) */
}

/* a best_* field: null (*null set) or a number */
static int number_or_null(const Val *v, double *out, int *null) {
    *null = v->kind == K_NULL;
    return *null || number(v, out);
}

/* `, ` between two elements at p: past it, or NULL */
static const char *comma(const char *p, const char *end) {
    p = ws(p, end);
    return p < end && *p == ',' ? ws(p + 1, end) : NULL;
}

/* ---------------------------------------------------------------- handlers: 1 taken, 0 declined, -1 error */

/* levels (a validated array): `[[action, price, amount], ..]` with `actions`, else `[[price, amount], ..]`, put in
 * l2's level buffers from index `at` on (a delete: size 0) */
static int levels(Acc *self, const Val *array, int actions, Py_ssize_t at, Py_ssize_t *count) {
    const char *end = array->end, *p = ws(array->start + 1, end);
    Py_ssize_t k = 0;
    if (p < end && *p == ']') {
        *count = 0;
        return 1;
    }
    for (;;) {
        Val action, price, size;
        double pv, sv;
        int delete = 0;
        if (p >= end || *p != '[') return 0;
        p = ws(p + 1, end);
        if (actions) {
            if (!(p = scan_value(p, end, &action, 0)) || action.kind != K_STR) return 0;
            if (key_is(&action, "delete")) delete = 1;
            else if (!key_is(&action, "new") && !key_is(&action, "change")) return 0;
            if (!(p = comma(p, end))) return 0;
        }
        if (!(p = scan_value(p, end, &price, 0)) || !number(&price, &pv) || !(p = comma(p, end))) return 0;
        if (!(p = scan_value(p, end, &size, 0)) || !number(&size, &sv)) return 0;
        p = ws(p, end);
        if (p >= end || *p != ']') return 0;
        int put = level_put(self, at + k, pv, delete ? 0.0 : sv, &price, &size);
        if (put <= 0) return put;
        k++;
        p = ws(p + 1, end);
        if (p < end && *p == ']') {
            *count = k;
            return 1;
        }
        if (p >= end || *p != ',') return 0;
        p = ws(p + 1, end);
    }
}

/* `book.{inst}.{interval}` (incremental) or, `grouped`, `book.{inst}.{group}.{depth}.{interval}` */
static int book(Acc *self, const Val *f, int grouped, int64_t now) {
    int64_t ets, prev = 0;
    int snapshot = 1, has_prev = 0, r;
    Py_ssize_t bids, asks;
    if (f[D_INST].kind != K_STR || f[D_CHANGE].kind != K_INT || f[D_TS].kind != K_INT) return 0;
    if (!grouped) { /* the grouped book reads neither type nor prev_change_id */
        if (is_str(&f[D_TYPE], "change")) snapshot = 0;
        else if (!is_str(&f[D_TYPE], "snapshot")) return 0;
        if (f[D_PREV].kind == K_INT) {
            has_prev = 1;
            prev = f[D_PREV].ival;
        } else if (f[D_PREV].kind != K_NONE && f[D_PREV].kind != K_NULL) {
            return 0;
        }
    }
    if (f[D_BIDS].kind != K_ARR || f[D_ASKS].kind != K_ARR || !scaled(f[D_TS].ival, self->scale, &ets)) return 0;
    if ((r = levels(self, &f[D_BIDS], !grouped, self->l2.n, &bids)) <= 0) return r;
    if ((r = levels(self, &f[D_ASKS], !grouped, self->l2.n + bids, &asks)) <= 0) return r;
    if (bids > INT32_MAX || asks > INT32_MAX) return 0;
    int32_t code = intern(self, &f[D_INST]);
    if (code < 0) return code == -2 ? 0 : -1;
    return l2_message(self, code, ets, now, f[D_CHANGE].ival, has_prev, prev, 0, 0, snapshot, 0, 0, bids, asks);
}

/* `quote.{inst}` / `ticker.{inst}.{interval}`: a side with a null price or a zero (or null) amount is null */
static int top_of_book(Acc *self, const Val *f, int64_t now) {
    double bp = 0, bs = 0, ap = 0, as = 0;
    int bpn, bsn, apn, asn;
    int64_t ets;
    if (f[D_INST].kind != K_STR || f[D_TS].kind != K_INT) return 0;
    if (!number_or_null(&f[D_BBP], &bp, &bpn) || !number_or_null(&f[D_BBA], &bs, &bsn) ||
        !number_or_null(&f[D_BAP], &ap, &apn) || !number_or_null(&f[D_BAA], &as, &asn))
        return 0;
    if (!scaled(f[D_TS].ival, self->scale, &ets)) return 0;
    int32_t code = intern(self, &f[D_INST]);
    if (code < 0) return code == -2 ? 0 : -1;
    int bid = !bpn && !bsn && bs != 0.0, ask = !apn && !asn && as != 0.0;
    return bbo_row(self, code, 1, ets, now, 0, 0, bid, bp, bs, ask, ap, as);
}

/* each trade of `data` (a validated array) appended; on 0 / -1 the caller drops what was appended */
static int trades_put(Acc *self, const Val *data, int64_t now) {
    const char *end = data->end, *p = ws(data->start + 1, end);
    if (p < end && *p == ']') return 1;
    for (;;) {
        Val f[NTRADE];
        double price, size;
        int64_t ets;
        memset(f, 0, sizeof(f));
        if (p >= end || *p != '{' || !(p = scan_fields(p, end, trade_field, f, 3))) return 0;
        if (f[T_INST].kind != K_STR || f[T_TS].kind != K_INT || f[T_ID].kind != K_STR) return 0;
        int sell = is_str(&f[T_DIR], "sell");
        if (!sell && !is_str(&f[T_DIR], "buy")) return 0;
        if (!number(&f[T_PRICE], &price) || !number(&f[T_AMOUNT], &size)) return 0;
        if (!scaled(f[T_TS].ival, self->scale, &ets)) return 0;
        int32_t code = intern(self, &f[T_INST]);
        if (code < 0) return code == -2 ? 0 : -1;
        int put = trade_row(self, code, ets, now, &f[T_ID], sell, price, size);
        if (put <= 0) return put;
        p = ws(p, end);
        if (p < end && *p == ']') return 1;
        if (p >= end || *p != ',') return 0;
        p = ws(p + 1, end);
    }
}

/* `trades.{inst}.{interval}`: all of the array's trades, or none */
static int trades(Acc *self, const Val *data, int64_t now) {
    Buf *bufs = (Buf *)&self->tr;
    Py_ssize_t lens[TRADES_BUFS], k = self->tr.k;
    for (int i = 0; i < TRADES_BUFS; i++) lens[i] = bufs[i].len;
    int r = trades_put(self, data, now);
    if (r <= 0) {
        for (int i = 0; i < TRADES_BUFS; i++) bufs[i].len = lens[i];
        self->tr.k = k;
    }
    return r;
}

/* ---------------------------------------------------------------- one frame */

/* params at p (its '{'): channel and data recorded; an object data's fields recorded in `fields` as it is read */
static const char *scan_params(const char *p, const char *end, Val *channel, Val *data, Val *fields) {
    Val key, value;
    int closed = 0;
    p = ws(p + 1, end);
    while (!closed) {
        if (!(p = scan_key(p, end, &key))) return NULL;
        if (key_is(&key, "data")) {
            if (data->kind != K_NONE) return NULL;
            if (p < end && *p == '{') {
                data->start = p;
                if (!(p = scan_fields(p, end, data_field, fields, 2))) return NULL;
                data->end = p;
                data->kind = K_OBJ;
            } else if (!(p = scan_value(p, end, data, 2))) {
                return NULL;
            }
        } else {
            if (!(p = scan_value(p, end, &value, 2))) return NULL;
            if (key_is(&key, "channel")) {
                if (channel->kind != K_NONE) return NULL;
                *channel = value;
            }
        }
        if (!(p = scan_next(p, end, '}', &closed))) return NULL;
    }
    return p;
}

static int prefix_is(const char *p, Py_ssize_t n, const char *name) {
    return (size_t)n == strlen(name) && memcmp(p, name, (size_t)n) == 0;
}

static int frame(Acc *self, const char *p, const char *end, int64_t now) {
    Val fields[NDATA], method = {0}, channel = {0}, data = {0}, key, value;
    int have_params = 0, closed = 0;
    memset(fields, 0, sizeof(fields));
    p = ws(p, end);
    if (p >= end || *p != '{') return 0;
    p = ws(p + 1, end);
    while (!closed) {
        if (!(p = scan_key(p, end, &key))) return 0;
        if (key_is(&key, "params")) {
            if (have_params || p >= end || *p != '{') return 0;
            if (!(p = scan_params(p, end, &channel, &data, fields))) return 0;
            have_params = 1;
        } else {
            if (!(p = scan_value(p, end, &value, 1))) return 0;
            if (key_is(&key, "method")) {
                if (method.kind != K_NONE) return 0;
                method = value;
            }
        }
        if (!(p = scan_next(p, end, '}', &closed))) return 0;
    }
    if (ws(p, end) != end || !have_params || !is_str(&method, "subscription") || channel.kind != K_STR) return 0;
    /* the handler by the channel's prefix (before its first dot), as deribit.py's _CHANNELS */
    const char *c = channel.start, *dot = memchr(c, '.', (size_t)(channel.end - c));
    Py_ssize_t n = (dot ? dot : channel.end) - c;
    if (data.kind == K_OBJ) {
        if (prefix_is(c, n, "book")) {
            int dots = 0;
            for (const char *q = c; q < channel.end; q++) dots += *q == '.';
            return book(self, fields, dots == 4, now);
        }
        if (prefix_is(c, n, "ticker") || prefix_is(c, n, "quote")) return top_of_book(self, fields, now);
    } else if (data.kind == K_ARR && prefix_is(c, n, "trades")) {
        return trades(self, &data, now);
    }
    return 0;
}

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_deribit_fast", "Deribit's hot frames parsed into column buffers, in C.", -1, NULL,
};

PyMODINIT_FUNC PyInit__deribit_fast(void) { return acc_module(&module, "xtrader.venues._deribit_fast.Accumulator"); }
