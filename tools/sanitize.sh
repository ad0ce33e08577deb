#!/usr/bin/env bash
# Build rnncore with AddressSanitizer and UndefinedBehaviorSanitizer and run
# the test suite and a fuzz run against that build; fail on any report.
#
#   tools/sanitize.sh [--boundscheck] [--fuzz-calls N] [-- PYTEST_ARGS...]
#
#   --boundscheck   also compile with Cython's bounds, wraparound and
#                   initialisation checks (RNNCORE_BOUNDSCHECK=1)
#   --fuzz-calls N  calls of tools/fuzz.py after the tests (default 2000; 0: none)
#
# The build happens in a scratch copy of this checkout (every file git
# tracks or would track, as it is in the working tree), so the in-place
# build here is left alone.  Needs gcc (its libasan/libubsan) on Linux.
#
# CPython is not built with ASan: the ASan runtime is preloaded
# (LD_PRELOAD) before the interpreter starts, PYTHONMALLOC=malloc makes
# every Python allocation visible to it, and leak detection is off because
# CPython does not free everything at exit.  Huge allocations return NULL
# (so NumPy raises MemoryError, as without ASan) instead of aborting.
set -euo pipefail

boundscheck=0
fuzz_calls=2000
pytest_args=()
while (($#)); do
    case "$1" in
        --boundscheck) boundscheck=1 ;;
        --fuzz-calls) fuzz_calls="$2"; shift ;;
        --) shift; pytest_args=("$@"); break ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done

root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== copying the checkout to $work"
(cd "$root" && git ls-files -z --cached --others --exclude-standard) |
    (cd "$root" && xargs -0 cp --parents -t "$work")

flags="-fsanitize=address,undefined -fno-omit-frame-pointer -g"
echo "== building with $flags (RNNCORE_BOUNDSCHECK=$boundscheck)"
cd "$work"
RNNCORE_BOUNDSCHECK=$boundscheck CFLAGS="$flags" LDFLAGS="$flags" \
    python setup.py -q build_ext --inplace -j 2 > build.log 2>&1 ||
    { cat build.log; exit 1; }

export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
# Reports go to files (one per process): pytest captures the stderr of the
# tests, and a report followed by an abort would be lost with it.
reports="$work/sanitizer-reports"
mkdir "$reports"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=1:log_path=$reports/asan"
export UBSAN_OPTIONS="print_stacktrace=1:log_path=$reports/ubsan"
export PYTHONMALLOC=malloc
export PYTHONPATH="$work"  # tools/fuzz.py too imports this build
python -c "import rnncore; print('testing', rnncore.__file__)"

status=0
echo "== test suite under ASan + UBSan"
python -m pytest -q -p no:cacheprovider ${pytest_args[@]+"${pytest_args[@]}"} \
    2>&1 | tee tests.log || status=1
if ((fuzz_calls > 0)); then
    echo "== tools/fuzz.py --calls $fuzz_calls under ASan + UBSan"
    python tools/fuzz.py --calls "$fuzz_calls" 2>&1 | tee fuzz.log || status=1
fi

# ASan stops the process at its first error, UBSan carries on: either way
# an error in a report file means failure (also from a test's child
# process).  Warnings (a huge allocation refused, from the tests that ask
# for one) are shown but do not fail the run.
if compgen -G "$reports/*" > /dev/null; then
    cat "$reports"/*
    if grep -q -E "ERROR: AddressSanitizer|runtime error:" "$reports"/*; then
        echo "== sanitizer errors found (above)"
        status=1
    fi
fi
if ((status == 0)); then
    echo "== sanitizers: clean"
else
    echo "== sanitizers: FAILED"
fi
exit $status
