#!/usr/bin/python3
"""Writes tests/ops/expected_index.h: inputs and numpy-computed outputs for
the index ops of ir/ops/index.c (TopK, CumSum, CumProd, GatherElements,
ScatterElements, ScatterND, OneHot).

Every expectation comes from numpy (a stable argsort for TopK, np.cumsum and
np.cumprod, np.take_along_axis) or a plain Python loop over the ONNX
definition (the scatters, OneHot), never from kiln. Values are small
integers so that every dtype the test uses (f16, bf16, i32, ...) holds them
exactly, with many ties so that TopK's tie rule (lower index first) is
exercised.

Run with /usr/bin/python3 (needs numpy): /usr/bin/python3 tests/ops/gen_index.py
"""
import os

import numpy as np

rng = np.random.RandomState(7)


def small(shape, lo=-3, hi=4):
    return rng.randint(lo, hi, size=shape).astype(np.float64)


class Writer:
    def __init__(self):
        self.arrays = []
        self.cases = []
        self.count = 0

    def array(self, a):
        name = "index_data_%d" % self.count
        self.count += 1
        flat = np.asarray(a, dtype=np.float64).ravel()
        body = ", ".join(repr(float(v)) for v in flat) if flat.size else "0"
        self.arrays.append("static const double %s[] = {%s};" % (name, body))
        return name

    def tensor(self, a, is_index=False):
        a = np.asarray(a)
        dims = "{" + ", ".join(str(d) for d in a.shape) + "}" if a.ndim else "{0}"
        return "{%d, %s, %s, %d}" % (a.ndim, dims, self.array(a), 1 if is_index else 0)

    def case(self, op, label, ins, outs, ints=None, reduction="none"):
        ints = ints or {}
        names = ["k", "axis", "largest", "exclusive", "reverse", "depth"]
        vals = ", ".join(str(ints.get(n, 0)) for n in names)
        given = ", ".join(str(1 if n in ints else 0) for n in names)
        ins_s = ", ".join(self.tensor(a, idx) for a, idx in ins)
        outs_s = ", ".join(self.tensor(o, idx) for o, idx in outs)
        self.cases.append(
            '    {"%s", "%s", %d, {%s}, %d, {%s}, {%s}, {%s}, "%s"},'
            % (op, label, len(ins), ins_s, len(outs), outs_s, vals, given, reduction)
        )

    def write(self, path):
        with open(path, "w") as f:
            f.write("/* expected_index.h -- written by tests/ops/gen_index.py; do not edit. */\n")
            f.write("#ifndef EXPECTED_INDEX_H\n#define EXPECTED_INDEX_H\n\n#include <stdint.h>\n\n")
            f.write("typedef struct {\n    int rank;\n    int64_t dims[8];\n    const double *data;\n"
                    "    int is_index; /* fed as i64/i32 indices rather than the case's dtype */\n"
                    "} index_tensor;\n\n")
            f.write("/* ints: k, axis, largest, exclusive, reverse, depth (given[i]: set). */\n")
            f.write("typedef struct {\n    const char *op, *label;\n    int nin;\n    index_tensor in[3];\n"
                    "    int nout;\n    index_tensor out[2];\n    int64_t ints[6];\n    int given[6];\n"
                    "    const char *reduction;\n} index_case;\n\n")
            f.write("\n".join(self.arrays) + "\n\n")
            f.write("static const index_case index_cases[] = {\n")
            f.write("\n".join(self.cases) + "\n};\n\n#endif\n")


