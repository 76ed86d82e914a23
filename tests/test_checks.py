"""Every input a user can type gets a clear answer (issue 20).

Each refused input is checked for the exception type and a phrase of its message; where a
call that changes a model is refused, the model's state dict is compared before and after.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from tlearn import (
    adapt,
    bn,
    checks,
    cli,
    data,
    distributed,
    features,
    models,
    probes,
    runtime,
    train,
)
from tlearn.adapt import trainer
from tlearn.data import DigitDataset


def digits(n: int = 24, channels: int = 1, seed: int = 0) -> DigitDataset:
    g = torch.Generator().manual_seed(seed)
    return DigitDataset(torch.rand(n, channels, 32, 32, generator=g), torch.arange(n) % 10)


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert torch.equal(v, after[k]), f"{k} changed"


FAST = dict(progress=False, device="cpu")


# --------------------------------------------------------------------------- the checks
@pytest.mark.parametrize(
    "check, value, phrase",
    [
        (checks.positive_int, "a", "batch_size must be a positive int, got 'a'"),
        (checks.positive_int, True, "got True"),
        (checks.positive_int, 0, "positive int"),
        (checks.positive_int, 2.0, "got 2.0"),
        (checks.nonnegative_int, -1, "non-negative int, got -1"),
        (checks.positive_float, float("nan"), "finite number > 0"),
        (checks.positive_float, "1e-3", "got '1e-3'"),
        (checks.nonnegative_float, -0.5, ">= 0, got -0.5"),
        (checks.probability, 1.5, "in [0, 1]"),
        (checks.boolean, "False", "True or False, got 'False'"),
    ],
)
def test_each_check_refuses_with_the_name_and_the_value(check, value, phrase):
    with pytest.raises(ValueError, match=phrase.replace("[", r"\[").replace("]", r"\]")):
        check("batch_size", value)


def test_checks_accept_and_return_good_values():
    assert checks.positive_int("n", np.int64(3)) == 3 and type(checks.positive_int("n", 3)) is int
    assert checks.positive_int("n", 2, minimum=2) == 2
    assert checks.nonnegative_int("seed", 0) == 0
    assert checks.positive_float("lr", 1) == 1.0
    assert checks.probability("p", 0) == 0.0 and checks.boolean("b", False) is False
    assert checks.one_of("bn", "joint", ("per_domain", "joint")) == "joint"
    with pytest.raises(ValueError, match="must be one of 'per_domain', 'joint', got 'x'"):
        checks.one_of("bn", "x", ("per_domain", "joint"))


def test_env_int_and_env_float_name_the_variable(monkeypatch):
    monkeypatch.delenv("TLEARN_X", raising=False)
    assert checks.env_int("TLEARN_X", 7) == 7 and checks.env_float("TLEARN_X", 2.5) == 2.5
    monkeypatch.setenv("TLEARN_X", "abc")
    with pytest.raises(ValueError, match="environment variable TLEARN_X must be an int"):
        checks.env_int("TLEARN_X", 7)
    with pytest.raises(ValueError, match="environment variable TLEARN_X must be a number > 0"):
        checks.env_float("TLEARN_X", 2.5)
    monkeypatch.setenv("TLEARN_X", " 12 ")
    assert checks.env_int("TLEARN_X", 7) == 12 and checks.env_float("TLEARN_X", 1.0) == 12.0


def test_int_argument_is_an_argparse_usage_error():
    assert cli.int_argument("--seed")("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match="--seed must be an int >= 0, got '-1'"):
        cli.int_argument("--seed")("-1")
    with pytest.raises(argparse.ArgumentTypeError, match="got 'x'"):
        cli.int_argument("--epochs", minimum=1)("x")


# --------------------------------------------------------------------------- drop_last
def test_fit_drops_the_last_incomplete_batch_by_default():
    # 17 images in batches of 8: 2 full batches, the lone 17th image is left out
    net = models.DigitNet()
    seen = []
    hist = train.fit(
        net, digits(17), epochs=1, batch_size=8, seed=0,
        callbacks=[type("C", (), {"on_epoch_end": lambda self, s: seen.append(1)})()], **FAST,
    )  # fmt: skip
    assert len(hist) == 1 and seen == [1]
    assert train._steps_per_epoch(digits(17), 8, True) == 2
    assert train._steps_per_epoch(digits(17), 8, False) == 3
    assert train._steps_per_epoch(digits(5), 8, True) == 1  # smaller than a batch: one batch


@pytest.mark.slow
def test_fit_trains_on_uci_in_batches_of_eight():
    """uci's 1,257 training images are 157 × 8 + 1: the default must train."""
    hist = train.fit(models.DigitNet(), data.load_domain("uci"), epochs=1, batch_size=8, **FAST)
    assert len(hist) == 1


