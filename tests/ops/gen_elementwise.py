#!/usr/bin/python3
"""Writes tests/ops/expected_elementwise.h: inputs and expected outputs for
the reference-result tests of every op in ir/ops/elementwise.c and of
Identity and Cast (ir/ops/core.c), run by tests/ops/test_elementwise.c.

Expectations are computed here independently of kiln's C kernels: numpy
for float math (in float64; inputs are multiples of 1/8 small enough to be
exact in f32, f16 and bf16, so the C test can run one case in every float
dtype with a tolerance for the output rounding), Python's math module for
erf/erfc, and plain Python integer loops for the integer semantics kiln
documents: arithmetic wraps to the dtype's width, integer division
truncates toward zero, integer powers with a negative exponent are 0 unless
|a| == 1, Clip bounds round inward, float-to-int casts truncate toward
zero, saturate to the int64 range (NaN gives 0) and then wrap to the width,
and f16/bf16 casts round to nearest even (through f32, as kiln stores them).

Run: /usr/bin/python3 tests/ops/gen_elementwise.py
"""
import math
import os
import struct

import numpy as np

RNG = np.random.default_rng(1234)

F32, F64, F16, BF16, I8, U8, I32, I64, BOOL = range(1, 10)
DT_NAME = {F32: "KILN_F32", F64: "KILN_F64", F16: "KILN_F16", BF16: "KILN_BF16", I8: "KILN_I8",
           U8: "KILN_U8", I32: "KILN_I32", I64: "KILN_I64", BOOL: "KILN_BOOL"}
FLOATS = [F32, F64, F16, BF16]
INTS = [I8, U8, I32, I64]
WIDTH = {I8: (8, True), U8: (8, False), I32: (32, True), I64: (64, True)}


def is_float(dt):
    return dt in FLOATS


def wrap(v, dt):
    """Python int -> the value an integer dtype stores (two's complement)."""
    if dt == BOOL:
        return int(v != 0)
    bits, signed = WIDTH[dt]
    v &= (1 << bits) - 1
    if signed and v >= 1 << (bits - 1):
        v -= 1 << bits
    return v


def irange(dt):
    bits, signed = WIDTH[dt]
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def fdata(shape, lo=-4.0, hi=4.0, nonzero=False):
    x = np.array(RNG.integers(int(lo * 8), int(hi * 8) + 1, size=shape) / 8.0, dtype=np.float64).reshape(shape)
    if nonzero:
        x[x == 0] = 0.5
    return x


def idata(shape, dt, lo=None, hi=None, nonzero=False):
    a, b = irange(dt)
    lo = a if lo is None else max(lo, a)
    hi = b if hi is None else min(hi, b)
    vals = [int(RNG.integers(lo, hi, endpoint=True)) if hi - lo < 2**62 else
            int(RNG.integers(-2**62, 2**62)) * 2 + int(RNG.integers(0, 2)) for _ in range(int(np.prod(shape)))]
    # a few extremes so wrapping shows
    for k in range(min(2, len(vals))):
        vals[k] = (lo, hi)[k]
    if nonzero:
        vals = [v if v != 0 else 1 for v in vals]
    return np.array(vals, dtype=object).reshape(shape)


def f32_to_bf16(v):
    """float (already f32) -> bf16 value, round to nearest even."""
    if math.isnan(v):
        return v
    u = struct.unpack("<I", struct.pack("<f", v))[0]
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFFFFFF
    return struct.unpack("<f", struct.pack("<I", u & 0xFFFF0000))[0]


def to_float(v, dt):
    """A double stored in a float dtype as kiln does (f16/bf16 through f32)."""
    with np.errstate(all="ignore"):
        if dt == F64:
            return float(v)
        f = float(np.float32(v))
        if dt == F32:
            return f
        if dt == F16:
            return float(np.float16(np.float32(f)))
        return f32_to_bf16(f)


CASES = []


def case(name, op, dtypes, ins, y, attrs=(), in_dt=None, out_bool=False, cast_to=0, exact=False):
    """ins: list of numpy arrays (float64 or object ints); y: numpy array."""
    CASES.append(dict(name=name, op=op, dtypes=dtypes, ins=ins, y=np.asarray(y), attrs=list(attrs),
                      in_dt=in_dt or [0] * len(ins), out_bool=out_bool, cast_to=cast_to, exact=exact))


def npf(f, *xs):
    with np.errstate(all="ignore"):
        return f(*[np.asarray(x, dtype=np.float64) for x in xs])


def bcast(f, a, b):
    """Elementwise Python f over numpy-broadcast object arrays."""
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


