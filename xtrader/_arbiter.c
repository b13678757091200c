/*
 * `offer(tables, keys, now_ns, limit)`: the loop of `xtrader.arbiter.Arbiter.offer_many` in C, the same dict
 * operations in the same order (its Python version stays, and the tests hold the two to equal verdicts and
 * tables). For each key: its table is `key[0]` (a tuple's first item, else None), whose dict `tables` holds (one
 * is made on first use); a key not in it is new (stored with `now_ns`, appended); one stored within `limit` ns
 * (`limit` < 0: forever) is a duplicate; an older one is new again and moves to the end.
 *
 * Returns (verdicts: list[bool], duplicates: int, touched: list[dict]) — the tables the keys went to, in order,
 * for the caller's eviction past capacity.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *offer(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyDict_Check(args[0]) || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "offer(tables: dict, keys: list, now_ns: int, limit: int)");
        return NULL;
    }
    PyObject *tables = args[0], *keys = args[1];
    long long now_ns = PyLong_AsLongLong(args[2]);
    if (now_ns == -1 && PyErr_Occurred()) return NULL;
    long long limit = PyLong_AsLongLong(args[3]);
    if (limit == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(keys);
    PyObject *verdicts = PyList_New(n);
    PyObject *touched = PyList_New(0);
    PyObject *now = PyLong_FromLongLong(now_ns);
    if (!verdicts || !touched || !now) goto fail;
    PyObject *table = NULL; /* borrowed: the current key's table name (NULL: none looked up yet) */
    PyObject *seen = NULL;  /* borrowed from `tables` */
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
            if (PyList_Append(touched, seen) < 0) goto fail;
        }
        Py_ssize_t size = PyDict_GET_SIZE(seen);
        PyObject *first = PyDict_SetDefault(seen, key, now); /* one lookup: stored if new */
        int keep;
        if (first == NULL) goto fail;
        if (PyDict_GET_SIZE(seen) > size) {
            keep = 1;
        } else {
            long long first_ns = PyLong_AsLongLong(first);
            if (first_ns == -1 && PyErr_Occurred()) goto fail;
            if (limit < 0 || now_ns - first_ns <= limit) {
                duplicates++;
                keep = 0;
            } else { /* expired: delivered again, it is new (and the newest) */
                if (PyDict_DelItem(seen, key) < 0 || PyDict_SetItem(seen, key, now) < 0) goto fail;
                keep = 1;
            }
        }
        PyObject *verdict = keep ? Py_True : Py_False;
        Py_INCREF(verdict);
        PyList_SET_ITEM(verdicts, i, verdict);
    }
    Py_DECREF(now);
    return Py_BuildValue("(NnN)", verdicts, duplicates, touched);
fail:
    Py_XDECREF(verdicts);
    Py_XDECREF(touched);
    Py_XDECREF(now);
    return NULL;
}

static PyMethodDef methods[] = {
    {"offer", (PyCFunction)(void (*)(void))offer, METH_FASTCALL,
     "offer(tables, keys, now_ns, limit) -> (verdicts, duplicates, touched): Arbiter.offer_many's loop"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_arbiter", "The arbiter's key loop in C.", -1, methods};

PyMODINIT_FUNC PyInit__arbiter(void) { return PyModule_Create(&module); }
