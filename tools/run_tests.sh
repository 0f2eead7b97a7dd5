#!/bin/sh
# Runs every test binary under a folder (optionally through $RUNNER, e.g.
# valgrind), prints each one's wall time, and ends with one summary line:
# "tests: N passed, N failed".
dir=${1:-build/tests}
pass=0; fail=0; failed=""
for t in $(find "$dir" -type f -perm -u+x | sort); do
    name=${t#$dir/}
    out=$(mktemp)
    t0=$(date +%s)
    if $RUNNER "$t" >"$out" 2>&1; then
        pass=$((pass + 1)); echo "PASS $name ($(( $(date +%s) - t0 )) s)"
    else
        fail=$((fail + 1)); failed="$failed $name"
        echo "FAIL $name ($(( $(date +%s) - t0 )) s)"; cat "$out"
    fi
    grep -E "^\[  (PASSED|FAILED)  \]" "$out" | sed 's/^/     /'
    rm -f "$out"
done
echo "tests: $pass passed, $fail failed"
[ $fail -eq 0 ] || { echo "failed:$failed"; exit 1; }
