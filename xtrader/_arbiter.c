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
 * Returns (verdicts: list[bool], duplicates: int).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

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
    if (nargs != 6 || !PyDict_Check(args[0]) || !PyDict_Check(args[1]) || !PyList_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "offer(tables: dict, orders: dict, keys: list, now_ns: int, limit: int, capacity: int)");
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
        PyObject *name = (PyTuple_Check(key) && PyTuple_GET_SIZE(key) > 0) ? PyTuple_GET_ITEM(key, 0) : Py_None;
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

static PyMethodDef methods[] = {
    {"offer", (PyCFunction)(void (*)(void))offer, METH_FASTCALL,
     "offer(tables, orders, keys, now_ns, limit, capacity) -> (verdicts, duplicates): Arbiter.offer_many's loop"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_arbiter", "The arbiter's key loop in C.", -1, methods};

PyMODINIT_FUNC PyInit__arbiter(void) { return PyModule_Create(&module); }
