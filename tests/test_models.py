"""Tests for tlearn.models: backbones, heads, blocks and the digit adapter."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_sample_image
from torch import nn

from tlearn import checkpoint, models
from tlearn.models import efficientnet_lite as lite

PALACE_LIKE = {442, 538, 698, 497, 483, 663, 832}  # bell cote, dome, palace, church, castle, …
DAISY = 985

# Expected head layer and number of blocks per family (from the papers' layer counts).
EXPECTED = {
    "resnet18": ("fc", 7, 512),
    "resnet34": ("fc", 7, 512),
    "resnet50": ("fc", 7, 2048),
    "vgg11": ("classifier.6", 8 + 3, 4096),
    "vgg16": ("classifier.6", 13 + 3, 4096),
    "alexnet": ("classifier.6", 5 + 3, 4096),
    "mobilenet_v3_small": ("classifier.3", 13 + 2, 1024),
    "efficientnet_b0": ("classifier.1", 9 + 1, 1280),
    "efficientnet_lite0": ("classifier.1", 9 + 1, 1280),
}


def _forward_order(model: nn.Module, names: list[str], x: torch.Tensor) -> list[str]:
    """Names of the given submodules in the order a forward pass first calls them."""
    order: list[str] = []
    hooks = [
        model.get_submodule(n).register_forward_hook(
            lambda *_, n=n: order.append(n) if n not in order else None
        )
        for n in names
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return order


def _check_blocks(model: nn.Module, x: torch.Tensor) -> list[str]:
    """blocks() must name real modules, run in forward order, end in the head, and partition
    the parameters (each parameter in exactly one block)."""
    found = models.blocks(model)
    names = [n for n, _ in found]
    modules = dict(model.named_modules())
    assert all(modules[n] is m for n, m in found)
    assert names[-1] == models.head_name(model)
    assert _forward_order(model, names, x) == names
    ids = [id(p) for _, m in found for p in m.parameters()]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}
    return names


# --- backbones: construction, heads, blocks ---------------------------------------------


@pytest.mark.parametrize("name", list(models.BACKBONES))
def test_family_head_blocks_and_transfer_net(name):
    head, n_blocks, dim = EXPECTED[name]
    torch.manual_seed(0)
    model = models.load_backbone(name, pretrained=False)
    assert not model.training  # returned in eval mode
    x = torch.rand(1, 3, 64, 64)

    assert models.head_name(model) == head
    assert len(_check_blocks(model, x)) == n_blocks

    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(head)}
    assert models.replace_head(model, 7) is model
    new_head = model.get_submodule(head)
    assert isinstance(new_head, nn.Linear)
    assert (new_head.in_features, new_head.out_features) == (dim, 7)
    assert model(x).shape == (1, 7)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())  # only the head changed

    net = models.TransferNet(model, num_classes=3, size=64)
    digits = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert net.features(digits).shape == (2, dim)
        assert net(digits).shape == (2, 3)
    assert net.feature_dim == dim
    names = _check_blocks(net, digits)
    assert names[-1] == "head"
    assert all(n.startswith("features.backbone.") for n in names[:-1])
    assert len(names) == n_blocks


def test_block_names_digitnet_and_resnet():
    net = models.DigitNet()
    names = _check_blocks(net.eval(), torch.rand(2, 1, 32, 32))
    assert names == ["features.conv1", "features.conv2", "features.conv3", "features.fc", "head"]
    resnet = models.load_backbone("resnet18", pretrained=False)
    assert [n for n, _ in models.blocks(resnet)] == [
        "conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc",
    ]  # fmt: skip


def test_digitnet_channels_last_same_function_as_nchw():
    """DigitNet keeps its conv weights and each batch in channels-last memory; the function is
    PyTorch's default-layout network's, to float rounding, in evaluation and after training."""
    torch.manual_seed(0)
    fast, plain = models.DigitNet(), models.DigitNet(channels_last=False)
    plain.load_state_dict(fast.state_dict())
    conv = fast.features.conv2[0].weight  # conv1 has one input channel: both layouts at once
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert plain.features.conv2[0].weight.is_contiguous()
    seen = []
    fast.features.conv2.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    x, y = torch.rand(16, 1, 32, 32), torch.randint(0, 10, (16,))
    with torch.no_grad():
        torch.testing.assert_close(fast.eval()(x), plain.eval()(x), atol=1e-5, rtol=1e-5)
    assert seen[0].is_contiguous(memory_format=torch.channels_last)
    for net in (fast.train(), plain.train()):
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
    torch.testing.assert_close(fast.state_dict(), plain.state_dict(), atol=1e-4, rtol=1e-4)
    copy = models.DigitNet(channels_last=False)
    copy.load_state_dict(fast.state_dict())  # a channels-last checkpoint loads either way
    with torch.no_grad():
        torch.testing.assert_close(copy.eval()(x), fast.eval()(x), atol=1e-5, rtol=1e-5)


def test_replace_head_digitnet():
    net = models.DigitNet()
    assert models.replace_head(net, 5) is net
    assert net.num_classes == 5 and net.head.out_features == 5
    assert net.eval()(torch.rand(3, 1, 32, 32)).shape == (3, 5)


def test_unsupported_and_invalid_inputs():
    with pytest.raises(ValueError, match="resnet18.*efficientnet_lite0"):
        models.load_backbone("resnet19")
    with pytest.raises(ValueError, match="supported: DigitNet.*ResNet.*EfficientNetLite"):
        models.replace_head(nn.Sequential(nn.Linear(3, 4)), 2)
    with pytest.raises(ValueError, match="supported"):
        models.blocks(nn.Linear(3, 4))
    with pytest.raises(ValueError, match="num_classes"):
        models.replace_head(models.DigitNet(), 1)
    with pytest.raises(ValueError, match="num_classes"):
        models.replace_head(models.DigitNet(), 3.0)
    with pytest.raises(ValueError, match="AlexNet needs size >= 63"):
        models.for_digits(models.load_backbone("alexnet", pretrained=False), size=32)
    with pytest.raises(ValueError, match="backbone"):
        models.for_digits(3)


# --- weights from files, offline behaviour ------------------------------------------------


def _equal_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_weights_path_roundtrip(tmp_path):
    torch.manual_seed(1)
    src = models.load_backbone("mobilenet_v3_small", pretrained=False)
    path = tmp_path / "mnv3.pth"
    torch.save(src.state_dict(), path)
    torch.manual_seed(2)  # a different random init, which the file must overwrite
    loaded = models.load_backbone("mobilenet_v3_small", weights_path=path)
    assert _equal_state(src, loaded)
    # a tlearn checkpoint (state dict under "model") and a DataParallel "module." prefix work too
    checkpoint.save_checkpoint(tmp_path / "ckpt.pt", src)
    assert _equal_state(
        src, models.load_backbone("mobilenet_v3_small", weights_path=tmp_path / "ckpt.pt")
    )
    torch.save({f"module.{k}": v for k, v in src.state_dict().items()}, tmp_path / "dp.pth")
    assert _equal_state(
        src, models.load_backbone("mobilenet_v3_small", weights_path=tmp_path / "dp.pth")
    )


def test_weights_path_lite0_both_layouts(tmp_path):
    torch.manual_seed(3)
    src = models.load_backbone("efficientnet_lite0", pretrained=False)
    torch.save(src.state_dict(), tmp_path / "lite.pth")
    assert _equal_state(
        src, models.load_backbone("efficientnet_lite0", weights_path=tmp_path / "lite.pth")
    )


def test_bad_weights_files_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        models.load_backbone("resnet18", weights_path=tmp_path / "nope.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth.*torch.save"):
        models.load_backbone("resnet18", weights_path=garbage)
    good = tmp_path / "mnv3.pth"
    torch.save(models.load_backbone("mobilenet_v3_small", pretrained=False).state_dict(), good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.pth"):
        models.load_backbone("mobilenet_v3_small", weights_path=truncated)
    with pytest.raises(ValueError, match="do not fit AlexNet.*missing keys"):
        models.load_backbone("alexnet", weights_path=good)  # weights of another architecture
    torch.save({"a": 1}, tmp_path / "not_tensors.pth")
    with pytest.raises(ValueError, match="state dict"):
        models.load_backbone("resnet18", weights_path=tmp_path / "not_tensors.pth")


def test_offline_without_cache_fails_fast_and_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("TLEARN_OFFLINE", "1")  # never download in a test, even when online
    start = time.perf_counter()
    with pytest.raises(models.WeightsUnavailableError) as info:
        models.load_backbone("resnet18", pretrained=True)
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "TORCH_HOME" in message and "weights_path" in message
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    # without TLEARN_OFFLINE the download is tried; a failed one gives the same clear error
    monkeypatch.delenv("TLEARN_OFFLINE")
    for proxy in ("HTTPS_PROXY", "https_proxy"):  # a proxy that refuses every connection
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")
    with pytest.raises(models.WeightsUnavailableError, match="cannot be downloaded") as info:
        models.load_backbone("resnet18")
    assert "TORCH_HOME" in str(info.value) and "download.pytorch.org" in str(info.value)


def test_cached_torchvision_weights_load_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("TLEARN_OFFLINE", "1")
    torch.manual_seed(4)
    src = models.load_backbone("resnet18", pretrained=False)
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(src.state_dict(), cache / "resnet18-f37072fd.pth")
    assert _equal_state(src, models.load_backbone("resnet18"))
    (cache / "resnet18-f37072fd.pth").write_bytes(b"half a download")
    with pytest.raises(models.WeightsUnavailableError, match="unreadable.*delete it"):
        models.load_backbone("resnet18")


# --- EfficientNet-Lite0 ---------------------------------------------------------------------


def test_same_padding_matches_tensorflow():
    """TF "SAME" with stride 2 on an even input pads 0 before and 1 after (k = 3)."""
    torch.manual_seed(5)
    conv = lite.Conv2dSame(2, 4, 3, stride=2)
    x = torch.randn(1, 2, 8, 8)
    expected = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, stride=2)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    x_odd = torch.randn(1, 2, 7, 7)  # odd input: total padding 2, split 1/1
    expected = F.conv2d(x_odd, conv.weight, stride=2, padding=1)
    assert torch.allclose(conv(x_odd), expected, atol=1e-6)
    conv5 = lite.Conv2dSame(2, 2, 5, stride=1)  # stride 1: symmetric k // 2
    assert torch.allclose(conv5(x), F.conv2d(x, conv5.weight, padding=2), atol=1e-6)


def test_lite0_state_dict_conversion():
    state = torch.load(models.weights.lite0_weights_file(), map_location="cpu", weights_only=True)
    converted = lite.convert_lite0_state_dict(state)
    own = lite.efficientnet_lite0().state_dict()
    assert converted.keys() == own.keys()
    assert all(converted[k].shape == own[k].shape for k in own)
    assert (
        sum(v.numel() for k, v in own.items() if "running" not in k and "num_batches" not in k)
        == 4_652_008
    )
    with pytest.raises(ValueError, match="unexpected key"):
        lite.convert_lite0_state_dict({"_se_reduce.weight": torch.zeros(1)})


def _photo(name: str) -> torch.Tensor:
    return torch.from_numpy(load_sample_image(name).copy()).permute(2, 0, 1)[None].float() / 255


def test_lite0_imagenet_predictions_offline():
    """Real ImageNet weights: the Summer Palace photo looks like palaces, the flower a daisy."""
    model = models.load_backbone("efficientnet_lite0")
    assert models.normalization(model) == ((0.5,) * 3, (0.5,) * 3)
    prepare = models.ImageNetInput(224, *models.normalization("efficientnet_lite0"))
    with torch.no_grad():
        logits = model(prepare(torch.cat([_photo("china.jpg"), _photo("flower.jpg")])))
    china, flower = models.decode_imagenet(logits, k=5)
    china_ids = [i for i, _, _ in china]
    assert china_ids[0] in PALACE_LIKE and len(PALACE_LIKE.intersection(china_ids)) >= 2, china
    assert flower[0][0] == DAISY and flower[0][1] == "daisy", flower
    probs = [p for _, _, p in china]
    assert probs == sorted(probs, reverse=True)
    assert np.isclose(logits.softmax(1)[0, china_ids[0]].item(), probs[0], atol=1e-6)


def test_imagenet_categories_and_decode_validation():
    assert len(models.imagenet_categories()) == 1000
    assert models.imagenet_categories()[442] == "bell cote"
    with pytest.raises(ValueError, match="1000"):
        models.decode_imagenet(torch.zeros(2, 10))
    with pytest.raises(ValueError, match="k must be"):
        models.decode_imagenet(torch.zeros(1000), k=0)


# --- digits into ImageNet backbones ---------------------------------------------------------


def test_imagenet_input_matches_explicit_computation():
    adapter = models.ImageNetInput(size=16)
    x = torch.rand(2, 1, 32, 32)
    out = adapter(x)
    assert out.shape == (2, 3, 16, 16)
    mean = torch.tensor(models.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(models.IMAGENET_STD).view(1, 3, 1, 1)
    resized = F.interpolate(x, size=(16, 16), mode="bilinear", antialias=True)
    assert torch.allclose(out, (resized.repeat(1, 3, 1, 1) - mean) / std, atol=1e-5)
    constant = torch.full((1, 1, 32, 32), 0.7)  # a constant image stays constant per channel
    expected = (0.7 - np.array(models.IMAGENET_MEAN)) / np.array(models.IMAGENET_STD)
    assert np.allclose(adapter(constant).mean(dim=(2, 3))[0].numpy(), expected, atol=1e-5)
    assert adapter.state_dict() == {}  # configuration, not weights
    with pytest.raises(ValueError, match="N×1×H×W"):
        adapter(torch.rand(2, 2, 32, 32))
    with pytest.raises(ValueError, match="size"):
        models.ImageNetInput(size=4)


def test_for_digits_with_pretrained_lite0():
    net = models.for_digits("efficientnet_lite0", num_classes=10, size=64)
    assert isinstance(net, models.TransferNet) and not net.training
    assert models.normalization(net) == ((0.5,) * 3, (0.5,) * 3)
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        z = net.features(x)
        assert z.shape == (4, 1280) and net(x).shape == (4, 10)
    assert torch.allclose(net.head(z), net(x), atol=1e-5)  # forward = head ∘ features
    # The pretrained body is intact: same stem weights as the backbone loaded on its own.
    backbone = models.load_backbone("efficientnet_lite0")
    assert torch.equal(net.features.backbone.features[0][0].weight, backbone.features[0][0].weight)
    models.replace_head(net, 4)
    assert net(x).shape == (4, 4) and net.num_classes == 4


def test_for_digits_copies_a_given_backbone():
    backbone = models.load_backbone("mobilenet_v3_small", pretrained=False)
    net = models.for_digits(backbone, num_classes=2, size=32)
    assert isinstance(backbone.classifier[3], nn.Linear)  # the original keeps its head
    assert net.features.backbone is not backbone
    assert models.normalization(net) == (models.IMAGENET_MEAN, models.IMAGENET_STD)
    assert net(torch.rand(2, 1, 32, 32)).shape == (2, 2)
