#!/usr/bin/python3
"""control_models.py OUTDIR: ONNX models with control flow (If, Scan, Loop)
for tests/onnx/test_onnx_control.c, built with onnx.helper; nothing is
committed. Each model is OUTDIR/NAME.onnx; a data set DATA of it is
OUTDIR/DATA.inK.npy (inputs in graph order) and OUTDIR/DATA.outK.npy (the
outputs, computed here with numpy). Models whose import must fail have no
data set. Run with Debian's python3 (python3-onnx, python3-numpy)."""
import os
import sys

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import TensorProto as TP
from onnx import helper as h

OUT = sys.argv[1]
F = TP.FLOAT


def vi(name, elem, shape):
    return h.make_tensor_value_info(name, elem, shape)


def const(name, arr):
    arr = np.asarray(arr)
    return h.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(arr, name))


def save(name, graph, opset=17):
    m = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(OUT, name + ".onnx"))


def data(name, ins, outs):
    for k, a in enumerate(ins):
        np.save(os.path.join(OUT, "%s.in%d.npy" % (name, k)), np.asarray(a))
    for k, a in enumerate(outs):
        np.save(os.path.join(OUT, "%s.out%d.npy" % (name, k)), np.asarray(a))


rng = np.random.default_rng(7)
x23 = rng.standard_normal((2, 3)).astype(np.float32)


def if_const():
    """The condition folds (rank of x == 2): only the then branch is
    imported; the else branch has another shape and would not select."""
    then_g = h.make_graph([h.make_node("Add", ["x", "x"], ["t"])], "then", [], [vi("t", F, [2, 3])])
    else_g = h.make_graph([h.make_node("ReduceSum", ["x"], ["e"], keepdims=0)], "else", [],
                          [vi("e", F, [])])
    nodes = [
        h.make_node("Shape", ["x"], ["s"]),
        h.make_node("Size", ["s"], ["r"]),
        const("two", np.array(2, np.int64)),
        h.make_node("Equal", ["r", "two"], ["c"]),
        h.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g),
    ]
    save("if_const", h.make_graph(nodes, "if_const", [vi("x", F, [2, 3])], [vi("y", F, [2, 3])]))
    data("if_const", [x23], [x23 + x23])


def if_runtime():
    """The condition is an input: both branches, selected with Where."""
    then_g = h.make_graph([const("one", np.array(1, np.float32)), h.make_node("Add", ["x", "one"], ["t"])],
                          "then", [], [vi("t", F, [2, 3])])
    else_g = h.make_graph([const("two", np.array(2, np.float32)), h.make_node("Mul", ["x", "two"], ["e"])],
                          "else", [], [vi("e", F, [2, 3])])
    nodes = [h.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)]
    save("if_runtime", h.make_graph(nodes, "if_runtime", [vi("c", TP.BOOL, []), vi("x", F, [2, 3])],
                                    [vi("y", F, [2, 3])]))
    data("if_runtime_t", [np.array(True), x23], [x23 + 1])
    data("if_runtime_f", [np.array(False), x23], [x23 * 2])
    # The same with a condition of shape [1]: the outputs stay [2, 3].
    save("if_runtime1", h.make_graph(nodes, "if_runtime1", [vi("c", TP.BOOL, [1]), vi("x", F, [2, 3])],
                                     [vi("y", F, [2, 3])]))
    data("if_runtime1_f", [np.array([False]), x23], [x23 * 2])


def if_mismatch():
    """A run-time condition with branches of different shapes: an error."""
    then_g = h.make_graph([h.make_node("Identity", ["x"], ["t"])], "then", [], [vi("t", F, [2, 3])])
    else_g = h.make_graph([h.make_node("Transpose", ["x"], ["e"])], "else", [], [vi("e", F, [3, 2])])
    nodes = [h.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)]
    save("if_mismatch", h.make_graph(nodes, "if_mismatch", [vi("c", TP.BOOL, []), vi("x", F, [2, 3])],
                                     [vi("y", F, [2, 3])]))


