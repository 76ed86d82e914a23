"""Lesson 08, "Your turn": SHOT's information-maximisation loss, written out.

L = mean_n H(p_n) − H(p̄): the mean of the rows' entropies (each prediction confident) minus
the entropy of the mean prediction (the predictions together use every class).
"""

import torch


def information_maximization_loss(logits):
    log_p = torch.log_softmax(logits, dim=1)  # log p_n, finite even for very confident rows
    p = log_p.exp()
    mean_entropy = -(p * log_p).sum(1).mean()  # (1/N) Σ_n H(p_n)
    p_bar = p.mean(0)  # the mean prediction
    entropy_of_mean = -(p_bar * torch.log(p_bar.clamp_min(1e-30))).sum()  # H(p̄)
    return mean_entropy - entropy_of_mean


if __name__ == "__main__":
    from tlearn.exercises import l08

    assert l08.check_information_maximization(information_maximization_loss)
