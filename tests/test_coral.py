"""CORAL: closed form vs scipy, the covariance it produces, Deep CORAL loss vs np.cov."""

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline

from tlearn.adapt import CORAL, CORALLoss, coral, coral_loss
from tlearn.adapt.coral import coral_matrices, covariance

pytestmark = pytest.mark.usefixtures("one_thread")


def _domains(seed=0, ns=200, nt=150, d=4):
    rng = np.random.default_rng(seed)
    mix_s, mix_t = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    return rng.normal(size=(ns, d)) @ mix_s, rng.normal(size=(nt, d)) @ mix_t + 3.0


# --------------------------------------------------------------------------- closed form
@pytest.mark.parametrize("reg", [1.0, 0.1, 1e-3])
def test_coral_matches_scipy_sqrtm(reg):
    xs, xt = _domains()
    d = xs.shape[1]
    cs = np.cov(xs, rowvar=False) + reg * np.eye(d)
    ct = np.cov(xt, rowvar=False) + reg * np.eye(d)
    expected = xs @ np.linalg.inv(np.real(scipy.linalg.sqrtm(cs))) @ np.real(scipy.linalg.sqrtm(ct))
    np.testing.assert_allclose(coral(xs, xt, reg=reg), expected, rtol=1e-7, atol=1e-9)
    whiten, recolor = coral_matrices(xs, xt, reg)
    np.testing.assert_allclose(whiten @ whiten @ cs, np.eye(d), atol=1e-9)  # W² = Cs⁻¹
    np.testing.assert_allclose(recolor @ recolor, ct, rtol=1e-9, atol=1e-9)  # R² = Ct


@pytest.mark.parametrize("reg", [1.0, 0.3])
def test_aligned_source_covariance_is_exactly_R_W_Cs_W_R(reg):
    xs, xt = _domains(1)
    d = xs.shape[1]
    cs, ct = np.cov(xs, rowvar=False), np.cov(xt, rowvar=False)
    w = np.linalg.inv(np.real(scipy.linalg.sqrtm(cs + reg * np.eye(d))))
    r = np.real(scipy.linalg.sqrtm(ct + reg * np.eye(d)))
    np.testing.assert_allclose(
        np.cov(coral(xs, xt, reg), rowvar=False), r @ w @ cs @ w @ r, rtol=1e-7
    )
    # and it is *not* C_t when λ is large compared with the covariances
    assert not np.allclose(np.cov(coral(xs, xt, 10.0), rowvar=False), ct, rtol=0.05)


def test_small_reg_gives_the_target_covariance():
    xs, xt = _domains(2)
    np.testing.assert_allclose(
        np.cov(coral(xs, xt, reg=1e-9), rowvar=False), np.cov(xt, rowvar=False), rtol=1e-6
    )


def test_coral_keeps_kind_dtype_and_device():
    xs, xt = _domains(3)
    out = coral(xs, xt)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == xs.shape
    assert coral(xs.astype(np.float32), xt).dtype == np.float32
    ts = torch.tensor(xs, dtype=torch.float32, requires_grad=True)
    out_t = coral(ts, torch.tensor(xt))
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32
    assert out_t.device == ts.device and not out_t.requires_grad
    np.testing.assert_allclose(out_t.numpy(), out, rtol=1e-5, atol=1e-5)
    assert coral(torch.tensor(xs), torch.tensor(xt)).dtype == torch.float64


def test_reg_zero_pseudo_inverts_a_singular_source():
    xs, xt = _domains(4)
    xs[:, 0] = 7.0  # a constant feature: C_s is singular
    out = coral(xs, xt, reg=0.0)
    assert np.isfinite(out).all()
    cs = np.cov(xs, rowvar=False)
    w, _ = coral_matrices(xs, xt, reg=0.0)
    np.testing.assert_allclose(w @ cs @ w, np.diag([0.0, 1.0, 1.0, 1.0]), atol=1e-8)  # whitened


@pytest.mark.parametrize("reg", [-1.0, float("nan"), float("inf"), "1", None, True])
def test_bad_reg_raises(reg):
    xs, xt = _domains()
    with pytest.raises(ValueError, match="reg"):
        coral(xs, xt, reg=reg)


BAD_PAIRS = [
    (np.zeros(5), np.zeros((5, 2)), "2-D"),
    (np.zeros((4, 2, 2)), np.zeros((4, 4)), "2-D"),
    (np.zeros((1, 3)), np.zeros((5, 3)), "at least 2 rows"),
    (np.zeros((5, 3)), np.zeros((5, 2)), "same number of features"),
    (np.zeros((5, 0)), np.zeros((5, 0)), "at least one feature"),
    (np.full((5, 2), np.nan), np.zeros((5, 2)), "NaN or Inf"),
    (np.zeros((5, 2)), np.r_[np.zeros((4, 2)), [[np.inf, 0]]], "NaN or Inf"),
    ([["a", "b"], ["c", "d"]], np.zeros((2, 2)), "numbers"),
]