def scan_reverse():
    """Scan (opset 16) with one state and two scan inputs, the second read
    along axis 1 in reverse; scan outputs along axis 1 in reverse and along
    axis 0 forward."""
    body = h.make_graph(
        [h.make_node("Add", ["s_in", "a"], ["t"]), h.make_node("Add", ["t", "b"], ["s_out"]),
         h.make_node("Identity", ["s_out"], ["y1"]), h.make_node("Mul", ["a", "b"], ["y2"])],
        "body", [vi("s_in", F, [4]), vi("a", F, [4]), vi("b", F, [4])],
        [vi("s_out", F, [4]), vi("y1", F, [4]), vi("y2", F, [4])])
    nodes = [h.make_node("Scan", ["s0", "x1", "x2"], ["s", "y1", "y2"], body=body, num_scan_inputs=2,
                         scan_input_axes=[0, 1], scan_input_directions=[0, 1],
                         scan_output_axes=[1, 0], scan_output_directions=[1, 0])]
    g = h.make_graph(nodes, "scan_reverse", [vi("s0", F, [4]), vi("x1", F, [3, 4]), vi("x2", F, [4, 3])],
                     [vi("s", F, [4]), vi("y1", F, [4, 3]), vi("y2", F, [3, 4])])
    save("scan_reverse", g, 16)
    s0 = rng.standard_normal(4).astype(np.float32)
    x1 = rng.standard_normal((3, 4)).astype(np.float32)
    x2 = rng.standard_normal((4, 3)).astype(np.float32)
    s, y1, y2 = s0.copy(), [], []
    for t in range(3):
        a, b = x1[t], x2[:, 2 - t]
        s = s + a + b
        y1.append(s.copy())
        y2.append(a * b)
    y1 = np.stack(y1[::-1], axis=1)
    y2 = np.stack(y2, axis=0)
    data("scan_reverse", [s0, x1, x2], [s, y1, y2])


def scan8_batch():
    """Scan at opset 8: a batch of 2 (each scanned on its own), the scan
    input read in reverse (directions), sequence_lens the full length."""
    body = h.make_graph([h.make_node("Add", ["s_in", "a"], ["s_out"]), h.make_node("Mul", ["s_out", "a"], ["y"])],
                        "body", [vi("s_in", F, [3]), vi("a", F, [3])], [vi("s_out", F, [3]), vi("y", F, [3])])
    nodes = [const("lens", np.array([4, 4], np.int64)),
             h.make_node("Scan", ["lens", "s0", "x"], ["s", "ys"], body=body, num_scan_inputs=1, directions=[1])]
    save("scan8_batch", h.make_graph(nodes, "scan8_batch", [vi("s0", F, [2, 3]), vi("x", F, [2, 4, 3])],
                                     [vi("s", F, [2, 3]), vi("ys", F, [2, 4, 3])]), 8)
    s0 = rng.standard_normal((2, 3)).astype(np.float32)
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    s, ys = s0.copy(), np.zeros_like(x)
    for t in range(4):
        a = x[:, 3 - t]
        s = s + a
        ys[:, t] = s * a
    data("scan8_batch", [s0, x], [s, ys])


def loop_body(extra_nodes, cond_out):
    """y_out = y_in + x * float(i); scan output y_out (x: an outer value)."""
    return h.make_graph(
        extra_nodes + [h.make_node("Cast", ["i"], ["fi"], to=F), h.make_node("Mul", ["x", "fi"], ["xi"]),
                       h.make_node("Add", ["y_in", "xi"], ["y_out"]),
                       h.make_node("Identity", ["y_out"], ["scan"])],
        "body", [vi("i", TP.INT64, []), vi("c_in", TP.BOOL, []), vi("y_in", F, [2])],
        [vi(cond_out, TP.BOOL, []), vi("y_out", F, [2]), vi("scan", F, [2])])


def loop_expect(x, y0, n):
    y, scans = y0.copy(), []
    for i in range(n):
        y = y + x * np.float32(i)
        scans.append(y.copy())
    return y, np.stack(scans)


def loop_const():
    """M is a constant (4), the condition constant true."""
    body = loop_body([h.make_node("Identity", ["c_in"], ["c_out"])], "c_out")
    nodes = [const("m", np.array(4, np.int64)), const("c", np.array(True)),
             h.make_node("Loop", ["m", "c", "y0"], ["y", "ys"], body=body)]
    save("loop_const", h.make_graph(nodes, "loop_const", [vi("x", F, [2]), vi("y0", F, [2])],
                                    [vi("y", F, [2]), vi("ys", F, [4, 2])]))
    x, y0 = np.array([1, -2], np.float32), np.array([0.5, 3], np.float32)
    data("loop_const", [x, y0], list(loop_expect(x, y0, 4)))


