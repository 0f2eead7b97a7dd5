#!/usr/bin/python3
"""Writes the reference .npy files of tests/frontend/test_npy.c into
tests/frontend/data/, with numpy's own writer (np.save, and
np.lib.format.write_array for the version-2.0 file).

tests/frontend/test_npy.c hard-codes the same literal values as the arrays
below, reads each file and compares; it also rewrites the little-endian
C-order files with kiln and compares the bytes with numpy's.

bf16: numpy has no bfloat16, so the bf16 file holds the raw 2-byte void
type '|V2' (kiln's convention); its bits are the top 16 bits of the float32
values, which are exact in bfloat16.

Run with /usr/bin/python3 (needs numpy): /usr/bin/python3 tests/frontend/gen_npy.py
"""
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")


def bf16_bits(values):
    """The bfloat16 bit patterns of values exactly representable in bf16."""
    f = np.array(values, dtype="<f4")
    bits = f.view("<u4")
    assert np.all(bits & 0xFFFF == 0), "value not exact in bfloat16"
    return (bits >> 16).astype("<u2")


ARRAYS = {
    # Every kiln dtype, little-endian (or byte-order-free), C order.
    "f32": np.array([[1.5, -2.25, 3.0], [0.1, -0.0, np.inf]], dtype="<f4"),
    "f64": np.array([0.1, -1e300, 2.5, 5e-324], dtype="<f8"),
    "f16": np.array([[0.5, -1.25], [65504.0, 2.0**-14]], dtype="<f2"),
    "i8": np.array([-128, -1, 0, 1, 127], dtype="|i1"),
    "u8": np.array([[0, 1], [128, 255]], dtype="|u1"),
    "i32": np.array([-2147483648, 0, 2147483647], dtype="<i4"),
    "i64": np.array([-9223372036854775808, 1, 9223372036854775807], dtype="<i8"),
    "bool": np.array([[True, False, True], [False, False, True]], dtype="|b1"),
    "bf16": bf16_bits([1.0, -2.0, 0.5, 3.140625]).view("|V2"),
    # Big-endian.
    "be_f4": np.array([[1.0, -2.5], [3.25, 1e-3]], dtype=">f4"),
    "be_i8": np.array([1, -2, 0x0102030405060708], dtype=">i8"),
    # Fortran order: element [i, j, k] is 12 * i + 4 * j + k in C order.
    "fortran_i4": np.asfortranarray(np.arange(24, dtype="<i4").reshape(2, 3, 4)),
    "fortran_f8": np.asfortranarray(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype="<f8")),
    # A 0-d scalar, a zero-size array and the largest rank kiln has.
    "scalar": np.array(3.5, dtype="<f8"),
    "empty": np.zeros((0, 3), dtype="<f4"),
    "rank8": np.array([5, -6], dtype="|i1").reshape(1, 1, 1, 1, 1, 1, 1, 2),
}

# Written with format version 2.0 (4-byte header length).
V2 = ("v2", np.array([[1, 2], [3, 4]], dtype="<i8"))


def main():
    os.makedirs(DATA, exist_ok=True)
    for name, a in ARRAYS.items():
        if name.startswith("fortran"):
            assert a.flags.f_contiguous and not a.flags.c_contiguous
        np.save(os.path.join(DATA, name + ".npy"), a)
    name, a = V2
    with open(os.path.join(DATA, name + ".npy"), "wb") as f:
        np.lib.format.write_array(f, a, version=(2, 0))
    # Check what was written reads back as written.
    for name, a in list(ARRAYS.items()) + [V2]:
        b = np.load(os.path.join(DATA, name + ".npy"))
        assert b.dtype == a.dtype and b.shape == a.shape
        assert a.tobytes() == b.tobytes()
    print("wrote %d files to %s" % (len(ARRAYS) + 1, DATA))


if __name__ == "__main__":
    main()
