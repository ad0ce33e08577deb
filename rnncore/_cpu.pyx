"""What the compiled kernels know about the CPU they run on."""
from rnncore._simd cimport rnc_simd_isa


def simd_isa():
    """The instruction set the element-wise kernels chose on this CPU.

    On x86-64 Linux (glibc) wheels: "x86-64-v4 (AVX-512)", "x86-64-v3 (AVX2,
    FMA)" or "x86-64 (SSE2)", chosen at load time; elsewhere the build's
    baseline: "neon" on arm64, "baseline" otherwise.
    """
    return rnc_simd_isa().decode("ascii")