def loop_cond():
    """No M: the body's condition (i < 2) folds each iteration; 3 run."""
    body = loop_body([const("lim", np.array(2, np.int64)), h.make_node("Less", ["i", "lim"], ["c_out"])],
                     "c_out")
    nodes = [h.make_node("Loop", ["", "", "y0"], ["y", "ys"], body=body)]
    save("loop_cond", h.make_graph(nodes, "loop_cond", [vi("x", F, [2]), vi("y0", F, [2])],
                                   [vi("y", F, [2]), vi("ys", F, [3, 2])]))
    x, y0 = np.array([2, 5], np.float32), np.array([1, 1], np.float32)
    data("loop_cond", [x, y0], list(loop_expect(x, y0, 3)))


def loop_runtime():
    """M is a graph input: a data-dependent trip count, an error."""
    body = loop_body([h.make_node("Identity", ["c_in"], ["c_out"])], "c_out")
    nodes = [h.make_node("Loop", ["m", "", "y0"], ["y", "ys"], body=body)]
    save("loop_runtime", h.make_graph(nodes, "loop_runtime",
                                      [vi("m", TP.INT64, []), vi("x", F, [2]), vi("y0", F, [2])],
                                      [vi("y", F, [2]), vi("ys", F, ["n", 2])]))


def loop_huge():
    """M = 10^9: past the cap on unrolled nodes, an error."""
    body = loop_body([h.make_node("Identity", ["c_in"], ["c_out"])], "c_out")
    nodes = [const("m", np.array(10 ** 9, np.int64)), h.make_node("Loop", ["m", "", "y0"], ["y", "ys"], body=body)]
    save("loop_huge", h.make_graph(nodes, "loop_huge", [vi("x", F, [2]), vi("y0", F, [2])],
                                   [vi("y", F, [2]), vi("ys", F, ["n", 2])]))


def nested():
    """An If (constant condition) whose branch holds a Loop whose body uses
    x (two graphs out) and k (made in the branch)."""
    body = h.make_graph(
        [h.make_node("Mul", ["x", "k"], ["xk"]), h.make_node("Add", ["y_in", "xk"], ["y_out"]),
         h.make_node("Identity", ["c_in"], ["c_out"])],
        "body", [vi("i", TP.INT64, []), vi("c_in", TP.BOOL, []), vi("y_in", F, [2, 3])],
        [vi("c_out", TP.BOOL, []), vi("y_out", F, [2, 3])])
    then_g = h.make_graph(
        [const("k", np.array(3, np.float32)), const("m", np.array(2, np.int64)),
         h.make_node("Loop", ["m", "", "x"], ["t"], body=body)],
        "then", [], [vi("t", F, [2, 3])])
    else_g = h.make_graph([h.make_node("Neg", ["x"], ["e"])], "else", [], [vi("e", F, [2, 3])])
    nodes = [const("c", np.array([True])),
             h.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)]
    save("nested", h.make_graph(nodes, "nested", [vi("x", F, [2, 3])], [vi("y", F, [2, 3])]))
    data("nested", [x23], [x23 + 2 * 3 * x23])


def deep():
    """If nested 40 deep: past the importer's nesting limit, an error."""
    g = h.make_graph([h.make_node("Identity", ["x"], ["o0"])], "g0", [], [vi("o0", F, [2])])
    for d in range(1, 40):
        other = h.make_graph([h.make_node("Identity", ["x"], ["e%d" % d])], "e%d" % d, [],
                             [vi("e%d" % d, F, [2])])
        g = h.make_graph([h.make_node("If", ["c"], ["o%d" % d], then_branch=g, else_branch=other)],
                         "g%d" % d, [], [vi("o%d" % d, F, [2])])
    nodes = [const("c", np.array(True)), h.make_node("If", ["c"], ["y"], then_branch=g, else_branch=g)]
    m = h.make_model(h.make_graph(nodes, "deep", [vi("x", F, [2])], [vi("y", F, [2])]),
                     opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, os.path.join(OUT, "deep.onnx"))


for f in (if_const, if_runtime, if_mismatch, scan_reverse, scan8_batch, loop_const, loop_cond, loop_runtime,
          loop_huge, nested, deep):
    f()