# ---- binary arithmetic ----

SHAPES = [((2, 3), (2, 3)), ((2, 1, 3), (4, 1)), ((), (3,)), ((0, 3), (3,)), ((3, 1), ())]
FBIN = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power,
    "Maximum": np.maximum, "Minimum": np.minimum,
}
for op, f in FBIN.items():
    for k, (sa, sb) in enumerate(SHAPES):
        if op == "Pow":
            a, b = fdata(sa, 0.25, 3), np.array(RNG.integers(-8, 9, size=sb) / 4.0, dtype=np.float64).reshape(sb)
        else:
            a, b = fdata(sa), fdata(sb, nonzero=(op == "Div"))
        case("%s_f_%d" % (op, k), op, FLOATS, [a, b], npf(f, a, b))
SPECIAL_A = np.array([1, -1, 0, np.nan, np.inf, 2, -np.inf, -0.0, 3])
SPECIAL_B = np.array([0, 0, 0, 1, np.inf, np.nan, 2, 1, -np.inf])
for op, f in FBIN.items():
    case("%s_f_special" % op, op, FLOATS, [SPECIAL_A, SPECIAL_B], npf(f, SPECIAL_A, SPECIAL_B))
# Pow's corner cases: 0 ** -1, (-8) ** (1/3), x ** 0, negative base to integer powers
pa, pb = np.array([0, -8, np.inf, np.nan, -2, -2, 1]), np.array([-1, 1 / 3, 0, 0, 3, -2, np.nan])
case("Pow_f_corner", "Pow", [F64, F32], [pa, pb], npf(np.power, pa, pb))


def idiv(a, b):
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def ipow(a, b, dt):
    if b < 0:
        return 1 if a == 1 else ((-1 if b % 2 else 1) if a == -1 else 0)
    return pow(a, b, 1 << 64)


IBIN = {
    "Add": lambda a, b, dt: a + b, "Sub": lambda a, b, dt: a - b, "Mul": lambda a, b, dt: a * b,
    "Div": lambda a, b, dt: idiv(a, b), "Pow": ipow,
    "Maximum": lambda a, b, dt: max(a, b), "Minimum": lambda a, b, dt: min(a, b),
}
for op, f in IBIN.items():
    for dt in INTS:
        for k, (sa, sb) in enumerate(SHAPES[:3]):
            if op == "Pow":
                a = idata(sa, dt, -5, 5)
                b = idata(sb, dt, -2 if dt != U8 else 0, 9)
                a = umap(lambda v: v if v != 0 else 3, a)
            else:
                a, b = idata(sa, dt), idata(sb, dt, nonzero=(op == "Div"))
            y = bcast(lambda x, z: wrap(f(x, z, dt), dt), a, b)
            case("%s_%s_%d" % (op, DT_NAME[dt][5:].lower(), k), op, [dt], [a, b], y)
    if op == "Div":
        for dt in (I8, I32, I64):
            lo = irange(dt)[0]
            a = np.array([lo, lo, 7, -7, 7, -7], dtype=object)
            b = np.array([-1, 1, 2, 2, -2, -2], dtype=object)
            case("Div_%s_edge" % DT_NAME[dt][5:].lower(), op, [dt], [a, b],
                 bcast(lambda x, z: wrap(idiv(x, z), dt), a, b))

# ---- unary ----

SQ2 = math.sqrt(2.0)
FUN = {
    "Neg": (lambda x: -x, None), "Abs": (np.abs, None), "Exp": (np.exp, None),
    "Log": (np.log, "pos"), "Sqrt": (np.sqrt, "pos"), "Rsqrt": (lambda x: 1 / np.sqrt(x), "pos"),
    "Reciprocal": (lambda x: 1 / x, "nonzero"), "Tanh": (np.tanh, None),
    "Sigmoid": (lambda x: 1 / (1 + np.exp(-x)), None), "Relu": (lambda x: np.maximum(x, 0), None),
    "Erf": (np.vectorize(math.erf, otypes=[float]), None),
    "Softplus": (lambda x: np.logaddexp(0, x), None),
}
for op, (f, dom) in FUN.items():
    x = fdata((3, 4), 0.125, 4) if dom == "pos" else fdata((3, 4), nonzero=(dom == "nonzero"))
    case("%s_f" % op, op, FLOATS, [x], npf(f, x))
    x = fdata((), 0.5, 2)
    case("%s_f_scalar" % op, op, [F64, F16], [x], npf(f, x))
SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 20.0, -20.0])
for op, (f, dom) in FUN.items():
    case("%s_f_special" % op, op, [F64, F32], [SPECIAL], npf(f, SPECIAL))
