#!/usr/bin/env bash
# Check what rnncore ships, as a user would receive it:
#   1. `python -m build` makes the sdist, then the wheel from the unpacked
#      sdist (so the sdist alone must build);
#   2. the sdist holds what a build and the tests need, and no build output;
#   3. the wheel holds the package, its compiled modules, stubs and py.typed,
#      and nothing else (no C, Cython sources, objects, tests or build paths);
#   4. the wheel installs into a fresh virtual environment, and the test
#      suite passes there from a copy of tests/ outside the source tree.
# Needs `build` (python -m pip install --group dist). Exits non-zero on any
# problem.  Usage: bash tools/check_dist.sh [python]
set -euo pipefail
cd "$(dirname "$0")/.."
python="${1:-python}"
root="$PWD"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== build: the sdist, then a wheel from the unpacked sdist"
"$python" -m build --outdir "$work/dist" . > "$work/build.log" 2>&1 || {
    tail -n 40 "$work/build.log"; echo "check_dist: build failed" >&2; exit 1; }
shopt -s nullglob
sdists=("$work"/dist/*.tar.gz)
wheels=("$work"/dist/*.whl)
if [ "${#sdists[@]}" -ne 1 ] || [ "${#wheels[@]}" -ne 1 ]; then
    ls -l "$work/dist"; echo "check_dist: expected one sdist and one wheel" >&2; exit 1
fi
sdist="${sdists[0]}"
wheel="${wheels[0]}"
echo "   $(basename "$sdist")"
echo "   $(basename "$wheel")"

echo "== contents of the sdist and the wheel"
tracked="$work/tracked.txt"
if git -C "$root" rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    git -C "$root" ls-files > "$tracked"
else
    : > "$tracked"  # not a clone: check the fixed lists only
fi
"$python" - "$sdist" "$wheel" "$tracked" <<'PY'
import re
import sys
import tarfile
import zipfile
from pathlib import PurePosixPath

sdist, wheel, tracked = sys.argv[1:]
problems = []
version = re.search(r'__version__ = "([^"]+)"',
                    open("rnncore/_version.py").read()).group(1)
COMPILED = ["_cpu", "_optim", "_output", "_plain", "_recurrence", "_softmax",
            "_training"]

# -- sdist: everything under one top folder rnncore-<version>/
with tarfile.open(sdist) as tar:
    names = [n for n in tar.getnames() if not tar.getmember(n).isdir()]
top = f"rnncore-{version}/"
if not sdist.endswith(f"rnncore-{version}.tar.gz"):
    problems.append(f"sdist name does not carry version {version}: {sdist}")
outside = [n for n in names if not n.startswith(top)]
if outside:
    problems.append(f"sdist files outside {top}: {outside[:5]}")
sfiles = {n[len(top):] for n in names if n.startswith(top)}
needed = {"setup.py", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in",
          "rnncore/_simd.h", "rnncore/py.typed", "tests/conftest.py"}
needed |= {f"rnncore/{m}.pyx" for m in COMPILED}
needed |= {f"rnncore/{m}.pyi" for m in COMPILED}
# every tracked file of the package and the tests (sources, .pxd, stubs...)
needed |= {line for line in open(tracked).read().split()
           if line.startswith(("rnncore/", "tests/", "docs/"))}
missing = sorted(needed - sfiles)
if missing:
    problems.append(f"sdist lacks {missing}")
if not any(f.startswith("tests/test_") for f in sfiles):
    problems.append("sdist has no tests")
for f in sorted(sfiles):
    p = PurePosixPath(f)
    if (p.suffix in {".so", ".pyd", ".o", ".obj", ".pyc", ".c", ".whl"}
            or "__pycache__" in p.parts or p.parts[0] in {"build", "dist"}
            or (p.parts[0].endswith(".egg-info") and len(p.parts) == 1)):
        problems.append(f"sdist holds build output: {f}")

# -- wheel: the package and its metadata only
with zipfile.ZipFile(wheel) as whl:
    wfiles = whl.namelist()
if not PurePosixPath(wheel).name.startswith(f"rnncore-{version}-"):
    problems.append(f"wheel name does not carry version {version}: {wheel}")
info = f"rnncore-{version}.dist-info/"
allowed = re.compile(r"rnncore/[A-Za-z_][A-Za-z0-9_]*"
                     r"(\.py|\.pyi|\.[A-Za-z0-9_.-]+\.(so|pyd)|\.(so|pyd))$")
for f in wfiles:
    if f.startswith(info):
        continue
    if f == "rnncore/py.typed" or allowed.fullmatch(f):
        continue
    problems.append(f"wheel holds a stray file: {f}")
for m in COMPILED:
    if not any(re.fullmatch(rf"rnncore/{m}(\.[A-Za-z0-9_.-]+)?\.(so|pyd)", f)
               for f in wfiles):
        problems.append(f"wheel lacks the compiled module rnncore.{m}")
    if f"rnncore/{m}.pyi" not in wfiles:
        problems.append(f"wheel lacks the stub rnncore/{m}.pyi")
py_tracked = {line for line in open(tracked).read().split()
              if re.fullmatch(r"rnncore/[^/]+\.(py|pyi)|rnncore/py\.typed", line)}
for f in sorted(py_tracked - set(wfiles)):
    problems.append(f"wheel lacks {f}")
for f in ("rnncore/py.typed", "rnncore/__init__.py", info + "METADATA",
          info + "entry_points.txt"):
    if f not in wfiles:
        problems.append(f"wheel lacks {f}")
if not any(f.startswith(info) and f.endswith("LICENSE") for f in wfiles):
    problems.append("wheel lacks the LICENSE in its metadata")

for p in problems:
    print("   PROBLEM:", p)
if problems:
    sys.exit(f"check_dist: {len(problems)} problem(s) in the distributions")
print(f"   sdist: {len(sfiles)} files; wheel: {len(wfiles)} files; all expected")
PY

echo "== install the wheel into a fresh virtual environment"
"$python" -m venv "$work/venv"
venv_python="$work/venv/bin/python"
[ -x "$venv_python" ] || venv_python="$work/venv/Scripts/python.exe"
"$venv_python" -m pip install --quiet "${wheel}[test]"

echo "== run the tests from a copy outside the source tree"
mkdir "$work/run"
cp -R tests pyproject.toml "$work/run/"
cd "$work/run"
"$venv_python" - <<'PY'
import pathlib
import sys

import rnncore

where = pathlib.Path(rnncore.__file__).resolve()
print(f"   rnncore {rnncore.__version__} from {where.parent}")
if pathlib.Path.cwd() in where.parents or "site-packages" not in where.parts:
    sys.exit("check_dist: the tests would not import the installed wheel")
PY
"$venv_python" -m rnncore selfcheck > "$work/selfcheck.log" || {
    cat "$work/selfcheck.log"; echo "check_dist: selfcheck failed" >&2; exit 1; }
"$venv_python" -m pytest -q -p no:cacheprovider
echo "== check_dist: passed"
