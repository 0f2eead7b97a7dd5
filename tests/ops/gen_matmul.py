#!/usr/bin/python3
"""Writes tests/ops/expected_matmul.h: inputs and numpy-computed outputs for
the ops of ir/ops/matmul.c (MatMul, Gemm).

Every expectation comes from numpy (np.matmul, np.swapaxes, the Gemm
formula alpha * A' @ B' + beta * C written with numpy), never from kiln.
Most cases use small integers, exact in every dtype the case lists (the C
test converts them); the "frac" cases use multiples of 1/4 (exact in f16 and
bf16, so only the output rounding differs) and the "rand" cases use values
rounded to float32 (exact in f32 and f64).

Run with /usr/bin/python3 (needs numpy): /usr/bin/python3 tests/ops/gen_matmul.py
"""
import os

import numpy as np

FLOATS = ["KILN_F32", "KILN_F64", "KILN_F16", "KILN_BF16"]
ALL = FLOATS + ["KILN_I32", "KILN_I64"]
F32_F64 = ["KILN_F32", "KILN_F64"]


def ints(shape, k=0):
    """Small integers in [-3, 3] of a shape."""
    n = int(np.prod(shape, dtype=np.int64))
    return np.array([float((i * 5 + k * 3) % 7 - 3) for i in range(n)]).reshape(shape)


def quarters(shape, k=0):
    """Multiples of 1/4 in [-2, 2]."""
    n = int(np.prod(shape, dtype=np.int64))
    return np.array([((i * 7 + k * 5) % 17 - 8) / 4.0 for i in range(n)]).reshape(shape)


RNG = np.random.default_rng(20240611)


def rand(shape):
    """Random values in [-1, 1) rounded to float32."""
    return RNG.uniform(-1, 1, size=shape).astype(np.float32).astype(np.float64)


class Writer:
    def __init__(self):
        self.arrays = []
        self.cases = []
        self.count = 0

    def array(self, a):
        name = "mm_data_%d" % self.count
        self.count += 1
        flat = np.asarray(a, dtype=np.float64).ravel()
        body = ", ".join(repr(float(v)) for v in flat) if flat.size else "0"
        self.arrays.append("static const double %s[] = {%s};" % (name, body))
        return name

    def tensor(self, a):
        a = np.asarray(a, dtype=np.float64)
        dims = list(a.shape)
        return "{%d, {%s}, %d, %s}" % (len(dims), ", ".join(str(d) for d in dims) or "0",
                                       a.size, self.array(a))

    def case(self, op, label, ins, out, dtypes, ta=0, tb=0, alpha=1.0, beta=1.0):
        assert len(ins) <= 3 and len(dtypes) <= 6
        tensors = [self.tensor(t) for t in ins]
        while len(tensors) < 3:
            tensors.append("{0, {0}, 0, NULL}")
        self.cases.append(
            "    {\"%s\", \"%s\", %d, {%s}, %s, %d, {%s}, %d, %d, %r, %r},"
            % (op, label, len(ins), ", ".join(tensors), self.tensor(out), len(dtypes),
               ", ".join(dtypes), ta, tb, float(alpha), float(beta)))


def swap(x, t):
    """The last two dims of x swapped when t is set and x is at least 2-D."""
    return np.swapaxes(x, -1, -2) if t and x.ndim >= 2 else x


w = Writer()

# ---- MatMul ----
def matmul(label, a, b, dtypes=ALL, ta=0, tb=0):
    w.case("MatMul", label, [a, b], np.matmul(swap(a, ta), swap(b, tb)), dtypes, ta=ta, tb=tb)


