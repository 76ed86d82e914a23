"""Lesson 04's grader: MMD² from the three kernel matrices, biased and unbiased
(Gretton et al., JMLR 2012).

The student writes ``mmd_estimates(k_ss, k_tt, k_st)`` → ``(biased, unbiased)`` from the
kernel matrices of a source sample (m points) and a target sample (n points):

    biased   = mean(K_ss) + mean(K_tt) − 2·mean(K_st)                      (every pair)
    unbiased = Σ_{i≠j} K_ss / m(m−1) + Σ_{i≠j} K_tt / n(n−1) − 2·mean(K_st)  (no diagonals)

:func:`check_mmd_estimates` compares both numbers with ``adapt.mmd`` (Gaussian kernel, the
same bandwidth) on samples of unequal sizes and says *which* term is wrong.
"""

from __future__ import annotations

from collections.abc import Callable

from tlearn.exercises import _call, _feedback

__all__ = ["check_mmd_estimates", "kernel_matrices"]


def kernel_matrices(zs, zt, gamma: float):
    """``(K_ss, K_tt, K_st)`` of the Gaussian kernel :math:`k(x, y) = e^{-‖x−y‖²/γ}`."""
    import torch

    def k(a, b):
        return torch.exp(-torch.cdist(a, b).pow(2) / gamma)

    return k(zs, zs), k(zt, zt), k(zs, zt)


def _cases():
    import torch

    from tlearn.adapt import mmd

    g = torch.Generator().manual_seed(0)
    out = []
    for m, n, shift in ((12, 7, 1.0), (5, 9, 0.0), (20, 20, 0.5)):  # unequal sizes first
        while True:  # the same-distribution case is drawn until its unbiased MMD² is < 0
            zs = torch.randn(m, 3, generator=g, dtype=torch.float64)
            zt = torch.randn(n, 3, generator=g, dtype=torch.float64) + shift
            if shift or mmd(zs, zt, "gaussian", bandwidth=4.0, estimator="unbiased") < 0:
                break
        out.append((zs, zt, 4.0))
    return out


def _wrong_versions(k_ss, k_tt, k_st):
    """The usual slips (name → the wrong number), to recognise a student's number."""
    m, n = len(k_ss), len(k_tt)
    off_ss, off_tt = k_ss.sum() - k_ss.trace(), k_tt.sum() - k_tt.trace()
    cross = k_st.mean()
    return {
        "unbiased over m²": off_ss / m**2 + off_tt / n**2 - 2 * cross,
        "unbiased with diagonals": (k_ss.mean() + k_tt.mean() - 2 * cross),
        "cross term once": off_ss / (m * (m - 1)) + off_tt / (n * (n - 1)) - cross,
        "biased cross term once": k_ss.mean() + k_tt.mean() - cross,
        "sizes swapped": off_ss / (n * (n - 1)) + off_tt / (m * (m - 1)) - 2 * cross,
    }


def check_mmd_estimates(fn: Callable) -> bool:
    """Lesson 04: ``fn(k_ss, k_tt, k_st)`` must return ``(biased, unbiased)`` MMD² estimates.

    ``k_ss`` is ``(m, m)``, ``k_tt`` ``(n, n)``, ``k_st`` ``(m, n)``; m ≠ n in two of the
    three cases, so dividing by the wrong size shows. Each number is compared with
    ``adapt.mmd(zs, zt, "gaussian", bandwidth=γ, estimator=...)``. Recognises: the diagonals
    kept in the unbiased estimate, the off-diagonal sums divided by m² instead of m(m−1),
    the cross term counted once instead of twice, m and n swapped, a clamp at 0, the two
    numbers returned in the wrong order, and a tensor that is not a single number.
    """
    import torch

    from tlearn.adapt import mmd

    name = "check_mmd_estimates"
    problems: list[str] = []
    hints: list[str] = []
    for zs, zt, gamma in _cases():
        k_ss, k_tt, k_st = kernel_matrices(zs, zt, gamma)
        copies = [k.clone() for k in (k_ss, k_tt, k_st)]
        case = f"m = {len(zs)}, n = {len(zt)}"
        got, err = _call(fn, k_ss, k_tt, k_st)
        if err:
            problems.append(f"{case}: {err}")
            break
        if got is None:
            problems.append(f"{case}: your function returned None")
            hints.append("end with `return biased, unbiased`")
            break
        try:
            b, u = (float(torch.as_tensor(v)) for v in got)
        except (TypeError, ValueError, RuntimeError):
            problems.append(f"{case}: expected two numbers (biased, unbiased), got {got!r}")
            hints.append("return a pair of scalars: `return biased, unbiased`")
            break
        if not all(torch.equal(a, c) for a, c in zip((k_ss, k_tt, k_st), copies, strict=True)):
            problems.append(f"{case}: your function changed a kernel matrix in place")
            hints.append("compute on copies, e.g. `k_ss.sum() - k_ss.diagonal().sum()`")
        want_b = float(mmd(zs, zt, "gaussian", bandwidth=gamma, estimator="biased"))
        want_u = float(mmd(zs, zt, "gaussian", bandwidth=gamma, estimator="unbiased"))
        wrong = {k: float(v) for k, v in _wrong_versions(k_ss, k_tt, k_st).items()}

        def close(x, y):
            return abs(x - y) <= 1e-6 * max(1.0, abs(y))

        if close(b, want_u) and close(u, want_b) and not close(want_b, want_u):
            problems.append(f"{case}: the two numbers are swapped")
            hints.append("return (biased, unbiased) in that order")
            break
        if not close(b, want_b):
            problems.append(f"{case}: biased estimate {b:.6g}, expected {want_b:.6g}")
            if close(b, wrong["biased cross term once"]):
                hints.append("the cross term counts twice: − 2·mean(K_st) (k(x,y) and k(y,x))")
            else:
                hints.append("biased = K_ss.mean() + K_tt.mean() − 2·K_st.mean(), every entry")
        if not close(u, want_u):
            problems.append(f"{case}: unbiased estimate {u:.6g}, expected {want_u:.6g}")
            if close(u, wrong["unbiased with diagonals"]):
                hints.append(
                    "the unbiased estimate leaves out the diagonals k(x_i, x_i) = 1: sum the "
                    "off-diagonal entries, K.sum() − K.diagonal().sum()"
                )
            elif close(u, wrong["unbiased over m²"]):
                hints.append(
                    "without its diagonal K_ss has m(m−1) entries, not m²: divide by m·(m−1)"
                )
            elif close(u, wrong["sizes swapped"]):
                hints.append("K_ss is m×m (source), K_tt n×n: divide each by its own size")
            elif close(u, wrong["cross term once"]):
                hints.append("the cross term counts twice: − 2·mean(K_st)")
            elif u == 0.0 and want_u < 0:
                hints.append(
                    "do not clamp the unbiased estimate at 0: it may be negative "
                    "(an unbiased estimate of a non-negative number)"
                )
            else:
                hints.append(
                    "unbiased = Σ_{i≠j} K_ss/(m(m−1)) + Σ_{i≠j} K_tt/(n(n−1)) − 2·K_st.mean()"
                )
        if problems:
            break
    return _feedback(name, problems, hints)