def test_fit_without_drop_last_refuses_a_batch_of_one_before_training():
    net = models.DigitNet()
    before = state(net)
    with pytest.raises(ValueError, match="17 images in batches of 8 leave a last batch of one"):
        train.fit(net, digits(17), epochs=1, batch_size=8, drop_last=False, **FAST)
    assert_unchanged(net, before)
    # without BatchNorm a batch of one is fine
    flat = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 10))
    train.fit(flat, digits(17), epochs=1, batch_size=8, drop_last=False, **FAST)


def test_fit_refuses_a_loader_whose_last_batch_is_one_image():
    loader = torch.utils.data.DataLoader(digits(9), batch_size=4)
    with pytest.raises(ValueError, match="DataLoader\\(..., drop_last=True\\)"):
        train.fit(models.DigitNet(), loader, epochs=1, **FAST)


def test_fit_refuses_a_dataset_of_one_image():
    with pytest.raises(ValueError, match="holds 1 image: training needs at least 2"):
        train.fit(models.DigitNet(), digits(1), epochs=1, **FAST)


@pytest.mark.parametrize("drop_last", ["yes", 1, None])
def test_fit_drop_last_must_be_a_bool(drop_last):
    with pytest.raises(ValueError, match="drop_last must be True or False"):
        train.fit(models.DigitNet(), digits(8), epochs=1, drop_last=drop_last, **FAST)


def test_fit_adapt_trains_with_a_ragged_source_and_target():
    hist = adapt.fit_adapt(
        models.DigitNet(), digits(17), digits(9, seed=1), "coral", epochs=1, batch_size=8,
        seed=0, **FAST,
    )  # fmt: skip
    assert np.isfinite(hist.last["train_loss"])


def test_tent_refuses_a_loader_of_single_images_and_leaves_the_model():
    net = models.DigitNet().eval()
    before = state(net)
    loader = torch.utils.data.DataLoader(digits(4).images, batch_size=1)
    with pytest.raises(ValueError, match="every target batch held a single image"):
        adapt.tent(net, loader, **FAST)
    assert_unchanged(net, before)


# --------------------------------------------------------------------------- uint8 images
class Uint8:
    """uint8 images (0 … 255) with labels, as a TensorDataset (DigitDataset refuses them)."""

    def __init__(self, n: int = 8):
        self.images = (torch.rand(n, 1, 32, 32) * 255).to(torch.uint8)
        self.dataset = torch.utils.data.TensorDataset(self.images, torch.arange(n) % 10)


def test_digit_dataset_refuses_uint8_images():
    with pytest.raises(TypeError, match="images must be float tensors"):
        DigitDataset(Uint8().images, torch.arange(8))


