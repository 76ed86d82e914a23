"""Lesson 04, "Your turn": MMD² from the kernel matrices, biased and unbiased."""


def mmd_estimates(k_ss, k_tt, k_st):
    m, n = len(k_ss), len(k_tt)
    biased = k_ss.mean() + k_tt.mean() - 2 * k_st.mean()  # every pair, diagonals included
    off_ss = (k_ss.sum() - k_ss.diagonal().sum()) / (m * (m - 1))  # pairs i ≠ j only
    off_tt = (k_tt.sum() - k_tt.diagonal().sum()) / (n * (n - 1))
    unbiased = off_ss + off_tt - 2 * k_st.mean()
    return biased, unbiased
