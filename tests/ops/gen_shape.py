#!/usr/bin/python3
"""Writes tests/ops/expected_shape.h: inputs and numpy-computed outputs for
the data-movement ops of ir/ops/shape.c and ir/ops/shape_index.c
(Transpose, Slice, Gather, Pad, Expand, Tile, Concat, Split).

Every expectation comes from numpy (np.transpose, basic slicing, np.take,
np.pad, np.broadcast_to, np.tile, np.concatenate, np.split) or a plain
Python loop, never from kiln. Values are small integers so that every dtype
(f16, bf16, i8, u8, ...) holds them exactly; the C test converts them.

Run with /usr/bin/python3 (needs numpy): /usr/bin/python3 tests/ops/gen_shape.py
"""
import os

import numpy as np

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_INS, MAX_OUTS, MAX_ATTRS = 3, 4, 4


def values(shape, k=0):
    """Distinct small non-negative integers (as float64) of a shape."""
    n = int(np.prod(shape, dtype=np.int64))
    return np.array([float((i * 37 + k * 13) % 101) for i in range(n)]).reshape(shape)


def c_int(v):
    if v == INT64_MIN:
        return "INT64_MIN"
    if v == INT64_MAX:
        return "INT64_MAX"
    return "%d" % v


def c_ints(vs):
    return "{" + ", ".join(c_int(int(v)) for v in vs) + "}"


class Writer:
    def __init__(self):
        self.arrays = []
        self.cases = []
        self.count = 0

    def array(self, a):
        name = "shape_data_%d" % self.count
        self.count += 1
        flat = np.asarray(a, dtype=np.float64).ravel()
        body = ", ".join(repr(float(v)) for v in flat) if flat.size else "0"
        self.arrays.append("static const double %s[] = {%s};" % (name, body))
        return name

    def tensor(self, a):
        a = np.asarray(a)
        dims = list(a.shape)
        return "{%d, {%s}, %d, %s}" % (len(dims), ", ".join(str(d) for d in dims) or "0",
                                       a.size, self.array(a))

    def case(self, op, label, ins, outs, attrs=(), axis=None, num_outputs=0, mode=None,
             value=0.0):
        assert len(ins) <= MAX_INS and len(outs) <= MAX_OUTS and len(attrs) <= MAX_ATTRS
        a = []
        for v in attrs:
            a.append("{-1, {0}}" if v is None else "{%d, %s}" % (len(v), c_ints(v) if v else "{0}"))
        while len(a) < MAX_ATTRS:
            a.append("{-1, {0}}")
        self.cases.append(
            "    {\"%s\", \"%s\", %d, {%s}, %d, {%s}, {%s}, %d, %s, %s, %s, %r},"
            % (op, label, len(ins), ", ".join(self.tensor(t) for t in ins), len(outs),
               ", ".join(self.tensor(t) for t in outs), ", ".join(a),
               0 if axis is None else 1, c_int(axis or 0), c_int(num_outputs),
               '"%s"' % mode if mode else "NULL", float(value)))


w = Writer()

# ---- Transpose ----
for shape, perm in [((2, 3, 4), [1, 2, 0]), ((2, 3, 4), None), ((3,), [0]),
                    ((2, 1, 3), [2, 1, 0]), ((2, 3), [1, 0]), ((), None)]:
    x = values(shape)
    w.case("Transpose", "perm=%s" % perm, [x], [np.transpose(x, perm)], [perm])

# ---- Slice: numpy basic slicing follows the ONNX clamping rules ----
def onnx_slice(x, starts, ends, axes, steps):
    idx = [slice(None)] * x.ndim
    n = len(starts)
    ax = axes if axes is not None else list(range(n))
    st = steps if steps is not None else [1] * n
    for s, e, a, k in zip(starts, ends, ax, st):
        idx[a % x.ndim] = slice(s, e, k)
    return x[tuple(idx)]


slices = [
    ((10,), [2], [8], None, None),
    ((10,), [-3], [INT64_MAX], None, None),
    ((10,), [8], [1], None, [-2]),
    ((10,), [-1], [INT64_MIN], None, [-1]),
    ((10,), [20], [-20], None, [-3]),
    ((10,), [5], [-11], None, [-1]),
    ((10,), [3], [2], None, None),
    ((10,), [-100], [100], None, [3]),
    ((10,), [1], [10], None, [INT64_MAX]),
    ((10,), [9], [INT64_MIN], None, [INT64_MIN]),
    ((10,), [INT64_MIN], [INT64_MAX], [0], [1]),
    ((4, 5, 6), [1, -1], [3, -6], [0, 2], [1, -2]),
    ((4, 5, 6), [0], [6], [-1], [4]),
    ((4, 5, 6), [0, 1, 2], [4, 4, 6], None, [2, 2, 2]),
    ((4, 5, 6), [3, 0], [0, 5], [-3, 1], [-1, 2]),
    ((4, 5, 6), [], [], None, None),
    ((3, 1, 4), [0, -1], [1, 4], [1, 2], None),
]
for shape, s, e, a, k in slices:
    x = values(shape)
    w.case("Slice", "starts=%s ends=%s axes=%s steps=%s" % (s, e, a, k), [x],
           [onnx_slice(x, s, e, a, k)], [s, e, a, k])

