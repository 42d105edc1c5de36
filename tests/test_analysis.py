"""Layer responses (Fig. 7) and gradient flow, checked against direct computation."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import resnet
from resnet.analysis.gradients import conv_weights, gradient_flow, gradient_norms
from resnet.analysis.responses import layer_responses, response_layers
from resnet.errors import ResNetError
from resnet.plots import plot_gradient_flow, plot_responses


def test_response_layers_are_the_3x3_layers_in_forward_order() -> None:
    names = [n for n, _ in response_layers(resnet.create_model("resnet20"))]
    assert len(names) == 19  # the stem and 2 per block: every 3x3 layer of the 20 but the fc
    assert names[:4] == ["bn1", "layer1.0.bn1", "layer1.0.bn2", "layer1.1.bn1"]
    assert names[-1] == "layer3.2.bn2"
    bottleneck = [n for n, _ in response_layers(resnet.create_model("resnet50"))]
    assert len(bottleneck) == 16 and bottleneck[0] == "layer1.0.bn2"  # the 7x7 stem is not 3x3
    with pytest.raises(ResNetError, match="pre-activation"):
        response_layers(resnet.create_model("preact_resnet20"))


def test_response_std_equals_direct_computation_over_several_batches() -> None:
    torch.manual_seed(0)
    model = resnet.create_model("cifar_resnet", depth=8)
    # Non-trivial running statistics, so eval-mode BN is not the identity.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    images = torch.randn(12, 3, 16, 16)
    got = layer_responses(model, [images[:5], images[5:9], (images[9:], torch.zeros(3))])
    captured = {}
    # Clone: the in-place ReLU that follows a BN would overwrite the captured tensor.
    handles = [
        bn.register_forward_hook(lambda _m, _i, out, n=n: captured.__setitem__(n, out.clone()))
        for n, bn in response_layers(model)
    ]
    model.eval()
    with torch.no_grad():
        model(images)
    for h in handles:
        h.remove()
    for r in got:
        expected = captured[r.name].double().std(unbiased=False).item()
        assert r.std == pytest.approx(expected, rel=1e-9)
    assert [r.index for r in got] == list(range(1, len(got) + 1))


def test_response_scales_with_bn_gamma() -> None:
    model = resnet.create_model("cifar_resnet", depth=8)
    images = torch.randn(4, 3, 8, 8)
    base = layer_responses(model, [images])
    model.layer1[0].bn2.weight.data *= 3
    model.layer1[0].bn2.bias.data.zero_()
    scaled = layer_responses(model, [images])
    index = [r.name for r in base].index("layer1.0.bn2")
    assert scaled[index].std == pytest.approx(3 * base[index].std, rel=1e-5)
    assert model.training  # measuring puts the model back in the mode it was in


def test_gradient_norms_match_autograd_and_leave_the_model_unchanged() -> None:
    torch.manual_seed(0)
    model = resnet.create_model("cifar_resnet", depth=14)
    images, labels = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    profile = gradient_norms(model, images, labels, name="resnet14")
    assert len(profile.norms) == 13 and profile.layers[0] == "conv1.weight"
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    F.cross_entropy(model(images), labels).backward()
    expected = [float(w.grad.norm()) for _, w in conv_weights(model)]
    assert profile.norms == pytest.approx(expected, rel=1e-5)
    assert profile.first_to_last == pytest.approx(expected[0] / expected[-1], rel=1e-5)


def test_gradient_flow_measures_before_and_after_training_steps() -> None:
    torch.manual_seed(0)
    model = resnet.create_model("cifar_plain", depth=8)
    measure = (torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,)))
    batches = itertools.repeat((torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))))
    start = model.conv1.weight.clone()
    profiles = gradient_flow(model, measure, batches, steps=3, name="plain8")
    assert [p.step for p in profiles] == [0, 3]
    assert not torch.equal(model.conv1.weight, start)  # the steps trained it
    assert profiles[0].norms != profiles[1].norms


def test_figures_are_written(tmp_path) -> None:
    model = resnet.create_model("cifar_resnet", depth=8)
    plain = resnet.create_model("cifar_plain", depth=8)
    images = torch.randn(4, 3, 8, 8)
    path = plot_responses(
        {"resnet8": layer_responses(model, [images]), "plain8": layer_responses(plain, [images])}, tmp_path / "fig7.png"
    )
    assert path.stat().st_size > 10_000
    g = gradient_norms(model, images, torch.zeros(4, dtype=torch.long), name="resnet8")
    assert plot_gradient_flow([g], tmp_path / "grad.png").read_bytes()[:4] == b"\x89PNG"
