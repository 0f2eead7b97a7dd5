#!/usr/bin/python3
"""Writes tests/ops/expected_math.h: inputs and expected outputs for the
reference-result tests of every op in ir/ops/math.c (Floor, Ceil, Round,
Sign, the trigonometric and hyperbolic functions, IsNaN, IsInf, Mod), run by
tests/ops/test_math.c.

Expectations are computed here independently of kiln's C kernels: numpy in
float64 for the float math (inputs are multiples of 1/8 small enough to be
exact in f32, f16 and bf16, so the C test runs one case in every float dtype
with a tolerance for the output rounding; Round is numpy's half-to-even) and
plain Python integers for Sign and Mod on integers (Mod with fmod = 0 is
Python's %, the sign of the divisor; with fmod = 1 it is C's truncated
remainder, math.fmod's sign rule).

Run: /usr/bin/python3 tests/ops/gen_math.py
"""
import math
import os

import numpy as np

RNG = np.random.default_rng(4321)

F32, F64, F16, BF16, I8, U8, I32, I64, BOOL = range(1, 10)
DT_NAME = {F32: "KILN_F32", F64: "KILN_F64", F16: "KILN_F16", BF16: "KILN_BF16", I8: "KILN_I8",
           U8: "KILN_U8", I32: "KILN_I32", I64: "KILN_I64", BOOL: "KILN_BOOL"}
FLOATS = [F32, F64, F16, BF16]
INTS = [I8, U8, I32, I64]
WIDTH = {I8: (8, True), U8: (8, False), I32: (32, True), I64: (64, True)}


def is_float(dt):
    return dt in FLOATS


def irange(dt):
    bits, signed = WIDTH[dt]
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def fdata(shape, lo=-4.0, hi=4.0, nonzero=False):
    x = np.array(RNG.integers(int(lo * 8), int(hi * 8) + 1, size=shape) / 8.0, dtype=np.float64).reshape(shape)
    if nonzero:
        x[x == 0] = 0.5
    return x


def idata(shape, dt, lo=None, hi=None, nonzero=False, extremes=True):
    a, b = irange(dt)
    lo = a if lo is None else max(lo, a)
    hi = b if hi is None else min(hi, b)
    vals = [int(RNG.integers(lo, hi, endpoint=True)) if hi - lo < 2**62 else
            int(RNG.integers(-2**62, 2**62)) * 2 + int(RNG.integers(0, 2)) for _ in range(int(np.prod(shape)))]
    if extremes:
        for k in range(min(2, len(vals))):
            vals[k] = (lo, hi)[k]
    if nonzero:
        vals = [v if v != 0 else 1 for v in vals]
    return np.array(vals, dtype=object).reshape(shape)


CASES = []


def case(name, op, dtypes, ins, y, iattrs=(), out_bool=False):
    CASES.append(dict(name=name, op=op, dtypes=dtypes, ins=ins, y=np.asarray(y), iattrs=list(iattrs),
                      out_bool=out_bool))


def npf(f, *xs):
    with np.errstate(all="ignore"):
        return f(*[np.asarray(x, dtype=np.float64) for x in xs])


def bcast(f, a, b):
    A, B = np.broadcast_arrays(np.asarray(a, dtype=object), np.asarray(b, dtype=object))
    out = np.empty(A.shape, dtype=object)
    for idx in np.ndindex(A.shape):
        out[idx] = f(A[idx], B[idx])
    return out


def umap(f, a):
    A = np.asarray(a, dtype=object)
    out = np.empty(A.shape, dtype=object)
    for idx in np.ndindex(A.shape):
        out[idx] = f(A[idx])
    return out


# ---- unary float ops ----

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 1.0, 20.0, -20.0, 0.5, -0.5])
FUN = {
    "Floor": (np.floor, (-4, 4)), "Ceil": (np.ceil, (-4, 4)), "Round": (np.round, (-4, 4)),
    "Sin": (np.sin, (-4, 4)), "Cos": (np.cos, (-4, 4)), "Tan": (np.tan, (-1.5, 1.5)),
    "Asin": (np.arcsin, (-1, 1)), "Acos": (np.arccos, (-1, 1)), "Atan": (np.arctan, (-4, 4)),
    "Sinh": (np.sinh, (-4, 4)), "Cosh": (np.cosh, (-4, 4)), "Asinh": (np.arcsinh, (-4, 4)),
    "Acosh": (np.arccosh, (1, 4)), "Atanh": (np.arctanh, (-0.875, 0.875)),
}
for op, (f, (lo, hi)) in FUN.items():
    x = fdata((3, 4), lo, hi)
    case("%s_f" % op, op, FLOATS, [x], npf(f, x))
    x = fdata((), lo, hi)
    case("%s_f_scalar" % op, op, [F64, F16], [x], npf(f, x))
    case("%s_f_special" % op, op, [F64, F32], [SPECIAL], npf(f, SPECIAL))
    case("%s_f_empty" % op, op, [F32], [np.zeros((2, 0))], np.zeros((2, 0)))