matmul("2x3 @ 3x4", ints((2, 3)), ints((3, 4), 1))
matmul("transpose_a", ints((3, 2)), ints((3, 4), 1), ta=1)
matmul("transpose_b", ints((2, 3)), ints((4, 3), 1), tb=1)
matmul("transpose both", ints((3, 2)), ints((4, 3), 1), ta=1, tb=1)
matmul("batch broadcast", ints((2, 1, 2, 3)), ints((3, 3, 2), 1))
matmul("batch vs 2-D", ints((2, 2, 3)), ints((3, 2), 1))
matmul("batched transposes", ints((2, 3, 2)), ints((2, 4, 3), 2), ta=1, tb=1)
matmul("1-D @ 2-D", ints((3,)), ints((3, 2), 1))
matmul("2-D @ 1-D", ints((2, 3)), ints((3,), 1))
matmul("1-D @ 1-D", ints((3,)), ints((3,), 1))
matmul("batched @ 1-D", ints((2, 2, 3)), ints((3,), 1))
matmul("1-D @ batched", ints((3,)), ints((2, 3, 4), 1))
matmul("1-D flags ignored", ints((3,)), ints((2, 3), 1), ta=1, tb=1)
matmul("size-1 dims", ints((1, 1)), ints((1, 5), 1))
matmul("K = 0", ints((2, 0)), ints((0, 3)))
matmul("empty batch", ints((0, 2, 3)), ints((3, 2), 1))
matmul("frac", quarters((3, 4)), quarters((4, 5), 1), FLOATS)
matmul("rand", rand((3, 5)), rand((2, 5, 4)), F32_F64)

# ---- Gemm ----
def gemm(label, a, b, c, dtypes, ta=0, tb=0, alpha=1.0, beta=1.0):
    y = alpha * (swap(a, ta) @ swap(b, tb))
    if c is not None:
        y = y + beta * c
    w.case("Gemm", label, [a, b] + ([c] if c is not None else []), y, dtypes, ta=ta, tb=tb,
           alpha=alpha, beta=beta)


gemm("C [2,4]", ints((2, 3)), ints((3, 4), 1), ints((2, 4), 2), ALL)
gemm("no C", ints((2, 3)), ints((3, 4), 1), None, ALL)
gemm("transA, C row", ints((3, 2)), ints((3, 4), 1), ints((4,), 2), ALL, ta=1, alpha=2.0,
     beta=-1.0)
gemm("transB, C column", ints((2, 3)), ints((4, 3), 1), ints((2, 1), 2), ALL, tb=1, alpha=-1.0,
     beta=3.0)
gemm("both, C scalar", ints((3, 2)), ints((4, 3), 1), ints((), 2), ALL, ta=1, tb=1)
gemm("C [1,1]", ints((2, 3)), ints((3, 4), 1), ints((1, 1), 2), ALL, beta=2.0)
gemm("fractional alpha beta", quarters((2, 3)), quarters((3, 4), 1), quarters((2, 4), 2), FLOATS,
     alpha=0.5, beta=0.25)
gemm("beta 0", ints((2, 3)), ints((3, 4), 1), ints((2, 4), 2), ALL, beta=0.0)
gemm("K = 0", ints((2, 0)), ints((0, 3)), ints((2, 3), 2), ALL, alpha=2.0, beta=2.0)
gemm("rand", rand((4, 5)), rand((4, 5)), rand((4,)), F32_F64, tb=1, alpha=1.5, beta=-0.5)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "expected_matmul.h")
with open(out, "w") as f:
    f.write("/* expected_matmul.h -- generated by tests/ops/gen_matmul.py; do not edit.\n"
            " * Inputs and numpy-computed outputs for MatMul and Gemm. */\n")
    f.write("#ifndef KILN_EXPECTED_MATMUL_H\n#define KILN_EXPECTED_MATMUL_H\n\n")
    f.write("#include <stddef.h>\n#include <stdint.h>\n\n#include \"kiln.h\"\n\n")
    f.write("typedef struct {\n    int rank;\n    int64_t dims[8];\n    size_t n;\n"
            "    const double *data;\n} mm_tensor;\n\n")
    f.write("typedef struct {\n    const char *op, *label;\n    int nin;\n    mm_tensor in[3];\n"
            "    mm_tensor out;\n    int ndtypes;\n    kiln_dtype dtypes[6];\n"
            "    int transpose_a, transpose_b; /* transA/transB for Gemm */\n"
            "    double alpha, beta;           /* Gemm only */\n} mm_case;\n\n")
    f.write("\n".join(w.arrays) + "\n\n")
    f.write("static const mm_case mm_cases[] = {\n" + "\n".join(w.cases) + "\n};\n\n")
    f.write("#endif\n")