case("Exp_f_empty", "Exp", FLOATS, [np.zeros((2, 0))], np.zeros((2, 0)))

x = fdata((2, 5))
for alpha, attrs in ((0.01, []), (0.25, [("alpha", 0.25)])):
    case("LeakyRelu_f_%g" % alpha, "LeakyRelu", FLOATS, [x], npf(lambda v: np.where(v >= 0, v, alpha * v), x), attrs)
    case("LeakyRelu_f_special_%g" % alpha, "LeakyRelu", [F64], [SPECIAL],
         npf(lambda v: np.where(v >= 0, v, alpha * v), SPECIAL), attrs)
for alpha, attrs in ((1.0, []), (0.5, [("alpha", 0.5)])):
    case("Elu_f_%g" % alpha, "Elu", FLOATS, [x], npf(lambda v: np.where(v >= 0, v, alpha * np.expm1(v)), x), attrs)
    case("Elu_f_special_%g" % alpha, "Elu", [F64], [SPECIAL],
         npf(lambda v: np.where(v >= 0, v, alpha * np.expm1(v)), SPECIAL), attrs)
gx = np.concatenate([x.ravel(), [-10.0, 10.0, np.nan]])
gelu = np.array([0.5 * v * math.erfc(-v / SQ2) if not math.isnan(v) else v for v in gx])
case("Gelu_f_none", "Gelu", [F64, F32], [gx], gelu)
case("Gelu_f_none_attr", "Gelu", FLOATS, [x], npf(lambda v: 0.5 * v * (1 + np.vectorize(math.erf)(v / SQ2)), x),
     [("approximate", "none")])
case("Gelu_f_tanh", "Gelu", FLOATS, [x],
     npf(lambda v: 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3))), x),
     [("approximate", "tanh")])
cx = np.concatenate([x.ravel(), [np.nan, np.inf, -np.inf]])
for k, (lo, hi) in enumerate(((-np.inf, np.inf), (-1.0, 1.5), (0.5, np.inf), (-np.inf, -0.5), (1.0, 1.0))):
    attrs = ([("min", lo)] if lo != -np.inf else []) + ([("max", hi)] if hi != np.inf else [])
    case("Clip_f_%d" % k, "Clip", FLOATS, [cx], npf(lambda v: np.clip(v, lo, hi), cx), attrs)

# integer unary ops
for dt in INTS:
    n = DT_NAME[dt][5:].lower()
    a = idata((2, 4), dt)
    a[0, 2], a[0, 3] = 0, (1 if dt == U8 else -1)
    if dt != U8:
        case("Neg_" + n, "Neg", [dt], [a], umap(lambda v: wrap(-v, dt), a))
        case("Relu_" + n, "Relu", [dt], [a], umap(lambda v: max(v, 0), a))
    case("Abs_" + n, "Abs", [dt], [a], umap(lambda v: wrap(abs(v), dt), a))
    for k, (lo, hi) in enumerate(((-3.5, 100.2), (-np.inf, 7.0), (2.0, np.inf), (-1e30, 1e30))):
        attrs = ([("min", lo)] if lo != -np.inf else []) + ([("max", hi)] if hi != np.inf else [])
        loi = -2**63 if lo < -9.2e18 else math.ceil(lo)
        hii = 2**63 - 1 if hi > 9.2e18 else math.floor(hi)
        case("Clip_%s_%d" % (n, k), "Clip", [dt], [a], umap(lambda v: wrap(min(max(v, loi), hii), dt), a), attrs)

# ---- comparisons and logic ----

CMP = {"Equal": np.equal, "Less": np.less, "Greater": np.greater, "LessOrEqual": np.less_equal,
       "GreaterOrEqual": np.greater_equal}
ca = np.array([[1, 2, 3], [np.nan, -1, 0.5]])
cb = np.array([2, 2, np.nan])
for op, f in CMP.items():
    case("%s_f" % op, op, FLOATS, [ca, cb], f(ca, cb).astype(np.float64), out_bool=True)
    case("%s_f_zero" % op, op, [F64], [np.array([0.0, -0.0, np.inf]), np.array([-0.0, 0.0, np.inf])],
         f(np.array([0.0, -0.0, np.inf]), np.array([-0.0, 0.0, np.inf])).astype(np.float64), out_bool=True)
    for dt in INTS:
        a, b = idata((2, 3), dt), idata((3,), dt)
        b[0] = a[1, 0]
        case("%s_%s" % (op, DT_NAME[dt][5:].lower()), op, [dt], [a, b],
             bcast(lambda x, z: int(f(x, z)), a, b), out_bool=True)