# ---- Gather ----
for shape, ind, axis in [((3, 4), [2, -3], 0), ((3, 4), [[0, 3], [-1, 1]], 1),
                         ((2, 3, 4), 1, -2), ((5,), [4, 0, -5, 2, 2], 0),
                         ((2, 3, 2), [[[1]], [[0]]], 2)]:
    x = values(shape)
    idx = np.array(ind, dtype=np.int64)
    w.case("Gather", "axis=%d indices=%s" % (axis, ind), [x, idx.astype(np.float64)],
           [np.take(x, idx, axis=axis)], axis=axis)

# ---- Pad: crop (negative pads) first, then np.pad ----
def onnx_pad(x, pads, mode, value):
    r = x.ndim
    crop = tuple(slice(max(0, -pads[d]), x.shape[d] - max(0, -pads[d + r])) for d in range(r))
    widths = [(max(0, pads[d]), max(0, pads[d + r])) for d in range(r)]
    x = x[crop]
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=value)
    return np.pad(x, widths, mode=mode)


for shape, pads, mode, value in [((2, 3), [1, 2, 0, 1], "constant", 7.0),
                                 ((2, 3), [0, 0, 0, 0], "constant", 0.0),
                                 ((3, 4), [2, 1, 1, 3], "reflect", 0.0),
                                 ((3, 4), [1, 0, 2, 3], "edge", 0.0),
                                 ((3, 4), [-1, 1, 0, -2], "constant", 5.0),
                                 ((4, 5), [-1, 2, 1, -2], "reflect", 0.0),
                                 ((4, 5), [1, -2, -1, 2], "edge", 0.0),
                                 ((5,), [3, 3], "edge", 0.0),
                                 ((5,), [4, 4], "reflect", 0.0),
                                 ((0, 2), [1, 0, 1, 1], "constant", 3.0),
                                 ((2, 1, 2), [0, 1, 0, 0, 2, 1], "edge", 0.0)]:
    x = values(shape)
    w.case("Pad", "pads=%s mode=%s" % (pads, mode), [x], [onnx_pad(x, pads, mode, value)],
           [pads], mode=mode, value=value)

# ---- Expand: the result is broadcast(x.shape, shape) ----
for shape, target in [((3, 1), [2, 1, 4]), ((), [2, 2]), ((2, 3), [3]), ((2, 1), [1, 1]),
                      ((1, 3), [0, 3]), ((4,), []), ((2, 1, 1), [2, 3])]:
    x = values(shape)
    out = np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(target)))
    w.case("Expand", "shape=%s" % target, [x], [out], [target])

# ---- Tile ----
for shape, reps in [((2, 3), [2, 2]), ((3,), [3]), ((2, 1, 2), [1, 3, 2]), ((2, 3), [0, 2]),
                    ((), [])]:
    x = values(shape)
    w.case("Tile", "repeats=%s" % reps, [x], [np.tile(x, reps)], [reps])

# ---- Concat ----
for shapes, axis in [([(2, 3), (2, 1), (2, 2)], 1), ([(1, 3), (2, 3)], -2),
                     ([(2, 0, 2), (2, 3, 2)], 1), ([(4,)], 0), ([(2, 2, 1), (2, 2, 3)], -1)]:
    xs = [values(s, k) for k, s in enumerate(shapes)]
    w.case("Concat", "axis=%d" % axis, xs, [np.concatenate(xs, axis=axis)], axis=axis)

# ---- Split ----
def split_sizes(dim, n):
    """ONNX 18: pieces of ceil(dim / n), the last one smaller."""
    piece = -(-dim // n)
    return [piece] * (n - 1) + [dim - piece * (n - 1)]


for shape, axis, split, num in [((5, 2), 0, [2, 3], 0), ((2, 7), -1, None, 3),
                                ((6,), 0, None, 3), ((4,), 0, None, 3),
                                ((2, 4), 1, [1, 0, 3], 0), ((3, 2), 0, [3], 0)]:
    x = values(shape)
    sizes = split if split is not None else split_sizes(shape[axis], num)
    outs = np.split(x, np.cumsum(sizes)[:-1], axis=axis)
    w.case("Split", "split=%s num_outputs=%d" % (split, num), [x], outs, [split], axis=axis,
           num_outputs=num)

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "expected_shape.h"), "w") as f:
    f.write("/* expected_shape.h -- generated by tests/ops/gen_shape.py; do not edit.\n"
            " * Inputs and numpy-computed outputs for the shape-family tests. */\n")
    f.write("#ifndef KILN_EXPECTED_SHAPE_H\n#define KILN_EXPECTED_SHAPE_H\n\n")
    f.write("#include <stddef.h>\n#include <stdint.h>\n\n")
    f.write("typedef struct {\n    int rank;\n    int64_t dims[8];\n    size_t n;\n"
            "    const double *data;\n} shape_tensor;\n\n")
    f.write("/* An INTS attribute: n == -1 when unset. */\n")
    f.write("typedef struct {\n    int n;\n    int64_t v[8];\n} shape_ints;\n\n")
    f.write("typedef struct {\n    const char *op, *label;\n    int nin;\n"
            "    shape_tensor in[%d];\n    int nout;\n    shape_tensor out[%d];\n"
            "    shape_ints attrs[%d]; /* the op's INTS attributes, in schema order */\n"
            "    int has_axis;\n    int64_t axis;\n    int64_t num_outputs;\n"
            "    const char *mode;\n    double value;\n} shape_case;\n\n"
            % (MAX_INS, MAX_OUTS, MAX_ATTRS))
    f.write("\n".join(w.arrays) + "\n\n")
    f.write("static const shape_case shape_cases[] = {\n" + "\n".join(w.cases) + "\n};\n\n")
    f.write("#endif\n")
print("wrote %d cases" % len(w.cases))
