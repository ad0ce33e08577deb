"""Fit the coefficients of rnncore's tanh (rnc_tanhf, rnc_tanh in rnncore/_simd.h).

    python tools/tanh_fit.py

Needs mpmath (``pip install mpmath``) and NumPy.  Prints, for float32 and
float64, the coefficients of u = P - 1 and v = Q - 1 from the highest degree
down, rounded to the dtype, as they appear in the C functions.

Both functions use the half-angle form

    tanh(x) = s / (1 + s²/4),   s = x P(t) / Q(t) ≈ 2 tanh(x/2),   t = x²,

computed as a Q / (Q² + a²/4) with a = x P: one division per element.  The
double-angle step damps the error of s: d log tanh(x) / d log s = sech(x),
so a relative error e in s becomes e sech(x) in tanh(x).  P and Q are
therefore the rational minimax fit of 2 tanh(x/2) / x in t with the relative
error weighted by sech(x).  The weight is small where tanh saturates, so a
low degree (2/3 in float32, 5/6 in float64) reaches the dtype's accuracy over
the whole range.

P(0) = Q(0) = 1 are pinned, so s = x (1 + O(x²)).  The C code evaluates
u = P - 1 and v = Q - 1 and adds the 1 last (a = x u + x, a Q = a v + a,
Q² + a²/4 = (a²/4 + v (v + 2)) + 1): nothing is rounded away before the
small terms are summed, and tanh(x) = x exactly for tiny x.

tanh(x) rounds to 1 beyond 9.011 (float32) and 19.06 (float64).  The C code
clamps x to ±9.01150513, just past that point and where the formula gives
exactly 1 both with and without FMA, and to ±19.5, so the polynomials are
never evaluated far outside the fit; the fits run to 9.1 and 19.1, where the
weight sech(x) is below 2^-12 and 2^-26.  The numerator is also clamped to
±the denominator, so that |tanh(x)| <= 1 without FMA too.
"""
import mpmath as mp
import numpy as np

# dtype: (degree of P, degree of Q, end of the fit interval, working digits)
FITS = {
    "float32": (2, 3, "9.1", 60),
    "float64": (5, 6, "19.1", 80),
}


def target(t):
    """2 tanh(x/2) / x at t = x²."""
    if t == 0:
        return mp.mpf(1)
    h = mp.sqrt(t) / 2
    return mp.tanh(h) / h


def weight(t):
    """sech(x): the sensitivity of tanh(x) = s / (1 + s²/4) to log s."""
    return mp.sech(mp.sqrt(t))


def remez(f, w, m, n, c, iters=60, grid_size=4000):
    """Weighted relative minimax rational fit with P(0) = Q(0) = 1.

    Minimises max |w(t) (P(t) / (Q(t) f(t)) - 1)| over t = x², 0 <= x <= c,
    for P of degree m and Q of degree n.  Returns the coefficients of P and
    Q (lowest degree first) and the levelled error.
    """
    c = mp.mpf(c)
    npts = m + n + 1  # unknowns: p_1..p_m, q_1..q_n and the error E

    def cheb(k, size):  # Chebyshev points in x, clustered at both ends
        return c * (1 - mp.cos(mp.pi * k / size)) / 2

    ref = [cheb(i, npts - 1) ** 2 for i in range(npts)]
    grid_x = [cheb(i, grid_size) for i in range(grid_size + 1)]
    grid = [x * x for x in grid_x]
    q_prev = [mp.mpf(1)]
    e_prev = mp.mpf(0)
    best = None
    gold = (mp.sqrt(5) - 1) / 2
    for _ in range(iters):
        # Levelled error on the reference: P - f Q (1 + (-1)^i E / w) = 0 is
        # nonlinear in E; use the previous Q in the E term and iterate.
        for _ in range(20):
            rows, rhs = [], []
            for i, t in enumerate(ref):
                ft = f(t)
                qp = mp.polyval(q_prev[::-1], t)
                rows.append(
                    [t**k for k in range(1, m + 1)]
                    + [-ft * t**k for k in range(1, n + 1)]
                    + [-((-1) ** i) * ft * qp / w(t)]
                )
                rhs.append(ft - 1)
            sol = mp.lu_solve(mp.matrix(rows), mp.matrix(rhs))
            pc = [mp.mpf(1)] + [sol[i] for i in range(m)]
            qc = [mp.mpf(1)] + [sol[m + i] for i in range(n)]
            e = sol[m + n]
            q_prev = qc
            converged = abs(e - e_prev) < abs(e) * mp.mpf(10) ** -12
            e_prev = e
            if converged:
                break

        def err(t, pc=pc, qc=qc):
            p, q = mp.polyval(pc[::-1], t), mp.polyval(qc[::-1], t)
            return (p / q / f(t) - 1) * w(t)

        # Local extrema of the error on the grid (and both ends), each
        # refined by golden-section search in x between its grid neighbours.
        ev = [err(t) for t in grid]
        last = len(grid) - 1
        ext = [
            i
            for i in range(1, last)
            if (ev[i] - ev[i - 1]) * (ev[i + 1] - ev[i]) <= 0
        ]
        pts = [(grid[0], ev[0])]
        for i in ext:
            lo, hi = grid_x[i - 1], grid_x[i + 1]
            for _ in range(60):
                x1, x2 = hi - gold * (hi - lo), lo + gold * (hi - lo)
                if abs(err(x1 * x1)) > abs(err(x2 * x2)):
                    hi = x2
                else:
                    lo = x1
            xm = (lo + hi) / 2
            pts.append((xm * xm, err(xm * xm)))
        pts.append((grid[last], ev[last]))
        # New reference: alternating signs, the largest of each run, trimmed
        # to npts by dropping the smaller end.
        alt = []
        for t, et in pts:
            if alt and mp.sign(alt[-1][1]) == mp.sign(et):
                if abs(et) > abs(alt[-1][1]):
                    alt[-1] = (t, et)
            else:
                alt.append((t, et))
        while len(alt) > npts:
            alt.pop(0 if abs(alt[0][1]) < abs(alt[-1][1]) else -1)
        if len(alt) < npts:
            break
        emax = max(abs(et) for _, et in alt)
        emin = min(abs(et) for _, et in alt)
        ref = [t for t, _ in alt]
        best = (pc, qc, emax)
        if emax - emin < emax * mp.mpf("1e-6"):
            break
    return best


def main():
    # rounded as in the C source: float32 through float64, float64 shortest
    formats = {
        "float32": lambda v: f"{float(np.float32(float(v))):.9e}f",
        "float64": lambda v: repr(float(v)),
    }
    for dtype, (m, n, c, dps) in FITS.items():
        with mp.workdps(dps):
            pc, qc, e = remez(target, weight, m, n, c)
        fmt = formats[dtype]
        bits = np.finfo(dtype).nmant + 1
        print(
            f"{dtype}: P degree {m}, Q degree {n} in t = x², fit on [0, {c}], "
            f"weighted error {float(e):.3g} = {float(e) * 2.0**bits:.3f} × 2^-{bits}"
        )
        print("  u = P - 1:", ", ".join(fmt(v) for v in pc[:0:-1]))
        print("  v = Q - 1:", ", ".join(fmt(v) for v in qc[:0:-1]))


if __name__ == "__main__":
    main()