# halves round to even; values next to a half do not
halves = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, -3.5, 0.375, -0.625, 2.625])
case("Round_f_halves", "Round", FLOATS, [halves], npf(np.round, halves))
near = np.array([0.49999999999999994, 2.5000000000000004, -1.4999999999999998, 4503599627370497.0, 1e300])
case("Round_f_near", "Round", [F64], [near], npf(np.round, near))
case("Floor_f_halves", "Floor", FLOATS, [halves], npf(np.floor, halves))
case("Ceil_f_halves", "Ceil", FLOATS, [halves], npf(np.ceil, halves))
# the domain edges: +-1 for the inverses
edge = np.array([-1.0, 1.0, 1.125, -1.125])
for op in ("Asin", "Acos", "Atanh", "Acosh"):
    case("%s_f_edge" % op, op, FLOATS, [edge], npf(FUN[op][0], edge))

# ---- Sign ----

sx = np.array([[-2.5, -0.0, 0.0, 3.0], [np.nan, np.inf, -np.inf, 0.125]])
case("Sign_f", "Sign", FLOATS, [sx], npf(np.sign, sx))
x = fdata((2, 3, 2))
case("Sign_f_random", "Sign", FLOATS, [x], npf(np.sign, x))
for dt in INTS:
    a = idata((2, 4), dt)
    a[0, 2] = 0
    a[1, 1] = 1 if dt == U8 else -1
    case("Sign_" + DT_NAME[dt][5:].lower(), "Sign", [dt], [a], umap(lambda v: (v > 0) - (v < 0), a))

# ---- IsNaN, IsInf ----

tx = np.array([[np.nan, np.inf, -np.inf, 0.0], [-0.0, 1.5, -2.25, 65504.0]])
case("IsNaN_f", "IsNaN", FLOATS, [tx], np.isnan(tx).astype(np.float64), out_bool=True)
for pos in (1, 0):
    for neg in (1, 0):
        attrs = ([("detect_positive", 0)] if not pos else []) + ([("detect_negative", 0)] if not neg else [])
        want = ((tx == np.inf) & bool(pos)) | ((tx == -np.inf) & bool(neg))
        case("IsInf_f_%d%d" % (pos, neg), "IsInf", FLOATS, [tx], want.astype(np.float64), attrs, out_bool=True)
case("IsInf_f_explicit", "IsInf", [F32], [tx], np.isinf(tx).astype(np.float64),
     [("detect_positive", 1), ("detect_negative", 1)], out_bool=True)


# ---- Mod ----

def py_mod(a, b):
    return a % b  # Python: the sign of the divisor


def c_mod(a, b):
    r = abs(a) % abs(b)
    return -r if a < 0 else r  # C: the sign of the dividend


SHAPES = [((2, 3), (2, 3)), ((2, 1, 3), (4, 1)), ((), (3,)), ((0, 3), (3,)), ((3, 1), ())]
for dt in INTS:
    n = DT_NAME[dt][5:].lower()
    for fm, f in ((0, py_mod), (1, c_mod)):
        attrs = [("fmod", 1)] if fm else []
        for k, (sa, sb) in enumerate(SHAPES):
            a = idata(sa, dt)
            b = idata(sb, dt, -9, 9, nonzero=True, extremes=False) if k % 2 else idata(sb, dt, nonzero=True)
            case("Mod_%s_fmod%d_%d" % (n, fm, k), "Mod", [dt], [a, b], bcast(f, a, b), attrs)
        if dt != U8:
            lo, hi = irange(dt)
            a = np.array([7, -7, 7, -7, lo, lo, hi, 0, -6, 6], dtype=object)
            b = np.array([3, 3, -3, -3, -1, 7, -2, -5, 3, -3], dtype=object)
            case("Mod_%s_fmod%d_signs" % (n, fm), "Mod", [dt], [a, b], bcast(f, a, b), attrs)
for k, (sa, sb) in enumerate(SHAPES):
    a, b = fdata(sa), fdata(sb, nonzero=True)
    case("Mod_f_%d" % k, "Mod", FLOATS, [a, b], npf(np.fmod, a, b), [("fmod", 1)])
