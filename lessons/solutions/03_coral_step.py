"""Lesson 03, "Your turn": one Deep CORAL training step (Sun & Saenko, 2016)."""

import torch.nn.functional as F

from tlearn import adapt


def coral_step(model, xs, ys, xt, optimizer, w):
    zs = model.features(xs)  # source pass: BatchNorm uses the source batch's statistics
    zt = model.features(xt)  # target pass, separately: the target batch's statistics
    class_loss = F.cross_entropy(model.head(zs), ys)  # labels of the source only
    align = adapt.coral_loss(zs, zt)  # ‖C_S − C_T‖²_F / 4d²
    loss = class_loss + w * align
    optimizer.zero_grad()  # forget the previous step's gradients
    loss.backward()
    optimizer.step()
    return class_loss.item(), align.item()


if __name__ == "__main__":
    from tlearn.exercises import l03

    assert l03.check_coral_step(coral_step)
