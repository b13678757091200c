/*
 * `now()`: both receipt clocks in one call, as xtrader.clock.now's Python version takes them
 * (`time.time_ns()` is CLOCK_REALTIME, `time.perf_counter_ns()` CLOCK_MONOTONIC on Linux), returned as a
 * `Receipt` (the NamedTuple `set_type` was given) without the Python calls: the connector takes it per frame.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <time.h>

static PyTypeObject *receipt_type = NULL;

static PyObject *set_type(PyObject *module, PyObject *type) {
    if (!PyType_Check(type) || !PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "set_type: a tuple subclass");
        return NULL;
    }
    Py_INCREF(type);
    Py_XSETREF(receipt_type, (PyTypeObject *)type);
    Py_RETURN_NONE;
}

static PyObject *now(PyObject *module, PyObject *Py_UNUSED(ignored)) {
    struct timespec wall, mono;
    if (receipt_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "now: set_type() first");
        return NULL;
    }
    if (clock_gettime(CLOCK_REALTIME, &wall) != 0 || clock_gettime(CLOCK_MONOTONIC, &mono) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    PyObject *wall_ns = PyLong_FromLongLong((long long)wall.tv_sec * 1000000000LL + wall.tv_nsec);
    PyObject *mono_ns = PyLong_FromLongLong((long long)mono.tv_sec * 1000000000LL + mono.tv_nsec);
    PyObject *receipt = (wall_ns && mono_ns) ? receipt_type->tp_alloc(receipt_type, 2) : NULL;
    if (!receipt) {
        Py_XDECREF(wall_ns);
        Py_XDECREF(mono_ns);
        return NULL;
    }
    PyTuple_SET_ITEM(receipt, 0, wall_ns);
    PyTuple_SET_ITEM(receipt, 1, mono_ns);
    return receipt;
}

static PyMethodDef methods[] = {
    {"set_type", set_type, METH_O, "set_type(Receipt): the tuple subclass now() returns"},
    {"now", now, METH_NOARGS, "now() -> Receipt(wall_ns, mono_ns): CLOCK_REALTIME and CLOCK_MONOTONIC, in ns"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_clock", "Both receipt clocks in one C call.", -1, methods};

PyMODINIT_FUNC PyInit__clock(void) { return PyModule_Create(&module); }