def topk(w, x, k, axis, largest):
    key = -x if largest else x
    order = np.argsort(key, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    vals = np.take_along_axis(x, idx, axis=axis)
    w.case("TopK", "k=%d axis=%d largest=%d %s" % (k, axis, largest, x.shape), [(x, False)],
           [(vals, False), (idx, True)], {"k": k, "axis": axis, "largest": largest})


def cum(w, op, x, axis, exclusive, reverse):
    f = np.cumsum if op == "CumSum" else np.cumprod
    y = np.flip(x, axis) if reverse else x
    r = f(y, axis=axis)
    if exclusive:
        ident = 0.0 if op == "CumSum" else 1.0
        pad = np.full_like(np.take(r, [0], axis=axis), ident)
        r = np.concatenate([pad, np.take(r, np.arange(r.shape[axis] - 1), axis=axis)], axis=axis)
    if reverse:
        r = np.flip(r, axis)
    w.case(op, "axis=%d excl=%d rev=%d %s" % (axis, exclusive, reverse, x.shape), [(x, False)],
           [(r, False)], {"axis": axis, "exclusive": exclusive, "reverse": reverse})


def scatter_elements(w, data, idx, upd, axis, red):
    out = data.copy()
    for p in np.ndindex(*idx.shape):
        t = list(p)
        v = int(idx[p])
        t[axis] = v + data.shape[axis] if v < 0 else v
        t = tuple(t)
        out[t] = combine(out[t], upd[p], red)
    w.case("ScatterElements", "axis=%d %s" % (axis, red), [(data, False), (idx, True), (upd, False)],
           [(out, False)], {"axis": axis}, red)


def gather_elements(w, data, idx, axis):
    """ONNX GatherElements by its definition (indices may be smaller than
    data off the axis, which np.take_along_axis does not allow)."""
    out = np.zeros(idx.shape)
    for p in np.ndindex(*idx.shape):
        t = list(p)
        v = int(idx[p])
        t[axis] = v + data.shape[axis] if v < 0 else v
        out[p] = data[tuple(t)]
    w.case("GatherElements", "axis=%d %s" % (axis, idx.shape), [(data, False), (idx, True)],
           [(out, False)], {"axis": axis})


def combine(a, b, red):
    return {"none": b, "add": a + b, "mul": a * b, "max": max(a, b), "min": min(a, b)}[red]


def scatter_nd(w, data, idx, upd, red):
    out = data.copy()
    m = idx.shape[-1]
    for p in np.ndindex(*idx.shape[:-1]):
        t = tuple(int(v) for v in idx[p])
        cur = out[t]
        if np.ndim(cur) == 0:
            out[t] = combine(cur, upd[p], red)
        else:
            for q in np.ndindex(*cur.shape):
                out[t + q] = combine(out[t + q], upd[p + q], red)
    w.case("ScatterND", "m=%d %s" % (m, red), [(data, False), (idx, True), (upd, False)],
           [(out, False)], {}, red)


def onehot(w, idx, depth, axis, values):
    r = idx.ndim + 1
    a = axis + r if axis < 0 else axis
    shape = list(idx.shape)
    shape.insert(a, depth)
    out = np.full(shape, values[0])
    for p in np.ndindex(*idx.shape):
        k = int(idx[p])
        if k < 0:
            k += depth
        if 0 <= k < depth:
            q = list(p)
            q.insert(a, k)
            out[tuple(q)] = values[1]
    w.case("OneHot", "depth=%d axis=%d %s" % (depth, axis, idx.shape), [(idx, True), (values, False)],
           [(out, False)], {"depth": depth, "axis": axis})


def main():
    w = Writer()
    x = small((3, 5))
    for k, axis, largest in [(2, 1, 1), (3, 1, 0), (2, 0, 1), (1, -1, 0), (5, 1, 1), (0, 1, 1)]:
        topk(w, x, k, axis, largest)
    topk(w, small((2, 3, 4)), 2, 1, 1)
    topk(w, np.array([1.0, 1.0, 1.0, 1.0]), 3, 0, 1)  # all ties: 0, 1, 2
    for op in ["CumSum", "CumProd"]:
        x3 = small((2, 3, 4), -2, 3)
        for axis in [0, 1, 2, -1]:
            for ex in [0, 1]:
                for rev in [0, 1]:
                    if axis in (0, -1) and (ex, rev) != (0, 0) and op == "CumProd":
                        continue
                    cum(w, op, x3, axis, ex, rev)
    data = small((3, 4))
    gather_elements(w, data, np.array([[0, 2, -1], [1, 0, 3]], dtype=np.float64), 1)
    gather_elements(w, data, np.array([[2, 0, 1, -3], [0, 0, 2, 1]], dtype=np.float64), 0)
    gather_elements(w, small((2, 3, 2)), np.array([[[1], [0]], [[2], [-1]]], dtype=np.float64), 1)
    for red in ["none", "add", "mul", "max", "min"]:
        sidx = np.array([[1, 1, -4], [0, 3, 3]], dtype=np.float64)  # duplicates along a row
        scatter_elements(w, small((2, 4)), sidx, small((2, 3)), 1, red)
    scatter_elements(w, small((3, 3)), np.array([[1, 0, 2], [0, 2, 1]], dtype=np.float64),
                     small((2, 3)), 0, "none")
    for red in ["none", "add", "mul", "max", "min"]:
        scatter_nd(w, small((4, 3)), np.array([[1], [3], [1]], dtype=np.float64), small((3, 3)), red)
    scatter_nd(w, small((2, 3, 2)), np.array([[0, 2], [1, 1]], dtype=np.float64), small((2, 2)), "add")
    scatter_nd(w, small((2, 2)), np.array([[[0, 1]], [[1, 0]]], dtype=np.float64), small((2, 1)), "none")
    oi = np.array([[0, 3, -1], [2, 7, -5]], dtype=np.float64)
    for axis in [-1, 0, 1]:
        onehot(w, oi, 4, axis, np.array([-1.0, 3.0]))
    onehot(w, np.array([1.0, 0.0]), 3, 0, np.array([0.0, 1.0]))
    here = os.path.dirname(os.path.abspath(__file__))
    w.write(os.path.join(here, "expected_index.h"))


if __name__ == "__main__":
    main()