@pytest.mark.parametrize(
    "call",
    [
        lambda net, u: train.evaluate(net, u.dataset, device="cpu"),
        lambda net, u: train.predict(net, u.dataset, device="cpu"),
        lambda net, u: features.extract(net, u.dataset, **FAST),
        lambda net, u: adapt.tent(net, u.images, batch_size=4, **FAST),
        lambda net, u: bn.adabn(net, u.images, **FAST),
        lambda net, u: adapt.fit_adapt(
            net, digits(16), u.dataset, "coral", epochs=1, batch_size=8, **FAST
        ),
        lambda net, u: train.fit(net, u.dataset, epochs=1, **FAST),
    ],
    ids=["evaluate", "predict", "extract", "tent", "adabn", "fit_adapt-target", "fit"],
)
def test_uint8_images_are_refused_everywhere_with_one_message(call):
    net = models.DigitNet().eval()
    before = state(net)
    u = Uint8()
    with pytest.raises(TypeError, match=r"images must be float tensors .* x.float\(\) / 255"):
        call(net, u)
    assert_unchanged(net, before)


# --------------------------------------------------------------------------- channels
@pytest.mark.parametrize(
    "call",
    [
        lambda net, ds: train.fit(net, ds, epochs=1, **FAST),
        lambda net, ds: features.extract(net, ds, **FAST),
        lambda net, ds: adapt.tent(net, ds.images, batch_size=4, **FAST),
        lambda net, ds: train.evaluate(net, ds, device="cpu"),
        lambda net, ds: bn.adabn(net, ds.images, **FAST),
    ],
    ids=["fit", "extract", "tent", "evaluate", "adabn"],
)
def test_three_channel_images_into_a_one_channel_net_say_how_to_fix_it(call):
    net = models.DigitNet().eval()
    before = state(net)
    with pytest.raises(
        ValueError, match="expects 1 channel but the images have 3; pass channels=1"
    ) as e:
        call(net, digits(8, channels=3))
    assert "in_channels=3" in str(e.value)
    assert_unchanged(net, before)


# --------------------------------------------------------------------------- empty / NaN
@pytest.mark.parametrize(
    "empty", [torch.zeros(0, 1, 32, 32), DigitDataset(torch.zeros(0, 1, 32, 32), torch.zeros(0))]
)
def test_extract_on_empty_data_says_so(empty):
    with pytest.raises(ValueError, match="extract: the data is empty"):
        features.extract(models.DigitNet(), empty, **FAST)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize(
    "call",
    [
        lambda net, x: adapt.tent(net, x, batch_size=4, **FAST),
        lambda net, x: bn.adabn(net, x, batch_size=4, **FAST),
    ],
    ids=["tent", "adabn"],
)
def test_nonfinite_target_images_are_refused_and_the_model_kept(call, bad):
    net = models.DigitNet().eval()
    before = state(net)
    x = torch.rand(12, 1, 32, 32)
    x[9, 0, 3, 3] = bad  # in the last batch: earlier batches have already run
    with pytest.raises(ValueError, match="contain NaN or Inf values"):
        call(net, x)
    assert_unchanged(net, before)
    assert not net.training


def test_fit_adapt_refuses_a_nonfinite_target():
    x = torch.rand(8, 1, 32, 32)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        adapt.fit_adapt(models.DigitNet(), digits(16), x, "coral", epochs=1, batch_size=8, **FAST)


# --------------------------------------------------------------------------- alignment modules
class OneArgument(nn.Module):
    def forward(self, z):
        return z.mean()


class NeedsLabels(nn.Module):
    def forward(self, zs, zt, labels):
        return zs.mean()


class Vector(nn.Module):
    def forward(self, zs, zt):
        return zs.mean(0) - zt.mean(0)


class PythonFloat(nn.Module):
    def forward(self, zs, zt):
        return float((zs.mean() - zt.mean()).detach() ** 2)


class Constant(nn.Module):
    def forward(self, zs, zt):
        return torch.tensor(0.5)


def fit_adapt(net, method, **kw):
    return adapt.fit_adapt(
        net, digits(16), digits(16, seed=1), method, epochs=1, batch_size=8, **FAST, **kw
    )


