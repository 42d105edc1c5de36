"""Backbones for detection and segmentation: feature maps, torchvision's contract, frozen BN, dilation."""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import resnet
from resnet.cli import main
from resnet.errors import ResNetError
from resnet.models import FeatureExtractor, FrozenBatchNorm2d, dilate, feature_info, freeze_batchnorm

# (channels per stage, strides per stage) of every family.
IMAGENET_BASIC = ((64, 128, 256, 512), (4, 8, 16, 32))
IMAGENET_BOTTLENECK = ((256, 512, 1024, 2048), (4, 8, 16, 32))
FAMILIES = {
    "resnet18": IMAGENET_BASIC,
    "plain34": IMAGENET_BASIC,
    "preact_resnet18": IMAGENET_BASIC,
    "resnet50": IMAGENET_BOTTLENECK,
    "plain50": IMAGENET_BOTTLENECK,
    "preact_resnet50": IMAGENET_BOTTLENECK,
    "resnext50_32x4d": IMAGENET_BOTTLENECK,
    "resnet20": ((16, 32, 64), (1, 2, 4)),
    "plain20": ((16, 32, 64), (1, 2, 4)),
    "preact_resnet20": ((16, 32, 64), (1, 2, 4)),
    "preact_resnet164": ((64, 128, 256), (1, 2, 4)),
}
SIZES = [(225, 193), (97, 97), (64, 80), (33, 47)]
STRIDES_UNDILATED = {"layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}


def meta_model(name: str, **options: object) -> nn.Module:
    with torch.device("meta"):
        return resnet.create_model(name, **options)


def randomise_bn(model: nn.Module, seed: int = 3) -> nn.Module:
    """Non-trivial BN statistics and affine values, so that BN and its frozen form are tested for real."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model


def build(name: str, seed: int = 0, **options: object) -> nn.Module:
    torch.manual_seed(seed)
    return randomise_bn(resnet.create_model(name, **options)).eval()


def stage_outputs_of_the_real_forward(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """What each ``layer{k}`` outputs inside ``model(x)``: the ground truth for any feature extractor."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        getattr(model, f.name).register_forward_hook(
            lambda _m, _i, out, name=f.name: seen.__setitem__(name, out.clone())
        )
        for f in feature_info(model)
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def intermediate_layer_getter(model: nn.Module, return_layers: dict[str, str]) -> Callable[[torch.Tensor], OrderedDict]:
    """torchvision's IntermediateLayerGetter, reduced to its contract: keep the children in order until
    every return layer is seen, run them one after the other, return the named ones' outputs."""
    if not set(return_layers) <= {name for name, _ in model.named_children()}:
        raise ValueError("return_layers are not present in model")
    remaining, layers = dict(return_layers), []
    for name, module in model.named_children():
        layers.append((name, module))
        remaining.pop(name, None)
        if not remaining:
            break

    def forward(x: torch.Tensor) -> OrderedDict:
        out = OrderedDict()
        for name, module in layers:
            x = module(x)
            if name in return_layers:
                out[return_layers[name]] = x
        return out

    return forward


# --- feature maps: names, channels, strides, shapes ------------------------------------------------


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_feature_info_is_known_before_any_forward(name: str) -> None:
    channels, strides = FAMILIES[name]
    model = meta_model(name)  # on the meta device: nothing has run, nothing could have
    info = feature_info(model)
    assert [f.name for f in info] == [f"layer{k}" for k in range(1, len(channels) + 1)]
    assert [f.layer for f in info] == [f"conv{k + 1}_x" for k in range(1, len(channels) + 1)]
    assert tuple(f.channels for f in info) == channels and tuple(f.stride for f in info) == strides
    extractor = meta_model(name, features_only=True)
    assert extractor.feature_info == info


@pytest.mark.parametrize("name", sorted(FAMILIES))
@pytest.mark.parametrize("height,width", SIZES)
def test_feature_maps_have_the_announced_channels_and_strides(name: str, height: int, width: int) -> None:
    extractor = meta_model(name, features_only=True)
    maps = extractor(torch.empty(2, 3, height, width, device="meta"))
    assert len(maps) == len(extractor.feature_info)
    for f, m in zip(extractor.feature_info, maps, strict=True):
        assert tuple(m.shape) == (2, f.channels, math.ceil(height / f.stride), math.ceil(width / f.stride))
        assert tuple(m.shape[2:]) == f.output_size(height, width)


