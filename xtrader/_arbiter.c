/*
 * `offer(tables, orders, keys, now_ns, limit, capacity)`: the loop of `xtrader.arbiter.Arbiter.offer_many` in C,
 * the same dict and list operations in the same order (its Python version stays, and the tests hold the two to
 * equal verdicts and tables). For each key: its table is `key[0]` (a tuple's first item, else None), whose dict
 * `tables` holds and whose order `orders` holds (`[keys: list, head: int, moved: dict]`; both made on first use).
 * A key not in the dict is new (stored with `now_ns`, appended to the order); one stored within `limit` ns
 * (`limit` < 0: forever) is a duplicate; an older one is new again: it moves to the end of the dict, is appended
 * to the order again, and `moved` counts the older entry the order still holds. At the end each table the keys
 * went to keeps its `capacity` newest keys: the oldest are taken from the order's head (an older entry of a
 * moved key is used up instead), and the used entries are dropped once they are half of the order.
 *
 * `table`, when given, is every key's table instead (keys that are not tuples: `xtrader.update_ids`).
 *
 * Returns (verdicts: list[bool], duplicates: int).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define COMPACT_AT 1024 /* used entries, at least, before an order is compacted (Python: `_advance`) */

/* An order's state [keys, head, moved], made if absent. Borrowed. */
static PyObject *order_of(PyObject *orders, PyObject *name) {
    PyObject *state = PyDict_GetItemWithError(orders, name);
    if (state != NULL) {
        if (!PyList_Check(state) || PyList_GET_SIZE(state) != 3 || !PyList_Check(PyList_GET_ITEM(state, 0)) ||
            !PyDict_Check(PyList_GET_ITEM(state, 2))) {
            PyErr_SetString(PyExc_TypeError, "offer: an order that is not [list, int, dict]");
            return NULL;
        }
        return state;
    }
    if (PyErr_Occurred()) return NULL;
    state = Py_BuildValue("[NiN]", PyList_New(0), 0, PyDict_New());
    if (!state) return NULL;
    int rc = PyDict_SetItem(orders, name, state);
    Py_DECREF(state);
    return rc < 0 ? NULL : state; /* `orders` holds it */
}

/* True (1) when this order entry is an older one of a moved key, counted off; 0 if not; -1 on error. */
static int older_entry(PyObject *moved, PyObject *key) {
    if (PyDict_GET_SIZE(moved) == 0) return 0;
    PyObject *count = PyDict_GetItemWithError(moved, key);
    if (count == NULL) return PyErr_Occurred() ? -1 : 0;
    long n = PyLong_AsLong(count);
    if (n == -1 && PyErr_Occurred()) return -1;
    if (n > 1) {
        PyObject *less = PyLong_FromLong(n - 1);
        if (!less) return -1;
        int rc = PyDict_SetItem(moved, key, less);
        Py_DECREF(less);
        return rc < 0 ? -1 : 1;
    }
    return PyDict_DelItem(moved, key) < 0 ? -1 : 1;
}

/* Keep the `capacity` newest keys of `seen`, taking the oldest from the order's head. 0, or -1 on error. */
static int evict(PyObject *seen, PyObject *state, Py_ssize_t capacity) {
    Py_ssize_t excess = PyDict_GET_SIZE(seen) - capacity;
    if (excess <= 0) return 0;
    PyObject *order = PyList_GET_ITEM(state, 0), *moved = PyList_GET_ITEM(state, 2);
    Py_ssize_t head = PyLong_AsSsize_t(PyList_GET_ITEM(state, 1));
    if (head == -1 && PyErr_Occurred()) return -1;
    while (excess > 0) {
        if (head >= PyList_GET_SIZE(order)) {
            PyErr_SetString(PyExc_RuntimeError, "offer: a table holds keys its order does not");
            return -1;
        }
        PyObject *key = PyList_GET_ITEM(order, head);
        head++;
        int older = older_entry(moved, key);
        if (older < 0) return -1;
        if (older) continue;
        if (PyDict_DelItem(seen, key) == 0) {
            excess--;
        } else if (PyErr_ExceptionMatches(PyExc_KeyError)) {
            PyErr_Clear(); /* gone already */
        } else {
            return -1;
        }
    }
    if (head >= COMPACT_AT && head * 2 >= PyList_GET_SIZE(order)) {
        if (PyList_SetSlice(order, 0, head, NULL) < 0) return -1;
        head = 0;
    }
    PyObject *at = PyLong_FromSsize_t(head);
    if (!at) return -1;
    return PyList_SetItem(state, 1, at); /* steals `at` */
}