ma = np.array([5.5, -5.5, 5.5, -5.5, 0.0, -0.0, np.inf, 3.0, np.nan, 1.0, 2.0])
mb = np.array([2.0, 2.0, -2.0, -2.0, 3.0, 3.0, 2.0, 0.0, 1.0, np.nan, np.inf])
case("Mod_f_special", "Mod", [F64, F32], [ma, mb], npf(np.fmod, ma, mb), [("fmod", 1)])


# ---- output ----

def fmt(v):
    v = float(v)
    if math.isnan(v):
        return "NAN"
    if math.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    if v == 0 and math.copysign(1, v) < 0:
        return "-0.0"
    return "%.17g" % v


def ifmt(v):
    v = int(v)
    if v == -2**63:
        return "INT64_MIN"
    return "%dLL" % v


def dims(shape):
    s = list(shape) + [0] * (4 - len(shape))
    return "{" + ", ".join(str(v) for v in s) + "}"


def main():
    out = ["/* expected_math.h -- GENERATED by tests/ops/gen_math.py (numpy); do not edit.\n"
           " * Inputs and expected outputs of the tests of the ops of ir/ops/math.c. */\n",
           "#ifndef KILN_EXPECTED_MATH_H\n#define KILN_EXPECTED_MATH_H\n\n"
           "#include <math.h>\n#include <stdint.h>\n\n#include \"kiln.h\"\n\n",
           "typedef struct {\n    const char *name, *op;\n"
           "    unsigned dtypes;    /* the dtypes the case runs in: bit 1u << dtype */\n"
           "    int out_bool;       /* the output is bool */\n"
           "    int nin;\n"
           "    int rank[2];\n    int64_t dims[2][4];\n    int out_rank;\n    int64_t out_dims[4];\n"
           "    const double *in[2];   /* inputs of float dtypes */\n"
           "    const int64_t *ini[2]; /* inputs of integer dtypes */\n"
           "    const double *y;       /* float outputs */\n"
           "    const int64_t *yi;     /* integer and bool outputs */\n"
           "    const char *iattr[2];  /* int attributes (NULL: unset) */\n"
           "    int64_t ival[2];\n"
           "} math_case;\n\n"]
    rows = []
    for k, c in enumerate(CASES):
        dt0 = c["dtypes"][0]
        ins_d, ins_i = [], []
        for j, x in enumerate(c["ins"]):
            x = np.asarray(x)
            nm = "mc%d_in%d" % (k, j)
            vals = x.ravel().tolist()
            if is_float(dt0):
                out.append("static const double %s[] = {%s};\n" % (nm, ", ".join(fmt(v) for v in vals) or "0"))
                ins_d.append(nm)
                ins_i.append("NULL")
            else:
                out.append("static const int64_t %s[] = {%s};\n" % (nm, ", ".join(ifmt(v) for v in vals) or "0"))
                ins_d.append("NULL")
                ins_i.append(nm)
        out_dt = BOOL if c["out_bool"] else dt0
        y = np.asarray(c["y"])
        nm = "mc%d_y" % k
        vals = y.ravel().tolist()
        if is_float(out_dt):
            out.append("static const double %s[] = {%s};\n" % (nm, ", ".join(fmt(v) for v in vals) or "0"))
            yd, yi = nm, "NULL"
        else:
            out.append("static const int64_t %s[] = {%s};\n" % (nm, ", ".join(ifmt(v) for v in vals) or "0"))
            yd, yi = "NULL", nm
        mask = " | ".join("(1u << %s)" % DT_NAME[d] for d in c["dtypes"])
        pad = lambda l, n, fill: (l + [fill] * n)[:n]
        shapes = [np.asarray(x).shape for x in c["ins"]]
        rows.append('    {"%s", "%s", %s, %d, %d, {%s}, {%s}, %d, %s, {%s}, {%s}, %s, %s, {%s}, {%s}},\n' % (
            c["name"], c["op"], mask, int(c["out_bool"]), len(c["ins"]),
            ", ".join(str(len(s)) for s in pad(shapes, 2, ())),
            ", ".join(dims(s) for s in pad(shapes, 2, ())),
            y.ndim, dims(y.shape),
            ", ".join(pad(ins_d, 2, "NULL")), ", ".join(pad(ins_i, 2, "NULL")), yd, yi,
            ", ".join(pad(['"%s"' % a[0] for a in c["iattrs"]], 2, "NULL")),
            ", ".join(pad([ifmt(a[1]) for a in c["iattrs"]], 2, "0"))))
    out.append("\nstatic const math_case math_cases[] = {\n" + "".join(rows) + "};\n\n#endif\n")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "expected_math.h")
    with open(path, "w") as f:
        f.write("".join(out))
    print("%d cases" % len(CASES))


if __name__ == "__main__":
    main()