@pytest.mark.parametrize(
    "name,size,options",
    [
        ("resnet18", (65, 47), {}),
        ("plain34", (64, 64), {}),
        ("preact_resnet18", (97, 97), {}),
        ("resnet50", (65, 47), {}),
        ("preact_resnet50", (33, 33), {}),
        ("resnext50_32x4d", (33, 33), {}),
        ("resnet20", (32, 32), {}),
        ("plain20", (33, 31), {}),
        ("preact_resnet20", (32, 32), {}),
        ("cifar_preact_resnet", (17, 17), {"depth": 29, "block": "bottleneck"}),
    ],
)
def test_extractor_and_torchvision_getter_return_the_stage_outputs_of_the_real_forward(
    name: str, size: tuple[int, int], options: dict
) -> None:
    model = build(name, **options)
    x = torch.randn(2, 3, *size)
    truth = stage_outputs_of_the_real_forward(model, x)
    info = feature_info(model)
    getter = intermediate_layer_getter(model, {f.name: str(i) for i, f in enumerate(info)})
    with torch.no_grad():
        by_getter = getter(x)
        by_extractor = FeatureExtractor(model)(x)
    assert list(by_getter) == [str(i) for i in range(len(info))]
    for i, f in enumerate(info):
        torch.testing.assert_close(by_getter[str(i)], truth[f.name], rtol=0, atol=0)
        torch.testing.assert_close(by_extractor[i], truth[f.name], rtol=0, atol=0)
        assert by_getter[str(i)].shape[1] == f.channels


def test_preact_last_feature_is_the_stage_output_before_the_final_bn_relu() -> None:
    model = build("preact_resnet18")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        c5 = FeatureExtractor(model, (4,))(x)[0]
        torch.testing.assert_close(model.forward_features(x), F.relu(model.final_bn(c5)))
    assert (c5 < 0).any()  # a raw residual sum, not yet through a ReLU


def test_out_indices_select_stages_and_stop_the_network_early() -> None:
    extractor = resnet.create_model("resnet50", features_only=True, out_indices=(2, 3))
    assert [(f.name, f.channels, f.stride) for f in extractor.feature_info] == [
        ("layer2", 512, 8),
        ("layer3", 1024, 16),
    ]
    children = [n for n, _ in extractor.named_children()]
    assert children == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3"]
    with torch.no_grad():
        maps = extractor.eval()(torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(1, 512, 8, 8), (1, 1024, 4, 4)]


def test_extractor_keeps_the_state_dict_keys_so_classifier_weights_load() -> None:
    classifier = build("preact_resnet18", seed=1)
    extractor = resnet.create_model("preact_resnet18", features_only=True)
    result = extractor.load_state_dict(classifier.state_dict(), strict=False)
    assert result.missing_keys == []
    assert {k.split(".")[0] for k in result.unexpected_keys} == {"final_bn", "fc"}
    for key, value in extractor.state_dict().items():
        torch.testing.assert_close(value, classifier.state_dict()[key])


# --- frozen BatchNorm -------------------------------------------------------------------------------


def test_frozen_bn_is_bn_in_eval_mode_whatever_the_mode() -> None:
    reference = build("resnet18")
    frozen = freeze_batchnorm(build("resnet18")).train()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())
    assert all(m.eps == 1e-5 for m in frozen.modules() if isinstance(m, FrozenBatchNorm2d))
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(frozen(x), reference(x))  # reference is in eval mode
        # Plain BN in train mode normalises with the batch's statistics instead: a different function.
        assert not torch.allclose(build("resnet18").train()(x), reference(x), atol=1e-3)


def test_frozen_bn_does_not_change_in_train_mode_nor_under_an_optimizer_step() -> None:
    model = resnet.create_model("preact_resnet18", norm_layer="frozen_bn", num_classes=4)
    randomise_bn(model)  # no BatchNorm2d left: nothing randomised, buffers stay as built
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, FrozenBatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.weight.uniform_(0.5, 1.5)
    model.train()
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    x = torch.randn(4, 3, 48, 48)
    first = model(x)
    with torch.no_grad():
        torch.testing.assert_close(model(x), first, rtol=0, atol=0)
    assert all(torch.equal(buffers[k], v) for k, v in model.named_buffers())
    conv_before = model.conv1.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    F.cross_entropy(first, torch.tensor([0, 1, 2, 3])).backward()
    optimizer.step()
    assert all(torch.equal(buffers[k], v) for k, v in model.named_buffers())
    assert not torch.equal(model.conv1.weight, conv_before)  # the step did happen


