"""The networks against the paper's facts: parameter counts, shapes, shortcuts, torchvision's layout."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import resnet
from resnet.errors import ResNetError
from resnet.models import BasicBlock, Bottleneck, ZeroPadShortcut, get_spec

# torchvision's counts (1000 classes) and the common CIFAR implementation's (10 classes): PAPER.md.
PUBLISHED_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "resnet1202": 19_421_274,
    # torchvision's ResNeXt counts (beyond the paper).
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
}
FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "torchvision_resnet_state_dict.json").read_text())


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_model(name: str, **options: object) -> torch.nn.Module:
    with torch.device("meta"):
        return resnet.create_model(name, **options)


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_parameter_counts_equal_published(name: str) -> None:
    assert n_params(meta_model(name)) == PUBLISHED_PARAMS[name]


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110, 1202])
def test_cifar_option_a_has_exactly_the_parameters_of_its_plain_twin(depth: int) -> None:
    assert n_params(meta_model(f"resnet{depth}")) == n_params(meta_model(f"plain{depth}"))


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet20", "resnet56"])
def test_shortcut_options_order_parameters(name: str) -> None:
    a, b, c = (n_params(meta_model(name, shortcut=s)) for s in "ABC")
    plain = n_params(meta_model(name.replace("resnet", "plain")))
    assert a == plain  # option A adds nothing
    assert a < b < c  # B projects where shapes change, C everywhere


def test_option_b_projects_only_where_shapes_change() -> None:
    model = meta_model("resnet34", shortcut="B")
    projected = sorted(n for n, m in model.named_modules() if n.endswith("downsample") and m is not None)
    assert projected == ["layer2.0.downsample", "layer3.0.downsample", "layer4.0.downsample"]
    model_c = meta_model("resnet34", shortcut="C")
    assert sum(1 for n, _ in model_c.named_modules() if n.endswith("downsample")) == 3 + 4 + 6 + 3


def test_plain_network_has_no_shortcut_anywhere() -> None:
    model = resnet.create_model("plain20")
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 9
    assert all(not b.residual and b.downsample is None for b in blocks)


@pytest.mark.parametrize(
    "name,size,classes",
    [
        ("resnet18", 224, 1000),
        ("resnet50", 320, 1000),
        ("resnet34", 97, 7),
        ("plain18", 64, 5),
        ("resnet20", 32, 10),
        ("resnet20", 64, 100),
        ("plain20", 17, 10),
        ("preact_resnet20", 32, 10),
        ("preact_resnet18", 128, 3),
        ("resnext50_32x4d", 64, 2),
        ("preact_resnet164", 32, 10),
    ],
)
def test_output_shapes(name: str, size: int, classes: int) -> None:
    model = resnet.create_model(name, num_classes=classes).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, classes)
    assert torch.isfinite(out).all()


def test_fully_convolutional_up_to_the_pool() -> None:
    model = resnet.create_model("resnet50").eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, 3, 320, 320))
    assert features.shape == (1, 2048, 10, 10)  # stride 32
    cifar = resnet.create_model("resnet20").eval()
    with torch.no_grad():
        assert cifar.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 64, 8, 8)


def test_in_channels_option() -> None:
    model = resnet.create_model("resnet20", in_channels=1)
    assert model.conv1.weight.shape == (16, 1, 3, 3)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


# --- torchvision's layout -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_state_dict_names_and_shapes_match_torchvision(name: str) -> None:
    model = resnet.create_model(name, stride_on="3x3")
    mine = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert mine == FIXTURE[name]


def test_cifar_family_uses_the_same_naming_scheme() -> None:
    keys = resnet.create_model("resnet20").state_dict().keys()
    tops = {k.split(".")[0] for k in keys}
    assert tops == {"conv1", "bn1", "layer1", "layer2", "layer3", "fc"}
    assert "layer2.0.conv1.weight" in keys and "layer3.2.bn2.running_var" in keys


def random_state_dict(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict in torchvision's layout filled with random values (positive running variances)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in FIXTURE[name]:
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith(".weight") and len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            out[key] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
        else:
            out[key] = torch.randn(shape, generator=g) * 0.1 + (1.0 if key.endswith("bn1.weight") else 0.0)
    return out


def reference_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, bottleneck: bool) -> torch.Tensor:
    """torchvision's ResNet forward in eval mode, written with functional ops from the state dict alone."""

    def bn(t: torch.Tensor, p: str) -> torch.Tensor:
        return F.batch_norm(
            t,
            sd[f"{p}.running_mean"],
            sd[f"{p}.running_var"],
            sd[f"{p}.weight"],
            sd[f"{p}.bias"],
            training=False,
            eps=1e-5,
        )

    def conv(t: torch.Tensor, key: str, stride: int) -> torch.Tensor:
        w = sd[key]
        return F.conv2d(t, w, stride=stride, padding=w.shape[-1] // 2)

    x = F.max_pool2d(F.relu(bn(conv(x, "conv1.weight", 2), "bn1")), 3, 2, 1)
    for stage in range(1, 5):
        index = 0
        while f"layer{stage}.{index}.conv1.weight" in sd:
            p = f"layer{stage}.{index}"
            stride = 2 if stage > 1 and index == 0 else 1
            if bottleneck:  # v1.5: the stride sits on the 3x3
                out = F.relu(bn(conv(x, f"{p}.conv1.weight", 1), f"{p}.bn1"))
                out = F.relu(bn(conv(out, f"{p}.conv2.weight", stride), f"{p}.bn2"))
                out = bn(conv(out, f"{p}.conv3.weight", 1), f"{p}.bn3")
            else:
                out = F.relu(bn(conv(x, f"{p}.conv1.weight", stride), f"{p}.bn1"))
                out = bn(conv(out, f"{p}.conv2.weight", 1), f"{p}.bn2")
            if f"{p}.downsample.0.weight" in sd:
                x = bn(F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride), f"{p}.downsample.1")
            x = F.relu(out + x)
            index += 1
    return F.linear(x.mean((2, 3)), sd["fc.weight"], sd["fc.bias"])


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_torchvision_state_dict_loads_strict_and_gives_identical_outputs(name: str) -> None:
    sd = random_state_dict(name)
    model = resnet.create_model(name, stride_on="3x3").eval()
    model.load_state_dict(sd, strict=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, ref = model(x), reference_forward(sd, x, bottleneck=name == "resnet50")
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_paper_stride_placement_is_a_different_function() -> None:
    sd = random_state_dict("resnet50")
    x = torch.randn(1, 3, 64, 64)
    paper = resnet.create_model("resnet50").eval()  # stride on the 1x1, same weights
    paper.load_state_dict(sd)
    with torch.no_grad():
        assert not torch.allclose(paper(x), reference_forward(sd, x, bottleneck=True), atol=1e-3)
    assert paper.layer2[0].conv1.stride == (2, 2) and paper.layer2[0].conv2.stride == (1, 1)
    v15 = resnet.create_model("resnet50", stride_on="3x3")
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)