@pytest.mark.parametrize("xs,xt,match", BAD_PAIRS)
def test_bad_inputs_raise(xs, xt, match):
    with pytest.raises(ValueError, match=match):
        coral(xs, xt)
    if isinstance(xs, np.ndarray):
        with pytest.raises(ValueError, match=match):
            coral_loss(torch.as_tensor(xs, dtype=torch.float32), torch.as_tensor(xt).float())


# --------------------------------------------------------------------------- transformer
def test_transformer_matches_function_and_stores_matrices():
    xs, xt = _domains(5)
    est = CORAL(reg=0.5).fit(xs, Xt=xt)
    np.testing.assert_allclose(est.transform(xs), coral(xs, xt, 0.5))
    np.testing.assert_allclose(est.transform_matrix_, est.whiten_ @ est.recolor_)
    assert est.n_features_in_ == 4
    np.testing.assert_allclose(CORAL(0.5, target=xt).fit_transform(xs), coral(xs, xt, 0.5))
    with pytest.raises(ValueError, match="fitted on 4"):
        est.transform(xs[:, :3])


def test_transformer_errors():
    xs, xt = _domains(6)
    with pytest.raises(NotFittedError):
        CORAL().transform(xs)
    with pytest.raises(ValueError, match="needs target features"):
        CORAL().fit(xs)
    with pytest.raises(ValueError, match="transform_domain"):
        CORAL(target=xt, transform_domain="both").fit(xs)


def _shifted_problem(seed=0, n=400):
    """Two classes; the target is the source with its two axes rescaled by 1/6 and 6."""
    rng = np.random.default_rng(seed)

    def draw():
        y = rng.integers(0, 2, n)
        x = rng.normal(size=(n, 2)) * 0.7 + np.where(y[:, None] == 1, 1.0, -1.0) * [1.0, 0.3]
        return x, y

    (xs, ys), (xt, yt) = draw(), draw()
    return xs, ys, xt * [1 / 6, 6.0], yt


def test_pipeline_trains_on_aligned_source_and_predicts_raw_target():
    xs, ys, xt, yt = _shifted_problem()
    pipe = make_pipeline(CORAL(0.01, target=xt, transform_domain="target"), LogisticRegression())
    pipe.fit(xs, ys)
    by_hand = LogisticRegression().fit(coral(xs, xt, 0.01), ys)
    np.testing.assert_array_equal(pipe.predict(xt), by_hand.predict(xt))
    plain = LogisticRegression().fit(xs, ys).score(xt, yt)  # ≈ 0.67 here, ≈ 0.9 with CORAL
    assert pipe.score(xt, yt) > plain + 0.15, (pipe.score(xt, yt), plain)


def test_pipeline_fit_param_routing_and_clone():
    xs, ys, xt, _ = _shifted_problem(1)
    pipe = Pipeline([("coral", CORAL(transform_domain="target")), ("clf", LogisticRegression())])
    pipe.fit(xs, ys, coral__Xt=xt)
    ref = make_pipeline(CORAL(target=xt, transform_domain="target"), LogisticRegression())
    np.testing.assert_array_equal(pipe.predict(xt), ref.fit(xs, ys).predict(xt))
    twin = clone(pipe.set_params(coral__target=xt))
    assert twin.get_params()["coral__reg"] == 1.0
    np.testing.assert_array_equal(twin.fit(xs, ys).predict(xt), pipe.predict(xt))


def test_pipeline_with_source_transform_recolours_new_source_rows():
    xs, ys, xt, _ = _shifted_problem(2)
    pipe = make_pipeline(CORAL(target=xt), LogisticRegression()).fit(xs, ys)
    a = pipe[0].transform_matrix_
    np.testing.assert_array_equal(pipe.predict(xs[:50]), pipe[-1].predict(xs[:50] @ a))


# --------------------------------------------------------------------------- Deep CORAL
@pytest.mark.parametrize("ns,nt,d", [(30, 20, 5), (2, 3, 1), (64, 64, 16)])
def test_coral_loss_matches_numpy(ns, nt, d):
    rng = np.random.default_rng(ns + d)
    zs, zt = rng.normal(size=(ns, d)), 2 * rng.normal(size=(nt, d)) + 1
    cs, ct = np.atleast_2d(np.cov(zs, rowvar=False)), np.atleast_2d(np.cov(zt, rowvar=False))
    expected = ((cs - ct) ** 2).sum() / (4 * d * d)
    got = coral_loss(torch.tensor(zs), torch.tensor(zt))
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.item(), expected, rtol=1e-10)
    got32 = coral_loss(torch.tensor(zs, dtype=torch.float32), torch.tensor(zt, dtype=torch.float32))
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.item(), expected, rtol=1e-4)
    np.testing.assert_allclose(CORALLoss()(torch.tensor(zs), torch.tensor(zt)).item(), expected)
    np.testing.assert_allclose(covariance(torch.tensor(zs)).numpy(), cs, rtol=1e-10)