def test_frozen_bn_has_no_parameters_and_keeps_the_state_dict_keys() -> None:
    bn_model = build("resnet50", seed=2)
    frozen = resnet.create_model("resnet50", norm_layer="frozen_bn")
    assert sum(p.numel() for p in frozen.parameters()) == sum(
        p.numel()
        for n, p in bn_model.named_parameters()
        if ".bn" not in n and not n.startswith("bn") and "downsample.1" not in n
    )
    assert list(frozen.state_dict()) == list(bn_model.state_dict())
    frozen.load_state_dict(bn_model.state_dict(), strict=True)  # BN -> frozen
    back = resnet.create_model("resnet50")
    back.load_state_dict(frozen.state_dict(), strict=True)  # frozen -> BN
    for key, value in bn_model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


def test_frozen_bn_loads_torchvision_checkpoints_without_num_batches_tracked() -> None:
    source = build("resnet18", seed=4)
    torchvision_style = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    frozen = resnet.create_model("resnet18", norm_layer="frozen_bn")
    frozen.load_state_dict(torchvision_style, strict=True)
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(frozen.eval()(x), source(x))


def test_freeze_batchnorm_on_a_part_or_a_single_layer() -> None:
    model = build("resnet18")
    assert freeze_batchnorm(model.layer1) is model.layer1
    kinds = {n: type(m) for n, m in model.named_modules() if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))}
    assert all((kind is FrozenBatchNorm2d) == name.startswith("layer1.") for name, kind in kinds.items())
    bn = model.bn1
    frozen = freeze_batchnorm(bn)
    assert isinstance(frozen, FrozenBatchNorm2d) and torch.equal(frozen.running_var, bn.running_var)
    x = torch.randn(2, 64, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(frozen(x), bn(x))


def test_freeze_batchnorm_needs_running_statistics() -> None:
    with pytest.raises(ResNetError, match="running statistics"):
        freeze_batchnorm(nn.BatchNorm2d(4, track_running_stats=False))


@pytest.mark.parametrize(
    "name,options",
    [
        ("resnet18", {}),
        ("preact_resnet18", {"output_stride": 8}),
        ("plain18", {}),
        ("preact_resnet20", {}),
    ],
)
def test_gradients_reach_every_trainable_parameter_and_no_frozen_one(name: str, options: dict) -> None:
    torch.manual_seed(0)
    model = resnet.create_model(name, features_only=True, norm_layer="frozen_bn", **options).train()
    # What detectors do with trainable_layers=3: the stem and the first stage frozen as well.
    frozen = [p for n, p in model.named_parameters() if n.startswith(("conv1.", "layer1."))]
    for p in frozen:
        p.requires_grad_(False)
    size = 32
    sum(m.square().mean() for m in model(torch.randn(2, 3, size, size))).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and frozen
    dead = [n for n, p in trainable if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert dead == []
    assert all(p.grad is None for p in frozen)
    assert all(not b.requires_grad and b.grad is None for b in model.buffers())


# --- dilation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("output_stride,strides", [(32, (4, 8, 16, 32)), (16, (4, 8, 16, 16)), (8, (4, 8, 8, 8))])
@pytest.mark.parametrize("name", ["resnet18", "resnet50", "preact_resnet50", "plain18", "resnext50_32x4d"])
def test_output_stride_shapes(name: str, output_stride: int, strides: tuple[int, ...]) -> None:
    extractor = meta_model(name, features_only=True, output_stride=output_stride)
    assert tuple(f.stride for f in extractor.feature_info) == strides
    for height, width in ((225, 193), (97, 97)):
        maps = extractor(torch.empty(1, 3, height, width, device="meta"))
        assert [tuple(m.shape[2:]) for m in maps] == [(math.ceil(height / s), math.ceil(width / s)) for s in strides]
    classifier = meta_model(name, output_stride=output_stride)
    assert classifier(torch.empty(2, 3, 97, 97, device="meta")).shape == (2, 1000)


@pytest.mark.parametrize(
    "name,options,output_stride",
    [
        ("resnet18", {}, 16),
        ("resnet18", {}, 8),
        ("preact_resnet18", {}, 16),
        ("preact_resnet18", {}, 8),
        ("plain18", {}, 8),
        ("resnet18", {"shortcut": "A"}, 8),
        ("resnet50", {}, 8),
        ("resnet50", {"stride_on": "3x3"}, 8),
    ],
)
def test_dilated_network_computes_the_strided_one_at_every_sth_position(
    name: str, options: dict, output_stride: int
) -> None:
    """The atrous rule is right: same weights, same function, denser output (borders included)."""
    # In float64, so the only differences left would be the rule's, not the summation order's.
    strided = FeatureExtractor(build(name, **options)).double()
    dilated = FeatureExtractor(build(name, output_stride=output_stride, **options)).double()
    x = torch.randn(1, 3, 69, 47, dtype=torch.float64)
    with torch.no_grad():
        for f, dense, sparse in zip(dilated.feature_info, dilated(x), strided(x), strict=True):
            step = STRIDES_UNDILATED[f.name] // f.stride  # 1, 2 or 4 dilated-net pixels per strided-net pixel
            torch.testing.assert_close(dense[..., ::step, ::step], sparse, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name,output_stride", [("resnet18", 16), ("resnet18", 8), ("preact_resnet50", 8)])
def test_dilation_keeps_the_weights(name: str, output_stride: int) -> None:
    plain_sd = build(name, seed=5).state_dict()
    dilated = build(name, seed=5, output_stride=output_stride)
    dilated_sd = dilated.state_dict()
    assert list(dilated_sd) == list(plain_sd)
    assert all(torch.equal(dilated_sd[k], v) for k, v in plain_sd.items())
    other = build(name, seed=6)
    other.load_state_dict(dilated_sd, strict=True)  # dilated -> undilated
    dilated.load_state_dict(build(name, seed=7).state_dict(), strict=True)  # undilated -> dilated


def test_dilation_rule_matches_torchvision_for_its_bottleneck_and_dilates_after_the_stride_otherwise() -> None:
    v15 = resnet.create_model("resnet50", stride_on="3x3", output_stride=8)
    dilations = {name: [b.conv2.dilation[0] for b in getattr(v15, name)] for name in ("layer3", "layer4")}
    # torchvision's replace_stride_with_dilation=[False, True, True]: previous_dilation in the first block.
    assert dilations == {"layer3": [1, 2, 2, 2, 2, 2], "layer4": [2, 4, 4]}
    assert all(m.padding == m.dilation for m in v15.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
    assert all(
        m.stride == (1, 1)
        for name in ("layer3", "layer4")
        for m in getattr(v15, name).modules()
        if isinstance(m, nn.Conv2d)
    )
    paper = resnet.create_model("resnet50", output_stride=8)  # stride on the first 1x1
    assert [b.conv2.dilation[0] for b in paper.layer4] == [4, 4, 4]
    basic = resnet.create_model("resnet18", output_stride=16)
    assert [(b.conv1.dilation[0], b.conv2.dilation[0]) for b in basic.layer4] == [(1, 2), (2, 2)]
    assert basic.layer3[0].conv1.stride == (2, 2)  # layer3 untouched at output stride 16


def _receptive_field_width(stage: nn.Module, channels: int, size: int = 21) -> int:
    """How many rows of the stage's input the centre output pixel depends on (by its gradient)."""
    x = torch.randn(1, channels, size, size, requires_grad=True)
    out = stage(x)
    centre = out.shape[-1] // 2
    out[0, :, centre, centre].sum().backward()
    rows = torch.nonzero(x.grad.abs().sum((0, 1, 3))).flatten()
    return int(rows.max() - rows.min() + 1)


def test_dilation_keeps_the_receptive_field_that_removing_the_stride_alone_would_shrink() -> None:
    strided = build("resnet18")
    dilated = build("resnet18", output_stride=16)
    stride_only = build("resnet18", output_stride=16)
    for m in stride_only.layer4.modules():  # the stride removed, the dilation undone
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
            m.dilation, m.padding = (1, 1), (1, 1)
    widths = [_receptive_field_width(m.layer4, 256) for m in (strided, dilated, stride_only)]
    # Four 3x3 convolutions after a stride 2 at the first: 3 + 3 * 2 * 2 = 15 rows; without it 3 + 3 * 2 = 9.
    assert widths == [15, 15, 9]


def test_dilating_a_dilated_net_or_a_cifar_net_is_refused() -> None:
    model = resnet.create_model("resnet18", output_stride=16)
    with pytest.raises(ResNetError, match="already dilated"):
        dilate(model, 8)
    with pytest.raises(ResNetError, match="only to ImageNet-family networks"):
        dilate(resnet.create_model("resnet20"), 16)


# --- create_model's keywords ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options,message",
    [
        (
            {"features_only": True, "out_indices": (0, 1)},
            "out_indices must be increasing stage numbers among 1, 2, 3, 4",
        ),
        ({"features_only": True, "out_indices": (5,)}, "among 1, 2, 3, 4"),
        ({"features_only": True, "out_indices": (3, 1)}, "increasing"),
        ({"features_only": True, "out_indices": 4}, "got 4"),
        ({"out_indices": (1, 2)}, "out_indices needs features_only=True"),
        ({"features_only": "yes"}, "features_only must be True or False"),
        ({"output_stride": 4}, "output_stride must be one of 32, 16, 8 (got 4)"),
        ({"norm_layer": "gn"}, "norm_layer must be one of bn, frozen_bn (got 'gn')"),
    ],
)
def test_bad_backbone_options_give_one_line_errors(options: dict, message: str) -> None:
    with pytest.raises(ResNetError, match=re.escape(message)):
        resnet.create_model("resnet50", **options)


def test_cifar_backbone_options() -> None:
    with pytest.raises(
        ResNetError,
        match=re.escape("output_stride applies only to ImageNet-family networks; resnet20 is a CIFAR network"),
    ):
        resnet.create_model("resnet20", output_stride=16)
    with pytest.raises(ResNetError, match=re.escape("among 1, 2, 3 (k for layer{k}), got (4,)")):
        resnet.create_model("resnet20", features_only=True, out_indices=(4,))
    with pytest.raises(ResNetError, match="valid: .*features_only.*norm_layer.*out_indices.*output_stride"):
        resnet.create_model("resnet20", dilation=2)


# --- resnet summary --features / --output-stride --------------------------------------------------------


def test_summary_features_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "resnet50", "--features", "--input-size", "225", "193"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "resnet50 feature maps at 225x193"
    assert lines[1].split() == ["stage", "layer", "channels", "stride", "output"]
    assert [line.split() for line in lines[3:]] == [
        ["layer1", "conv2_x", "256", "4", "57x49"],
        ["layer2", "conv3_x", "512", "8", "29x25"],
        ["layer3", "conv4_x", "1024", "16", "15x13"],
        ["layer4", "conv5_x", "2048", "32", "8x7"],
    ]


def test_summary_features_json_with_output_stride(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "resnet18", "--features", "--output-stride", "8", "--input-size", "97", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(f["name"], f["channels"], f["stride"], f["output_size"]) for f in data["features"]] == [
        ("layer1", 64, 4, [25, 25]),
        ("layer2", 128, 8, [13, 13]),
        ("layer3", 256, 8, [13, 13]),
        ("layer4", 512, 8, [13, 13]),
    ]
    assert main(["summary", "resnet20", "--features", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(f["stride"], f["output_size"]) for f in data["features"]] == [(1, [32, 32]), (2, [16, 16]), (4, [8, 8])]


def test_summary_output_stride_on_a_cifar_net_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "resnet20", "--output-stride", "16"]) == 2
    err = capsys.readouterr().err
    assert "output_stride applies only to ImageNet-family networks" in err and len(err.strip().splitlines()) == 1


def test_weights_load_before_the_backbone_options_apply(tmp_path) -> None:
    """weights= with features_only/output_stride/frozen BN: the whole network is loaded first (its fc
    included), then dilated, frozen and cut; the maps are those of the loaded network."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    source = resnet.create_model("resnet18").eval()
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(state, str(tmp_path / "r18.safetensors"))
    backbone = resnet.create_model(
        "resnet18",
        weights=str(tmp_path / "r18.safetensors"),
        features_only=True,
        out_indices=(2, 3, 4),
        output_stride=16,
        norm_layer="frozen_bn",
    ).eval()
    reference = resnet.create_model("resnet18", output_stride=16)
    reference.load_state_dict(state)
    reference.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = backbone(x)
        c = reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))
        c2 = reference.layer1(c)
        c3 = reference.layer2(c2)
        c4 = reference.layer3(c3)
        c5 = reference.layer4(c4)
    assert [tuple(m.shape[-2:]) for m in maps] == [(8, 8), (4, 4), (4, 4)]
    for got, want in zip(maps, (c3, c4, c5)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert any(isinstance(m, FrozenBatchNorm2d) for m in backbone.modules())
