"""Lesson 03, "Your turn": the Deep CORAL loss from its definition (Sun & Saenko, 2016).

ℓ_CORAL = ‖C_S − C_T‖²_F / (4 d²), with C the unbiased covariance of a feature batch.
No ``adapt.coral_loss``: the exercise asks for the computation itself.
"""


def covariance(z):
    """Unbiased covariance of an (n, d) batch: centre each feature, then Zᵀ Z / (n − 1)."""
    centred = z - z.mean(dim=0, keepdim=True)
    return centred.T @ centred / (len(z) - 1)


def my_coral_loss(zs, zt):
    d = zs.shape[1]
    diff = covariance(zs) - covariance(zt)
    return (diff**2).sum() / (4 * d * d)  # the squared Frobenius norm, over 4d²


if __name__ == "__main__":
    from tlearn.exercises import l03

    assert l03.check_coral_loss(my_coral_loss)
