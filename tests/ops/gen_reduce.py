#!/usr/bin/python3
"""Writes tests/ops/expected_reduce.h: inputs and numpy-computed outputs for
the ops of ir/ops/reduce.c (ReduceSum, ReduceMean, ReduceMax, ReduceMin,
ReduceProd, ArgMax, ArgMin).

Every expectation comes from numpy (np.sum, np.mean, np.max, np.min,
np.prod, np.argmax, np.argmin; select_last_index via the index into the
flipped axis), never from kiln. Values are small integers, exact in every
dtype a case lists (the C test converts them); cases with NaN list float
dtypes only.

Run with /usr/bin/python3 (needs numpy): /usr/bin/python3 tests/ops/gen_reduce.py
"""
import os
import warnings

import numpy as np

FLOATS = ["KILN_F32", "KILN_F64", "KILN_F16", "KILN_BF16"]
SIGNED = FLOATS + ["KILN_I8", "KILN_I32", "KILN_I64"]
ALL = SIGNED + ["KILN_U8"]


def ints(shape, k=0, lo=-4, span=9):
    """Small integers in [lo, lo + span) of a shape, with repeats."""
    n = int(np.prod(shape, dtype=np.int64))
    return np.array([float((i * 5 + k * 3) % span + lo) for i in range(n)]).reshape(shape)


def c_double(v):
    if np.isnan(v):
        return "NAN"
    if np.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    return repr(float(v))


class Writer:
    def __init__(self):
        self.arrays = []
        self.cases = []
        self.count = 0

    def array(self, a):
        name = "rd_data_%d" % self.count
        self.count += 1
        flat = np.asarray(a, dtype=np.float64).ravel()
        body = ", ".join(c_double(v) for v in flat) if flat.size else "0"
        self.arrays.append("static const double %s[] = {%s};" % (name, body))
        return name

    def tensor(self, a):
        a = np.asarray(a, dtype=np.float64)
        dims = list(a.shape)
        return "{%d, {%s}, %d, %s}" % (len(dims), ", ".join(str(d) for d in dims) or "0",
                                       a.size, self.array(a))

    def case(self, op, label, x, y, dtypes, axes=None, keepdims=1, axis=0, last=0):
        assert len(dtypes) <= 8
        ax = "-1, {0}" if axes is None else "%d, {%s}" % (len(axes), ", ".join(
            str(v) for v in axes) or "0")
        self.cases.append(
            "    {\"%s\", \"%s\", %s, %s, %d, {%s}, {%s}, %d, %d, %d},"
            % (op, label, self.tensor(x), self.tensor(y), len(dtypes), ", ".join(dtypes), ax,
               keepdims, axis, last))


w = Writer()

# ---- ReduceSum / Mean / Max / Min / Prod ----
NP = {"ReduceSum": np.sum, "ReduceMean": np.mean, "ReduceMax": np.max, "ReduceMin": np.min,
      "ReduceProd": np.prod}


def reduce(op, label, x, axes, keepdims, dtypes):
    ax = None if not axes else tuple(axes)  # unset or empty: every axis
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the mean of an empty axis warns
        y = NP[op](x, axis=ax, keepdims=bool(keepdims))
    w.case(op, label, x, y, dtypes, axes=axes, keepdims=keepdims)


x234 = ints((2, 3, 4))
for op in ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin"]:
    dt = FLOATS if op == "ReduceMean" else SIGNED
    reduce(op, "axis 1 keepdims", x234, [1], 1, dt)
    reduce(op, "axes 0,2 no keepdims", x234, [0, 2], 0, dt)
    reduce(op, "negative axes", x234, [-1, -3], 1, dt)
    reduce(op, "unset axes", x234, None, 1, dt)
    reduce(op, "empty axes, no keepdims", x234, [], 0, dt)
    reduce(op, "size-1 dim", ints((3, 1, 2), 1), [1], 0, dt)
    reduce(op, "scalar", np.array(-3.0), None, 1, dt)
    reduce(op, "kept zero-size dim", np.zeros((0, 3)), [1], 1, dt)
    reduce(op, "unsigned", ints((3, 4), 2, lo=0, span=30), [0], 0,
           FLOATS if op == "ReduceMean" else ["KILN_U8", "KILN_I32"])
    reduce(op, "rank 4", ints((2, 2, 3, 2), 3), [1, 3], 0, dt)

