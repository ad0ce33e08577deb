"""Build the compiled kernels of rnncore.

Project metadata lives in pyproject.toml; this file only declares the Cython
extension modules and how they are compiled.

Environment variables:
    RNNCORE_BOUNDSCHECK=1   compile with Cython's bounds and wraparound checks
                            (for debugging; slow).
"""
import os
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError

MODULES = ["_cpu", "_optim", "_parallel", "_plain", "_recurrence", "_softmax",
           "_output", "_training"]

DEBUG_CHECKS = os.environ.get("RNNCORE_BOUNDSCHECK", "0") == "1"

COMPILER_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG_CHECKS,
    "wraparound": DEBUG_CHECKS,
    "initializedcheck": DEBUG_CHECKS,
    "cdivision": True,
    "embedsignature": True,
}

# Portable flags only, never an instruction set (-march, -mavx...): the same
# flags serve x86-64, arm64 and every other target, and on x86-64 Linux the
# element-wise kernels pick their instruction set at run time (see
# rnncore/_simd.h).  -fno-trapping-math lets the compiler turn the kernels'
# selects into vector blends; rnncore never reads FP exception flags.
# -fno-math-errno lets sqrt compile to the vector instruction (the optimiser
# loops); rnncore never reads errno either.  -fopenmp-simd honours "omp simd"
# without linking an OpenMP runtime.  -pthread: the team of helper threads
# (rnncore/_team.h) uses POSIX threads.  GCC and clang (Linux, macOS) take
# these; each is probed first, so a compiler that lacks one builds without it.
GCC_FLAGS = ["-O3", "-fopenmp-simd", "-fno-trapping-math", "-fno-math-errno",
             "-pthread"]
GCC_LINK_FLAGS = ["-pthread"]
MSVC_FLAGS = ["/O2"]


class BuildExt(build_ext):
    def build_extensions(self):
        if self.compiler.compiler_type == "msvc":
            flags, link_flags = MSVC_FLAGS, []
        else:
            flags = [flag for flag in GCC_FLAGS if self._accepts(flag)]
            link_flags = [flag for flag in GCC_LINK_FLAGS if flag in flags]
        for ext in self.extensions:
            ext.extra_compile_args = flags + ext.extra_compile_args
            ext.extra_link_args = link_flags + ext.extra_link_args
        super().build_extensions()

    def _accepts(self, flag):
        """Whether the C compiler compiles a trivial file with `flag` (clang
        only warns about some GCC flags it ignores, hence -Werror)."""
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write("int main(void) { return 0; }\n")
            try:
                self.compiler.compile(
                    [src], output_dir=tmp, extra_postargs=[flag, "-Werror"]
                )
            except CompileError:
                return False
        return True


extensions = [
    Extension(
        f"rnncore.{name}",
        [f"rnncore/{name}.pyx"],
        include_dirs=["rnncore", numpy.get_include()],
        # rnncore/_plain.pyx and the kernels' entry points (_arrays.pxd) read
        # arrays through NumPy's C API: compiled against NumPy 2, they run
        # with every NumPy that rnncore supports
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION"),
                       ("NPY_TARGET_VERSION", "NPY_1_23_API_VERSION")],
    )
    for name in MODULES
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=COMPILER_DIRECTIVES),
    cmdclass={"build_ext": BuildExt},
)
