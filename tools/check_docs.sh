#!/bin/sh
# Fails when docs/ops.md differs from what the op registry generates.
gen=$1
tmp=$(mktemp)
"$gen" > "$tmp" || { echo "FAIL docs: $gen failed"; rm -f "$tmp"; exit 1; }
if diff -u docs/ops.md "$tmp" > /dev/null; then
    echo "PASS docs/ops.md matches the op registry"
    rm -f "$tmp"
else
    echo "FAIL docs/ops.md is out of date: run 'make docs'"
    diff -u docs/ops.md "$tmp" | head -20
    rm -f "$tmp"
    exit 1
fi