@pytest.mark.parametrize(
    "module, phrase",
    [
        (OneArgument(), r"must take two feature batches, forward\(self, zs, zt\)"),
        (NeedsLabels(), "requires labels, which the trainer does not offer"),
        (Vector(), r"must return a scalar tensor .*got shape \(128,\)"),
        (PythonFloat(), "must return a scalar tensor .*got float"),
    ],
)
def test_a_users_alignment_module_with_the_wrong_shape_is_refused(module, phrase):
    net = models.DigitNet()
    before = state(net)
    with pytest.raises(TypeError, match=phrase):
        fit_adapt(net, module)
    assert_unchanged(net, before)


def test_an_alignment_loss_without_gradient_warns_once_naming_the_method():
    with pytest.warns(
        UserWarning, match="alignment loss of method 'Constant' carries no gradient"
    ) as w:
        fit_adapt(models.DigitNet(), Constant())
    assert sum("carries no gradient" in str(r.message) for r in w) == 1


def test_a_real_alignment_loss_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_adapt(models.DigitNet(), "coral")


@pytest.mark.parametrize(
    "method, options, phrase",
    [
        ("coral", {"kernel": "linear"}, "method 'coral' takes no option 'kernel'; .*accepts: none"),
        (
            "mmd",
            {"kernal": "linear"},
            "did you mean 'kernel'.*accepts: kernel, bandwidth, estimator",
        ),
        ("dann", {"hidden": 8}, "accepts: discriminator, schedule"),
    ],
)
def test_method_options_the_method_does_not_take_are_named(method, options, phrase):
    with pytest.raises(ValueError, match=phrase):
        fit_adapt(models.DigitNet(), method, **options)


@pytest.mark.parametrize(
    "kw, error, phrase",
    [
        ({"weight": "a"}, ValueError, "weight must be a finite number >= 0, got 'a'"),
        ({"weight": -1.0}, ValueError, "weight must be"),
        ({"bn": "both"}, ValueError, "bn must be one of 'per_domain', 'joint'"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer must be one of 'adam', 'sgd'"),
    ],
)
def test_fit_adapt_types_and_ranges(kw, error, phrase):
    with pytest.raises(error, match=phrase):
        fit_adapt(models.DigitNet(), "coral", **kw)


def test_fit_adapt_batch_size_of_one():
    with pytest.raises(ValueError, match="batch_size must be an int >= 2, got 1"):
        adapt.fit_adapt(models.DigitNet(), digits(8), digits(8), batch_size=1, **FAST)


def test_fit_adapt_refuses_a_method_that_is_not_a_name_or_module():
    with pytest.raises(ValueError, match="unknown method"):
        fit_adapt(models.DigitNet(), ["coral"])


# --------------------------------------------------------------------------- register_method
@pytest.fixture
def registry():
    saved = dict(trainer.METHODS)
    yield trainer.METHODS
    trainer.METHODS.clear()
    trainer.METHODS.update(saved)


class Gap(nn.Module):
    def forward(self, zs, zt):
        return (zs.mean(0) - zt.mean(0)).pow(2).sum()


@pytest.mark.parametrize(
    "name, build, defaults, error, phrase",
    [
        ("", lambda d: Gap(), {}, ValueError, "non-empty string"),
        (3, lambda d: Gap(), {}, ValueError, "non-empty string, got 3"),
        ("coral", lambda d: Gap(), {}, ValueError, "built-in method; pass replace=True"),
        ("gap", "Gap", {}, TypeError, "must be a callable"),
        ("gap", lambda: Gap(), {}, TypeError, "feature width as its first argument"),
        ("gap", lambda d: 3.0, {}, TypeError, "returned float, not an nn.Module"),
        ("gap", lambda d: OneArgument(), {}, TypeError, "must take two feature batches"),
        ("gap", lambda d: Gap(), {"wieght": 2.0}, ValueError, "unknown default.*wieght"),
        ("gap", lambda d: Gap(), {"weight": "2"}, ValueError, "weight must be a finite number"),
        ("gap", lambda d: Gap(), {"bn": "mixed"}, ValueError, "bn must be one of"),
        ("gap", lambda d: Gap(), {"epochs": 0}, ValueError, "epochs must be a positive int"),
    ],
)
def test_register_method_refuses_at_registration(registry, name, build, defaults, error, phrase):
    before = dict(registry)
    with pytest.raises(error, match=phrase):
        trainer.register_method(name, build, **defaults)
    assert registry == before


def test_register_method_replaces_a_built_in_only_when_asked(registry):
    trainer.register_method("coral", lambda d: Gap(), replace=True, weight=2.0)
    assert trainer.defaults("coral")["weight"] == 2.0
    trainer.register_method("gap", lambda d, scale=1.0: Gap())
    trainer.register_method("gap", lambda d, scale=1.0: Gap())  # re-running a cell is fine
    with pytest.raises(ValueError, match="'gap' takes no option 'scal'.*did you mean 'scale'"):
        fit_adapt(models.DigitNet(), "gap", scal=2.0)


def test_a_trial_build_draws_no_random_number(registry):
    torch.manual_seed(0)
    trainer.register_method(
        "lin", lambda d: type("L", (Gap,), {})().add_module("l", nn.Linear(d, d)) or Gap()
    )
    after = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(1))


