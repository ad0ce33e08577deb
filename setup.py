"""Build the compiled kernels of rnncore.

Project metadata lives in pyproject.toml; this file only declares the Cython
extension modules and how they are compiled.

Environment variables:
    RNNCORE_BOUNDSCHECK=1   compile with Cython's bounds and wraparound checks
                            (for debugging; slow).
"""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

MODULES = ["_optim", "_recurrence", "_softmax", "_output", "_training"]

DEBUG_CHECKS = os.environ.get("RNNCORE_BOUNDSCHECK", "0") == "1"

COMPILER_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG_CHECKS,
    "wraparound": DEBUG_CHECKS,
    "initializedcheck": DEBUG_CHECKS,
    "cdivision": True,
    "embedsignature": True,
}

# Portable flags only: the element-wise kernels pick their instruction set at
# run time (see rnncore/_simd.h).  -fno-trapping-math lets the compiler turn
# the kernels' selects into vector blends; rnncore never reads FP exception
# flags.  -fno-math-errno lets sqrt compile to the vector instruction (the
# optimiser loops); rnncore never reads errno either.  -fopenmp-simd honours
# "omp simd" without linking an OpenMP runtime.
GCC_FLAGS = ["-O3", "-fopenmp-simd", "-fno-trapping-math", "-fno-math-errno"]
MSVC_FLAGS = ["/O2"]


class BuildExt(build_ext):
    def build_extensions(self):
        flags = MSVC_FLAGS if self.compiler.compiler_type == "msvc" else GCC_FLAGS
        for ext in self.extensions:
            ext.extra_compile_args = flags + ext.extra_compile_args
        super().build_extensions()


extensions = [
    Extension(
        f"rnncore.{name}",
        [f"rnncore/{name}.pyx"],
        include_dirs=["rnncore"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
    )
    for name in MODULES
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=COMPILER_DIRECTIVES),
    cmdclass={"build_ext": BuildExt},
)