static PyObject *offer(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if ((nargs != 6 && nargs != 7) || !PyDict_Check(args[0]) || !PyDict_Check(args[1]) || !PyList_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "offer(tables: dict, orders: dict, keys: list, now_ns: int, limit: int, "
                                         "capacity: int[, table])");
        return NULL;
    }
    PyObject *tables = args[0], *orders = args[1], *keys = args[2];
    long long now_ns = PyLong_AsLongLong(args[3]);
    if (now_ns == -1 && PyErr_Occurred()) return NULL;
    long long limit = PyLong_AsLongLong(args[4]);
    if (limit == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t capacity = PyLong_AsSsize_t(args[5]);
    if (capacity == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(keys);
    PyObject *verdicts = PyList_New(n);
    PyObject *touched = PyList_New(0); /* (seen, state) per table change, for the eviction at the end */
    PyObject *now = PyLong_FromLongLong(now_ns);
    if (!verdicts || !touched || !now) goto fail;
    PyObject *table = NULL; /* borrowed: the current key's table name (NULL: none looked up yet) */
    PyObject *seen = NULL;  /* borrowed from `tables` */
    PyObject *state = NULL; /* borrowed from `orders` */
    Py_ssize_t duplicates = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        PyObject *name = nargs == 7                                               ? args[6]
                         : (PyTuple_Check(key) && PyTuple_GET_SIZE(key) > 0) ? PyTuple_GET_ITEM(key, 0)
                                                                             : Py_None;
        if (name != table || seen == NULL) {
            table = name;
            seen = PyDict_GetItemWithError(tables, name);
            if (seen == NULL) {
                if (PyErr_Occurred()) goto fail;
                PyObject *fresh = PyDict_New();
                if (!fresh) goto fail;
                int rc = PyDict_SetItem(tables, name, fresh);
                Py_DECREF(fresh);
                if (rc < 0) goto fail;
                seen = fresh; /* `tables` holds it */
            } else if (!PyDict_Check(seen)) {
                PyErr_SetString(PyExc_TypeError, "offer: a table that is not a dict");
                goto fail;
            }
            state = order_of(orders, name);
            if (state == NULL) goto fail;
            PyObject *pair = PyTuple_Pack(2, seen, state);
            if (!pair) goto fail;
            int rc = PyList_Append(touched, pair);
            Py_DECREF(pair);
            if (rc < 0) goto fail;
        }
        Py_ssize_t size = PyDict_GET_SIZE(seen);
        PyObject *first = PyDict_SetDefault(seen, key, now); /* one lookup: stored if new */
        int keep = 1;
        if (first == NULL) goto fail;
        if (PyDict_GET_SIZE(seen) == size) {
            long long first_ns = PyLong_AsLongLong(first);
            if (first_ns == -1 && PyErr_Occurred()) goto fail;
            if (limit < 0 || now_ns - first_ns <= limit) {
                duplicates++;
                keep = 0;
            } else { /* expired: delivered again, it is new (and the newest) */
                if (PyDict_DelItem(seen, key) < 0 || PyDict_SetItem(seen, key, now) < 0) goto fail;
                PyObject *moved = PyList_GET_ITEM(state, 2);
                PyObject *count = PyDict_GetItemWithError(moved, key);
                if (count == NULL && PyErr_Occurred()) goto fail;
                long before = count == NULL ? 0 : PyLong_AsLong(count);
                if (before == -1 && PyErr_Occurred()) goto fail;
                PyObject *more = PyLong_FromLong(before + 1);
                if (!more) goto fail;
                int rc = PyDict_SetItem(moved, key, more);
                Py_DECREF(more);
                if (rc < 0) goto fail;
            }
        }
        if (keep && PyList_Append(PyList_GET_ITEM(state, 0), key) < 0) goto fail;
        PyObject *verdict = keep ? Py_True : Py_False;
        Py_INCREF(verdict);
        PyList_SET_ITEM(verdicts, i, verdict);
    }
    for (Py_ssize_t t = 0; t < PyList_GET_SIZE(touched); t++) {
        PyObject *pair = PyList_GET_ITEM(touched, t);
        if (evict(PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1), capacity) < 0) goto fail;
    }
    Py_DECREF(touched);
    Py_DECREF(now);
    return Py_BuildValue("(Nn)", verdicts, duplicates);
fail:
    Py_XDECREF(verdicts);
    Py_XDECREF(touched);
    Py_XDECREF(now);
    return NULL;
}

/* --- Row ids: a 64-bit hash of a row's key columns, mixed one column at a time into `h` (uint64 per row) --- */