def test_coral_loss_ignores_means_and_is_symmetric():
    zs = torch.randn(40, 6, dtype=torch.float64)
    assert coral_loss(zs, zs + 5.0).item() == pytest.approx(0.0, abs=1e-12)
    zt = 3 * torch.randn(50, 6, dtype=torch.float64)
    assert coral_loss(zs, zt).item() == pytest.approx(coral_loss(zt, zs).item(), rel=1e-12)


def test_coral_loss_gradcheck_and_matches_autograd_reference():
    torch.manual_seed(0)
    zs = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    zt = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(coral_loss, (zs, zt))

    def reference(a, b):
        return ((torch.cov(a.T) - torch.cov(b.T)) ** 2).sum() / (4 * a.shape[1] ** 2)

    g_ours = torch.autograd.grad(coral_loss(zs, zt), (zs, zt))
    g_ref = torch.autograd.grad(reference(zs, zt), (zs, zt))
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b)
    only_source = coral_loss(zs, zt.detach())
    (grad,) = torch.autograd.grad(only_source, zs)
    torch.testing.assert_close(grad, g_ref[0])


def test_coral_loss_float32_under_bf16_autocast_and_half_inputs():
    torch.manual_seed(0)
    zs, zt = torch.randn(64, 32) * 3, torch.randn(48, 32)
    expected = coral_loss(zs, zt)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = coral_loss(zs, zt)
        lin = torch.nn.Linear(32, 32)
        feats = lin(zs)  # a bf16 activation, as a network under autocast would produce
        assert feats.dtype == torch.bfloat16
        loss_bf16 = coral_loss(feats, lin(zt))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected)  # not bf16-rounded
    assert loss_bf16.dtype == torch.float32 and torch.isfinite(loss_bf16)
    loss_bf16.backward()
    assert torch.isfinite(lin.weight.grad).all()
    zs.requires_grad_()
    grad_fp32 = torch.autograd.grad(coral_loss(zs, zt), zs)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):  # backward inside autocast, too
        grad_amp = torch.autograd.grad(coral_loss(zs, zt), zs)[0]
    assert grad_amp.dtype == torch.float32
    torch.testing.assert_close(grad_amp, grad_fp32)
    zs = zs.detach()
    for dtype in (torch.float16, torch.bfloat16):
        loss = coral_loss(zs.to(dtype) * 100, zt.to(dtype) * 100)  # fp16 would overflow
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        np.testing.assert_allclose(loss.item(), 1e8 * expected.item(), rtol=0.05)


feature_matrix = st.integers(2, 12).flatmap(
    lambda n: st.integers(1, 6).flatmap(
        lambda d: st.tuples(
            arrays(np.float32, (n, d), elements=st.floats(-1e3, 1e3, width=32)),
            arrays(np.float32, (n + 1, d), elements=st.floats(-1e3, 1e3, width=32)),
        )
    )
)


@settings(max_examples=60, deadline=None)
@given(feature_matrix)
def test_coral_loss_property_finite_nonnegative(pair):
    zs, zt = (torch.tensor(a, requires_grad=True) for a in pair)
    loss = coral_loss(zs, zt)
    assert torch.isfinite(loss) and loss.item() >= 0
    loss.backward()
    assert torch.isfinite(zs.grad).all() and torch.isfinite(zt.grad).all()
    aligned = coral(pair[0].astype(np.float64), pair[1].astype(np.float64))
    assert np.isfinite(aligned).all()


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 10), st.integers(1, 5), st.floats(-100, 100))
def test_constant_features_are_fine(n, d, value):
    zs = torch.full((n, d), value)
    assert coral_loss(zs, zs.clone()).item() == 0.0
    assert np.isfinite(coral(zs.numpy(), np.random.default_rng(0).normal(size=(n + 2, d)))).all()


def test_coral_module_follows_the_alignment_contract_under_autocast():
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        zs, zt = lin(torch.randn(16, 6)), lin(3 * torch.randn(10, 6))
        loss = CORALLoss()(zs, zt)
    assert zs.dtype == torch.bfloat16
    assert loss.dtype == torch.float32 and loss.shape == () and loss.item() > 0
    torch.testing.assert_close(loss, coral_loss(zs.float(), zt.float()))
