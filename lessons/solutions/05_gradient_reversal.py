"""Lesson 05, "Your turn": DANN's gradient reversal layer (Ganin et al., JMLR 2016).

Identity going forward; the gradient multiplied by −λ going back, so the domain classifier
behind it descends the domain loss while the features in front of it ascend it.
"""

import torch


class GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lambda_):
        ctx.lambda_ = lambda_  # kept for backward
        return x.view_as(x)  # the identity (a view, so autograd records this function)

    @staticmethod
    def backward(ctx, grad_output):
        return -ctx.lambda_ * grad_output, None  # one gradient per input; λ gets none


if __name__ == "__main__":
    from tlearn.exercises import l05

    assert l05.check_gradient_reversal(GradReverse)