ba = np.array([[0, 1], [1, 0], [1, 1]], dtype=object)
bb = np.array([1, 0], dtype=object)
case("Equal_bool", "Equal", [BOOL], [ba, bb], bcast(lambda x, z: int(x == z), ba, bb), out_bool=True)
for op, f in {"And": lambda x, z: x and z, "Or": lambda x, z: x or z, "Xor": lambda x, z: x != z}.items():
    case(op, op, [BOOL], [ba, bb], bcast(lambda x, z: int(bool(f(x, z))), ba, bb), out_bool=True)
    case(op + "_scalar", op, [BOOL], [np.array(1, dtype=object), ba],
         bcast(lambda x, z: int(bool(f(x, z))), np.array(1, dtype=object), ba), out_bool=True)
case("Not", "Not", [BOOL], [ba], umap(lambda v: int(not v), ba), out_bool=True)

# ---- Where ----

cond = np.array([[1], [0]], dtype=object)
wa, wb = fdata((1, 3)), fdata(())
case("Where_f", "Where", FLOATS, [cond, wa, wb], np.where(cond.astype(bool), wa, wb), in_dt=[BOOL, 0, 0])
cond3 = np.array([[1, 0, 1], [0, 0, 1]], dtype=object)
case("Where_f_same", "Where", [F64], [cond3, fdata((2, 3)), fdata((2, 3))], None, in_dt=[BOOL, 0, 0])
CASES[-1]["y"] = np.where(cond3.astype(bool), CASES[-1]["ins"][1], CASES[-1]["ins"][2])
for dt in INTS + [BOOL]:
    if dt == BOOL:
        a, b = np.array([[1, 1, 0]], dtype=object), np.array(0, dtype=object)
    else:
        a, b = idata((1, 3), dt), idata((), dt)
    y = np.empty((2, 3), dtype=object)
    for i in range(2):
        for j in range(3):
            y[i, j] = a[0, j] if cond[i, 0] else b
    case("Where_" + DT_NAME[dt][5:].lower(), "Where", [dt], [cond, a, b], y, in_dt=[BOOL, 0, 0])

# ---- Identity and Cast ----

FSRC = [0.0, -0.0, 1.5, -1.5, 2.75, -2.75, 100.5, 300.0, -200.0, np.nan, np.inf, -np.inf]
FSRC_WIDE = [3.0e9, -3.0e9, 4294967296.0 + 5, 1e30, -1e30, 0.1, 1 / 3, 65519.0, 65520.0, 1e-8]
ISRC = {
    I8: [-128, -1, 0, 1, 127, 100], U8: [0, 1, 127, 128, 255, 200],
    I32: [-2**31, -1, 0, 1, 2**31 - 1, 70000], I64: [-2**63, -1, 0, 1, 2**63 - 1, 2**53 + 1],
    BOOL: [0, 1, 1, 0, 1, 0],
}


def cast_value(v, src, to):
    if is_float(to):
        return to_float(v, to)
    if is_float(src):
        if math.isnan(v):
            i = 0 if to != BOOL else 1
            return i
        if to == BOOL:
            return int(v != 0)
        i = -2**63 if v <= -9.2233720368547758e18 else 2**63 - 1 if v >= 9.2233720368547758e18 else int(v)
        return wrap(i, to)
    return wrap(v, to)


