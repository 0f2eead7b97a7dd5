#!/bin/sh
# Runs every benchmark program in bench/ (built by make bench into $1).
# OpenBLAS runs its AVX-512 kernels, the fair peer on this CPU.
dir=${1:-build/bench}
export OPENBLAS_CORETYPE=SkylakeX
unset OPENBLAS_L2_SIZE
echo "# $(date -u +%Y-%m-%d) on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
for b in "$dir"/bench_*; do
    echo "## $(basename "$b")"
    "$b" || exit 1
done