# --------------------------------------------------------------------------- types, ranges
def test_types_and_ranges_of_public_functions():
    with pytest.raises(ValueError, match="num_classes must be an int >= 2, got '10'"):
        models.DigitNet(num_classes="10")
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        models.DigitNet(in_channels=0)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 'a'"):
        data.make_loader(digits(4), batch_size="a")
    with pytest.raises(ValueError, match="seed must be a non-negative int, got -1"):
        data.load_domain("synth", size=10, seed=-1)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got function"):
        train.fit(lambda x: x, digits(8), epochs=1, **FAST)
    with pytest.raises(TypeError, match="build the network first"):
        train.fit(models.DigitNet, digits(8), epochs=1, **FAST)


def test_a_registered_domain_loader_that_returns_none(monkeypatch):
    monkeypatch.setitem(data._REGISTRY, "broken", lambda split, **kw: None)
    with pytest.raises(TypeError, match="loader of domain 'broken' returned NoneType"):
        data.load_domain("broken")
    with pytest.raises(ValueError, match="non-empty string"):
        data.register_domain("", lambda split, **kw: None)
    with pytest.raises(TypeError, match="must be callable"):
        data.register_domain("x", None)


def test_leep_refuses_a_target_of_one_class():
    theta = np.full((4, 2), 0.5)
    with pytest.raises(ValueError, match="at least two classes"):
        probes.leep(theta, [1, 1, 1, 1])


# --------------------------------------------------------------------------- devices
@pytest.mark.parametrize("name", ["gpu", "GPU:0", "bogus", 3.5])
def test_get_device_lists_valid_names(name):
    with pytest.raises(ValueError, match="not a device name; use one of cpu, cuda") as e:
        runtime.get_device(name)
    if str(name).lower().startswith("gpu"):
        assert 'a GPU is "cuda"' in str(e.value)


def test_tlearn_device_bogus_names_the_variable(monkeypatch):
    monkeypatch.setenv("TLEARN_DEVICE", "bogus")
    with pytest.raises(ValueError, match="TLEARN_DEVICE 'bogus' is not a device name"):
        runtime.get_device()


# --------------------------------------------------------------------------- environment
def test_world_size_without_torchrun(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RuntimeError, match="Start it with torchrun --nproc_per_node=2"):
        distributed.distributed("cpu")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE must be an int"):
        distributed.distributed("cpu")


