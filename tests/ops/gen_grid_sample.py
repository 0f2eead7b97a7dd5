#!/usr/bin/python3
"""Writes tests/ops/expected_grid_sample.h: inputs and PyTorch-computed
outputs (torch.nn.functional.grid_sample) for kiln's GridSample op.

PyTorch is the independent oracle. Its bicubic mode pads each tap rather
than the sample coordinate, which differs from ONNX (and kiln) only for
coordinates outside the input under border/reflection padding, so the
cubic cases keep grid values inside [-1, 1]. Other cases draw coordinates
from [-1.6, 1.6] to exercise every padding mode.

Run with /usr/bin/python3 (needs torch): /usr/bin/python3 tests/ops/gen_grid_sample.py
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.RandomState(11)
arrays, cases = [], []


def array(a):
    name = "gs_data_%d" % len(arrays)
    body = ", ".join(repr(float(v)) for v in np.asarray(a, dtype=np.float64).ravel())
    arrays.append("static const double %s[] = {%s};" % (name, body))
    return name


def tensor(a):
    dims = "{" + ", ".join(str(d) for d in a.shape) + "}"
    return "{%d, %s, %s}" % (a.ndim, dims, array(a))


def case(xshape, gshape, mode, pad, align, lim):
    x = rng.uniform(-2, 2, size=xshape)
    grid = rng.uniform(-lim, lim, size=gshape)
    tmode = {"linear": "bilinear", "cubic": "bicubic", "nearest": "nearest"}[mode]
    y = F.grid_sample(torch.from_numpy(x), torch.from_numpy(grid), mode=tmode, padding_mode=pad,
                      align_corners=bool(align)).numpy()
    cases.append('    {"%s", "%s", %d, %s, %s, %s},' % (mode, pad, align, tensor(x), tensor(grid),
                                                       tensor(y)))


for mode in ("linear", "nearest", "cubic"):
    for pad in ("zeros", "border", "reflection"):
        for align in (0, 1):
            lim = 1.0 if mode == "cubic" and pad != "zeros" else 1.6
            case((2, 3, 4, 5), (2, 3, 4, 2), mode, pad, align, lim)
for mode in ("linear", "nearest"):
    for pad in ("zeros", "border", "reflection"):
        case((1, 2, 3, 4, 3), (1, 2, 3, 2, 3), mode, pad, pad == "border", 1.6)
case((1, 1, 1, 1), (1, 2, 2, 2), "linear", "reflection", 1, 1.6)  # 1x1 input, align_corners

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "expected_grid_sample.h")
with open(out, "w") as f:
    f.write("/* expected_grid_sample.h -- written by tests/ops/gen_grid_sample.py; do not edit. */\n")
    f.write("#ifndef EXPECTED_GRID_SAMPLE_H\n#define EXPECTED_GRID_SAMPLE_H\n\n#include <stdint.h>\n\n")
    f.write("typedef struct {\n    int rank;\n    int64_t dims[8];\n    const double *data;\n} gs_tensor;\n\n")
    f.write("typedef struct {\n    const char *mode, *padding_mode;\n    int align_corners;\n"
            "    gs_tensor x, grid, y;\n} gs_case;\n\n")
    f.write("\n".join(arrays) + "\n\n")
    f.write("static const gs_case gs_cases[] = {\n" + "\n".join(cases) + "\n};\n\n#endif\n")