for src in FLOATS + INTS + [BOOL]:
    n = DT_NAME[src][5:].lower()
    if is_float(src):
        x = np.array(FSRC).reshape(3, 4)
        case("Identity_" + n, "Identity", [src], [x], x)
    else:
        x = np.array(ISRC[src], dtype=object).reshape(2, 3)
        case("Identity_" + n, "Identity", [src], [x], x)
    for to in FLOATS + INTS + [BOOL]:
        y = umap(lambda v: cast_value(v, src, to), x)
        case("Cast_%s_%s" % (n, DT_NAME[to][5:].lower()), "Cast", [src], [x], y, cast_to=to, exact=True)
    if src in (F32, F64):
        xw = np.array([to_float(v, src) for v in FSRC_WIDE])
        for to in FLOATS + INTS + [BOOL]:
            y = umap(lambda v: cast_value(v, src, to), xw)
            case("Cast_%s_%s_wide" % (n, DT_NAME[to][5:].lower()), "Cast", [src], [xw], y, cast_to=to, exact=True)


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
    out = ["/* expected_elementwise.h -- GENERATED by tests/ops/gen_elementwise.py (numpy); do not edit.\n"
           " * Inputs and expected outputs of the elementwise, Identity and Cast tests. */\n",
           "#ifndef KILN_EXPECTED_ELEMENTWISE_H\n#define KILN_EXPECTED_ELEMENTWISE_H\n\n"
           "#include <math.h>\n#include <stdint.h>\n\n#include \"kiln.h\"\n\n",
           "typedef struct {\n    const char *name, *op;\n"
           "    unsigned dtypes;    /* the dtypes the case runs in: bit 1u << dtype */\n"
           "    int out_bool;       /* the output is bool */\n"
           "    int cast_to;        /* Cast: the 'to' dtype, else 0 */\n"
           "    int exact;          /* compare exactly, not within a float tolerance */\n"
           "    int nin;\n"
           "    int in_dt[3];       /* 0: the case's dtype, else this fixed dtype */\n"
           "    int rank[3];\n    int64_t dims[3][4];\n    int out_rank;\n    int64_t out_dims[4];\n"
           "    const double *in[3];   /* inputs of float dtypes */\n"
           "    const int64_t *ini[3]; /* inputs of integer and bool dtypes */\n"
           "    const double *y;       /* float outputs */\n"
           "    const int64_t *yi;     /* integer and bool outputs */\n"
           "    const char *fattr[2];  /* float attributes (NULL: unset) */\n"
           "    double fval[2];\n"
           "    const char *sattr, *sval; /* a string attribute */\n"
           "} ew_case;\n\n"]
    rows = []
    for k, c in enumerate(CASES):
        dt0 = c["dtypes"][0]
        ins_d, ins_i = [], []
        for j, x in enumerate(c["ins"]):
            dt = c["in_dt"][j] or dt0
            x = np.asarray(x)
            nm = "ew%d_in%d" % (k, j)
            vals = x.ravel().tolist()
            if is_float(dt):
                out.append("static const double %s[] = {%s};\n" % (nm, ", ".join(fmt(v) for v in vals) or "0"))
                ins_d.append(nm)
                ins_i.append("NULL")
            else:
                out.append("static const int64_t %s[] = {%s};\n" % (nm, ", ".join(ifmt(v) for v in vals) or "0"))
                ins_d.append("NULL")
                ins_i.append(nm)
        out_dt = BOOL if c["out_bool"] else (c["cast_to"] or dt0)
        y = np.asarray(c["y"])
        nm = "ew%d_y" % k
        vals = y.ravel().tolist()
        if is_float(out_dt):
            out.append("static const double %s[] = {%s};\n" % (nm, ", ".join(fmt(v) for v in vals) or "0"))
            yd, yi = nm, "NULL"
        else:
            out.append("static const int64_t %s[] = {%s};\n" % (nm, ", ".join(ifmt(v) for v in vals) or "0"))
            yd, yi = "NULL", nm
        mask = " | ".join("(1u << %s)" % DT_NAME[d] for d in c["dtypes"])
        fa = [a for a in c["attrs"] if not isinstance(a[1], str)]
        sa = [a for a in c["attrs"] if isinstance(a[1], str)]
        pad = lambda l, n, fill: (l + [fill] * n)[:n]
        shapes = [np.asarray(x).shape for x in c["ins"]]
        rows.append('    {"%s", "%s", %s, %d, %d, %d, %d, {%s}, {%s}, {%s}, %d, %s, {%s}, {%s}, %s, %s, {%s}, {%s}, %s, %s},\n' % (
            c["name"], c["op"], mask, int(c["out_bool"]), c["cast_to"], int(c["exact"]), len(c["ins"]),
            ", ".join(DT_NAME[d] if d else "0" for d in pad(c["in_dt"], 3, 0)),
            ", ".join(str(len(s)) for s in pad(shapes, 3, ())),
            ", ".join(dims(s) for s in pad(shapes, 3, ())),
            y.ndim, dims(y.shape),
            ", ".join(pad(ins_d, 3, "NULL")), ", ".join(pad(ins_i, 3, "NULL")), yd, yi,
            ", ".join(pad(['"%s"' % a[0] for a in fa], 2, "NULL")),
            ", ".join(pad([fmt(a[1]) for a in fa], 2, "0")),
            '"%s"' % sa[0][0] if sa else "NULL", '"%s"' % sa[0][1] if sa else "NULL"))
    out.append("\nstatic const ew_case ew_cases[] = {\n" + "".join(rows) + "};\n\n#endif\n")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "expected_elementwise.h")
    with open(path, "w") as f:
        f.write("".join(out))
    print("%d cases" % len(CASES))


if __name__ == "__main__":
    main()