# --- blocks against hand-written references ----------------------------------------------------------


def _randomise_bn(module: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(3)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = torch.randn(m.num_features, generator=g)
            m.bias.data = torch.randn(m.num_features, generator=g)
            m.running_mean = torch.randn(m.num_features, generator=g)
            m.running_var = torch.rand(m.num_features, generator=g) + 0.5


def _bn(t: torch.Tensor, m: torch.nn.BatchNorm2d) -> torch.Tensor:
    return F.batch_norm(t, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)


def test_basic_block_with_option_a_equals_functional_reference() -> None:
    block = BasicBlock(16, 32, stride=2, shortcut="A").eval()
    _randomise_bn(block)
    x = torch.randn(2, 16, 8, 8)
    out = F.relu(_bn(F.conv2d(x, block.conv1.weight, stride=2, padding=1), block.bn1))
    out = _bn(F.conv2d(out, block.conv2.weight, padding=1), block.bn2)
    # Option A: subsample by 2, then 8 zero channels before and 8 after the 16 original ones.
    sub = x[:, :, ::2, ::2]
    shortcut = torch.cat([torch.zeros(2, 8, 4, 4), sub, torch.zeros(2, 8, 4, 4)], dim=1)
    expected = F.relu(out + shortcut)
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected)
    assert isinstance(block.downsample, ZeroPadShortcut)
    assert sum(p.numel() for p in block.downsample.parameters()) == 0


@pytest.mark.parametrize("stride_on", ["1x1", "3x3"])
def test_bottleneck_with_projection_equals_functional_reference(stride_on: str) -> None:
    block = Bottleneck(32, 16, stride=2, shortcut="B", stride_on=stride_on).eval()
    _randomise_bn(block)
    x = torch.randn(2, 32, 8, 8)
    s1, s3 = (2, 1) if stride_on == "1x1" else (1, 2)
    out = F.relu(_bn(F.conv2d(x, block.conv1.weight, stride=s1), block.bn1))
    out = F.relu(_bn(F.conv2d(out, block.conv2.weight, stride=s3, padding=1), block.bn2))
    out = _bn(F.conv2d(out, block.conv3.weight), block.bn3)
    proj = _bn(F.conv2d(x, block.downsample[0].weight, stride=2), block.downsample[1])
    with torch.no_grad():
        torch.testing.assert_close(block(x), F.relu(out + proj))


