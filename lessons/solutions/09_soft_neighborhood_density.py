"""Lesson 09, "Your turn": Soft Neighborhood Density (Saito et al., ICCV 2021), written out.

Rows L2-normalised, cosine similarities divided by the temperature, the diagonal excluded, a
softmax over each row's neighbours, and the mean of the rows' entropies (higher: each target
example has many close neighbours — dense clusters).
"""

import numpy as np


def snd(probs, temperature=0.05):
    p = probs / np.linalg.norm(probs, axis=1, keepdims=True)  # p̂_i = p_i / ‖p_i‖
    s = p @ p.T / temperature  # s_ij = p̂_i · p̂_j / τ
    np.fill_diagonal(s, -np.inf)  # an example is not its own neighbour
    s = s - s.max(axis=1, keepdims=True)  # the softmax is unchanged; exp cannot overflow
    log_p = s - np.log(np.exp(s).sum(axis=1, keepdims=True))  # log P_ij, row by row
    p_ij = np.exp(log_p)
    row_entropy = -np.where(p_ij > 0, p_ij * np.where(p_ij > 0, log_p, 0.0), 0.0).sum(axis=1)
    return float(row_entropy.mean())


if __name__ == "__main__":
    from tlearn.exercises import l09

    assert l09.check_snd(snd)