static inline uint64_t fmix64(uint64_t x) { /* MurmurHash3's finalizer: a bijection that mixes every bit */
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

#define NULL_MARK 0x9e3779b97f4a7c15ULL /* a null value: mixed in, then the result flipped (not a value's step) */
#define NULL_FLIP 0x2545f4914f6cdd1dULL

static inline uint64_t mix_null(uint64_t h) { return fmix64(h ^ NULL_MARK) ^ NULL_FLIP; }

static inline int is_valid(const Py_buffer *valid, Py_ssize_t bit) {
    return valid->buf == NULL || ((const uint8_t *)valid->buf)[bit >> 3] >> (bit & 7) & 1;
}

/* Buffers of a mix call: h (writable), then the column's; `valid` may be None (no nulls). 0, or -1 on error. */
static int get_buffers(PyObject *const *args, Py_ssize_t count, Py_buffer *views, PyObject *valid, Py_buffer *bits) {
    memset(bits, 0, sizeof *bits);
    for (Py_ssize_t i = 0; i < count; i++) {
        if (PyObject_GetBuffer(args[i], &views[i], i == 0 ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0) {
            while (i-- > 0) PyBuffer_Release(&views[i]);
            return -1;
        }
    }
    if (valid != Py_None && PyObject_GetBuffer(valid, bits, PyBUF_SIMPLE) < 0) {
        for (Py_ssize_t i = 0; i < count; i++) PyBuffer_Release(&views[i]);
        memset(bits, 0, sizeof *bits);
        return -1;
    }
    return 0;
}

static void release(Py_buffer *views, Py_ssize_t count, Py_buffer *bits) {
    for (Py_ssize_t i = 0; i < count; i++) PyBuffer_Release(&views[i]);
    if (bits->obj != NULL) PyBuffer_Release(bits);
}

static int check_bits(const Py_buffer *bits, Py_ssize_t offset, Py_ssize_t n) {
    if (bits->buf != NULL && bits->len * 8 < offset + n) {
        PyErr_SetString(PyExc_ValueError, "mix: a validity bitmap shorter than its column");
        return -1;
    }
    return 0;
}

/* mix_int64(h, values, valid, offset): h[i] = step(h[i], values[offset + i]) (a null: its own step). */
static PyObject *mix_int64(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "mix_int64(h, values, valid, offset)");
        return NULL;
    }
    Py_ssize_t offset = PyLong_AsSsize_t(args[3]);
    if (offset < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "mix_int64: a negative offset");
        return NULL;
    }
    Py_buffer views[2], bits;
    if (get_buffers(args, 2, views, args[2], &bits) < 0) return NULL;
    Py_ssize_t n = views[0].len / 8;
    if (views[1].len < (offset + n) * 8 || check_bits(&bits, offset, n) < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "mix_int64: values shorter than h");
        release(views, 2, &bits);
        return NULL;
    }
    uint64_t *h = views[0].buf;
    const char *values = (const char *)views[1].buf + offset * 8;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t v;
        memcpy(&v, values + i * 8, 8);
        h[i] = is_valid(&bits, offset + i) ? fmix64(h[i] ^ v) : mix_null(h[i]);
    }
    release(views, 2, &bits);
    Py_RETURN_NONE;
}

/* str_words(out, offsets, data, offset): each row's string (int32 `offsets` into `data`) as one 64-bit word, to
 * mix as an int64 (`mix_int64`, which also mixes the nulls): its length, then its bytes 8 at a time (the last word
 * zero-padded: the length tells "a" from "a\\0"). */
static PyObject *str_words(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "str_words(out, offsets, data, offset)");
        return NULL;
    }
    Py_ssize_t offset = PyLong_AsSsize_t(args[3]);
    if (offset < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "str_words: a negative offset");
        return NULL;
    }
    Py_buffer views[3], bits;
    if (get_buffers(args, 3, views, Py_None, &bits) < 0) return NULL;
    Py_ssize_t n = views[0].len / 8;
    if (n > 0 && views[1].len < (offset + n + 1) * 4) {
        PyErr_SetString(PyExc_ValueError, "str_words: offsets shorter than out");
        release(views, 3, &bits);
        return NULL;
    }
    uint64_t *out = views[0].buf;
    const int32_t *offsets = (const int32_t *)views[1].buf + offset;
    const unsigned char *data = views[2].buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t start = offsets[i], end = offsets[i + 1];
        if (start < 0 || end < start || end > views[2].len) {
            PyErr_SetString(PyExc_ValueError, "str_words: an offset outside the data");
            release(views, 3, &bits);
            return NULL;
        }
        uint64_t x = fmix64((uint64_t)(end - start) ^ NULL_FLIP);
        for (int32_t at = start; at < end; at += 8) {
            uint64_t word = 0;
            memcpy(&word, data + at, end - at < 8 ? (size_t)(end - at) : 8);
            x = fmix64(x ^ word);
        }
        out[i] = x;
    }
    release(views, 3, &bits);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"offer", (PyCFunction)(void (*)(void))offer, METH_FASTCALL,
     "offer(tables, orders, keys, now_ns, limit, capacity[, table]) -> (verdicts, duplicates): Arbiter.offer_many's "
     "loop"},
    {"mix_int64", (PyCFunction)(void (*)(void))mix_int64, METH_FASTCALL,
     "mix_int64(h, values, valid, offset): mix an int64 column (Arrow buffers) into the row ids h (uint64)"},
    {"str_words", (PyCFunction)(void (*)(void))str_words, METH_FASTCALL,
     "str_words(out, offsets, data, offset): a string column's values (Arrow buffers) as 64-bit words (uint64)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_arbiter", "The arbiter's key loop in C.", -1, methods};

PyMODINIT_FUNC PyInit__arbiter(void) { return PyModule_Create(&module); }