def test_tlearn_workers_must_be_a_number(monkeypatch):
    from tlearn.data.real import loader_workers

    monkeypatch.setenv("TLEARN_WORKERS", "many")
    with pytest.raises(ValueError, match="TLEARN_WORKERS must be an int >= 0"):
        loader_workers()
    monkeypatch.setenv("TLEARN_WORKERS", "2")
    assert loader_workers() == 2


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={**os.environ, **env},
    )  # fmt: skip


@pytest.mark.slow
def test_a_bad_dist_timeout_does_not_break_import_but_is_named_when_used():
    done = run_python("import tlearn.train; print('imported')", TLEARN_DIST_TIMEOUT="abc")
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr
    done = run_python(
        "import tlearn.distributed as d; d.distributed('cpu')",
        TLEARN_DIST_TIMEOUT="abc", WORLD_SIZE="2", RANK="0", MASTER_ADDR="127.0.0.1",
        MASTER_PORT="29591",
    )  # fmt: skip
    assert done.returncode != 0 and "TLEARN_DIST_TIMEOUT must be a number > 0" in done.stderr


@pytest.mark.slow
def test_a_peer_that_never_joins_names_the_variable_that_bounds_the_wait():
    done = run_python(
        "import tlearn.distributed as d; d.distributed('cpu')",
        TLEARN_DIST_TIMEOUT="3", WORLD_SIZE="2", RANK="0", LOCAL_RANK="0",
        MASTER_ADDR="127.0.0.1", MASTER_PORT="29593",
    )  # fmt: skip
    assert done.returncode != 0
    assert "TLEARN_DIST_TIMEOUT bounds the wait" in done.stderr, done.stderr[-2000:]


# --------------------------------------------------------------------------- command line
def test_cli_refuses_negative_seeds_and_bad_devices(capsys):
    from tlearn import cli, reproduce

    for argv, phrase, main in [
        (["demo", "--seed", "-1"], "--seed must be an int >= 0, got '-1'", cli.main),
        (["mnist-usps", "--seeds", "-1"], "--seeds must be an int >= 0", reproduce.main),
        (["mnist-usps", "--epochs", "0"], "--epochs must be an int >= 1, got '0'", reproduce.main),
        (["mnist-usps", "--device", "gpu"], 'a GPU is "cuda"', reproduce.main),
    ]:
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        assert phrase in capsys.readouterr().err


def test_links_outside_a_repository_says_where_it_looked(tmp_path, monkeypatch, capsys):
    from tlearn import cli

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        cli.main(["links"])
    err = capsys.readouterr().err
    assert "looked for pyproject.toml and lessons in" in err and str(tmp_path.resolve()) in err


# --------------------------------------------------------------------------- image folders
def test_an_empty_class_folder_warns_naming_it(tmp_path):
    from PIL import Image

    from tlearn.data.real import ImageFolderDomain

    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
    (tmp_path / "empty_class").mkdir()
    for cls in ("cat", "dog"):
        Image.new("RGB", (8, 8)).save(tmp_path / cls / "a.png")
    with pytest.warns(UserWarning, match="empty_class hold no image files"):
        ds = ImageFolderDomain(tmp_path)
    assert ds.classes == ("cat", "dog", "empty_class") and len(ds) == 2


def test_an_input_adapter_takes_grey_and_rgb_before_its_rgb_convolution():
    """for_digits' TransferNet turns grey into RGB itself: 1-channel digits are not refused."""
    from tlearn.models.backbones import ImageNetInput

    net = nn.Sequential(ImageNetInput(size=32), nn.Conv2d(3, 4, 3))
    assert checks.accepted_channels(net) == (1, 3)
    checks.channels_match(net, torch.zeros(2, 1, 32, 32), "fit")
    checks.channels_match(net, torch.zeros(2, 3, 32, 32), "fit")
    with pytest.raises(ValueError, match="expects 1 channel but the images have 2"):
        checks.channels_match(net, torch.zeros(2, 2, 32, 32), "fit")
    assert checks.accepted_channels(nn.Sequential(nn.Conv2d(1, 4, 3))) == (1,)