def test_plain_block_equals_the_residual_branch_alone() -> None:
    plain = BasicBlock(16, 16, shortcut=None).eval()
    _randomise_bn(plain)
    x = torch.randn(2, 16, 6, 6)
    out = F.relu(_bn(F.conv2d(x, plain.conv1.weight, padding=1), plain.bn1))
    out = F.relu(_bn(F.conv2d(out, plain.conv2.weight, padding=1), plain.bn2))
    with torch.no_grad():
        torch.testing.assert_close(plain(x), out)


@pytest.mark.parametrize("name", ["resnet20", "resnet18", "resnet50", "preact_resnet20", "preact_resnet50"])
def test_zero_init_residual_makes_same_shape_blocks_identity(name: str) -> None:
    model = resnet.create_model(name, zero_init_residual=True).eval()
    block = model.layer1[1]  # same input and output shape, identity shortcut
    x = torch.randn(2, block.conv1.in_channels, 8, 8)
    with torch.no_grad():
        out = block(x)
    expected = x if block.preact else torch.relu(x)
    torch.testing.assert_close(out, expected)
    # Without the option the same block is not the identity.
    with torch.no_grad():
        other = resnet.create_model(name).eval().layer1[1](x)
    assert not torch.allclose(other, expected)


@pytest.mark.parametrize("name,size", [("resnet1202", 32), ("resnet152", 64)])
def test_every_parameter_gets_a_finite_nonzero_gradient(name: str, size: int) -> None:
    torch.manual_seed(0)
    model = resnet.create_model(name)
    out = model(torch.randn(2, 3, size, size))
    F.cross_entropy(out, torch.tensor([0, 1])).backward()
    dead = [
        n
        for n, p in model.named_parameters()
        if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0
    ]
    assert dead == []


# --- the registry -------------------------------------------------------------------------------------


def test_list_models_has_every_network_of_the_paper() -> None:
    names = resnet.list_models()
    for d in (18, 34, 50, 101, 152):
        assert f"resnet{d}" in names and f"plain{d}" in names
    for d in (20, 32, 44, 56, 110, 1202):
        assert f"resnet{d}" in names and f"plain{d}" in names
    assert {"resnext50_32x4d", "preact_resnet18", "preact_resnet110"} <= set(names)
    assert "resnext50_32x4d" not in resnet.list_models(include_beyond_paper=False)
    assert set(resnet.list_models("cifar")) & set(resnet.list_models("imagenet")) == set()


def test_family_defaults_follow_the_paper() -> None:
    assert get_spec("resnet50").defaults["shortcut"] == "B"
    assert get_spec("resnet56").defaults["shortcut"] == "A"
    assert resnet.create_model("resnet50").layer2[0].conv1.stride == (2, 2)  # stride on the 1x1


def test_generic_cifar_builder_takes_any_6n_plus_2_depth() -> None:
    model = meta_model("cifar_resnet", depth=164)
    assert sum(len(getattr(model, f"layer{i}")) for i in (1, 2, 3)) == 81
    assert n_params(meta_model("cifar_resnet", depth=56)) == PUBLISHED_PARAMS["resnet56"]
    bottleneck = meta_model("cifar_resnet", depth=164, block="bottleneck")
    assert bottleneck.fc.in_features == 256 and len(bottleneck.layer1) == 18


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: resnet.create_model("resnet21"), "unknown model 'resnet21'"),
        (lambda: resnet.create_model("cifar_resnet", depth=21), "6n+2"),
        (lambda: resnet.create_model("cifar_resnet"), "needs depth"),
        (lambda: resnet.create_model("resnet20", shortcut="D"), "shortcut must be one of A, B, C"),
        (lambda: resnet.create_model("resnet50", stride_on="2x2"), "stride_on must be one of 1x1, 3x3"),
        (lambda: resnet.create_model("resnet20", num_classes=0), "num_classes must be a positive integer"),
        (lambda: resnet.create_model("resnet20", dropout=0.5), "unknown option(s) dropout"),
        (lambda: resnet.create_model("plain20", shortcut="A"), "plain network"),
        (lambda: resnet.create_model("cifar_resnet", depth=20, block="wide"), "block must be one of"),
    ],
)
def test_bad_options_give_clear_errors(call, message: str) -> None:
    with pytest.raises(ResNetError, match=re.escape(message)):
        call()