# Products stay small: values in {-2, ..., 2} over short axes.
xp = ints((2, 3, 2), 1, lo=-2, span=5)
reduce("ReduceProd", "axis 1", xp, [1], 1, SIGNED)
reduce("ReduceProd", "axes -1,0", xp, [-1, 0], 0, SIGNED)
reduce("ReduceProd", "all", ints((2, 3), 2, lo=1, span=3), None, 0, ALL)
reduce("ReduceProd", "scalar", np.array(3.0), [], 1, SIGNED)
reduce("ReduceProd", "kept zero-size dim", np.zeros((0, 3)), [1], 0, SIGNED)

# Empty axes: sum 0, prod 1, mean NaN (max/min are run-time errors, tested by hand).
for op in ["ReduceSum", "ReduceProd", "ReduceMean"]:
    reduce(op, "empty axis", np.zeros((2, 0, 3)), [1], 1, FLOATS if op == "ReduceMean" else SIGNED)
    reduce(op, "empty input, all axes", np.zeros((0, 3)), None, 0,
           FLOATS if op == "ReduceMean" else SIGNED)

# NaN propagates through max and min (and sum).
xn = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, -6.0], [np.inf, 2.0, -np.inf]])
for op in ["ReduceMax", "ReduceMin", "ReduceSum", "ReduceMean"]:
    reduce(op, "nan rows", xn, [1], 0, FLOATS)
    reduce(op, "nan cols", xn, [0], 0, FLOATS)

# ---- ArgMax / ArgMin ----
def arg(op, label, x, axis, keepdims, last, dtypes):
    f = np.argmax if op == "ArgMax" else np.argmin
    if last:
        n = x.shape[axis]
        y = n - 1 - f(np.flip(x, axis=axis), axis=axis)
    else:
        y = f(x, axis=axis)
    if keepdims:
        y = np.expand_dims(y, axis)
    w.case(op, label, x, y, dtypes, keepdims=keepdims, axis=axis, last=last)


xa = ints((2, 3, 4), 0, lo=-2, span=4)  # many ties
for op in ["ArgMax", "ArgMin"]:
    arg(op, "axis 0", xa, 0, 1, 0, SIGNED)
    arg(op, "axis 1 no keepdims", xa, 1, 0, 0, SIGNED)
    arg(op, "axis -1", xa, -1, 1, 0, SIGNED)
    arg(op, "last index, axis 2", xa, 2, 1, 1, SIGNED)
    arg(op, "last index, axis -2 no keepdims", xa, -2, 0, 1, SIGNED)
    arg(op, "1-D", ints((7,), 1), 0, 0, 0, ALL[:3] + ["KILN_I64"])
    arg(op, "unsigned", ints((3, 4), 2, lo=0, span=200), 1, 1, 0, ["KILN_U8", "KILN_I32"])
    arg(op, "size-1 axis", ints((3, 1), 1), 1, 1, 0, SIGNED)
    arg(op, "kept zero-size dim", np.zeros((0, 3)), 1, 0, 0, SIGNED)
    arg(op, "nan", xn, 1, 0, 0, FLOATS)
    arg(op, "nan cols", xn, 0, 0, 0, FLOATS)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "expected_reduce.h")
with open(out, "w") as f:
    f.write("/* expected_reduce.h -- generated by tests/ops/gen_reduce.py; do not edit.\n"
            " * Inputs and numpy-computed outputs for the reductions. */\n")
    f.write("#ifndef KILN_EXPECTED_REDUCE_H\n#define KILN_EXPECTED_REDUCE_H\n\n")
    f.write("#include <math.h>\n#include <stddef.h>\n#include <stdint.h>\n\n"
            "#include \"kiln.h\"\n\n")
    f.write("typedef struct {\n    int rank;\n    int64_t dims[8];\n    size_t n;\n"
            "    const double *data;\n} rd_tensor;\n\n")
    f.write("typedef struct {\n    const char *op, *label;\n    rd_tensor in, out;\n"
            "    int ndtypes;\n    kiln_dtype dtypes[8];\n"
            "    struct {\n        int n; /* -1: unset */\n        int64_t v[8];\n    } axes;\n"
            "    int keepdims;\n    int axis, select_last_index; /* ArgMax/ArgMin */\n"
            "} rd_case;\n\n")
    f.write("\n".join(w.arrays) + "\n\n")
    f.write("static const rd_case rd_cases[] = {\n" + "\n".join(w.cases) + "\n};\n\n")
    f.write("#endif\n")
