"""The inference fast path computes the same function as the eager network."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from resnet import create_model
from resnet.inference import CompileFallback, fold_batchnorm, prepare_for_inference


def _trained_like(name: str, size: int, **options) -> nn.Module:
    """A network whose BNs are far from identity, as after training: random affine params and stats."""
    torch.manual_seed(0)
    model = create_model(name, **options)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    model.train()
    with torch.no_grad():  # running statistics from real forward passes
        for _ in range(3):
            model(torch.randn(8, 3, size, size))
    return model.eval()


CASES = [
    ("resnet20", 32, {}),  # option A, basic blocks
    ("resnet20", 32, {"shortcut": "B"}),
    ("resnet20", 32, {"shortcut": "C"}),
    ("plain20", 32, {}),
    ("cifar_resnet", 32, {"depth": 11, "block": "bottleneck", "shortcut": "B"}),
    ("preact_resnet20", 32, {}),
    ("resnet18", 64, {"num_classes": 7}),
    ("resnet50", 64, {"num_classes": 5, "stride_on": "3x3"}),
    ("preact_resnet50", 64, {"num_classes": 5}),
]


@pytest.mark.parametrize("name,size,options", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_folded_bn_equals_unfolded_eval(name, size, options):
    model = _trained_like(name, size, **options)
    folded = fold_batchnorm(model)
    x = torch.randn(4, 3, size, size)
    with torch.no_grad():
        want, got = model(x), folded(x)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4), (got - want).abs().max()
    # The original is untouched and the fold really happened.
    bns = lambda m: sum(isinstance(mod, nn.BatchNorm2d) for mod in m.modules())  # noqa: E731
    assert bns(model) > 0 and bns(folded) < bns(model)


def test_every_bn_after_a_conv_is_folded_and_preact_input_bns_are_kept():
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fold_batchnorm(_trained_like("resnet20", 32)).modules())
    folded = fold_batchnorm(_trained_like("preact_resnet20", 32))
    # Pre-activation: each block's bn1 reads the sum of the previous block, so it cannot be folded.
    kept = {n for n, m in folded.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert "layer1.0.bn1" in kept and "layer1.0.bn2" not in kept


@pytest.mark.parametrize("channels_last", [True, False])
def test_prepared_model_matches_eager_and_leaves_the_original_alone(channels_last):
    model = _trained_like("resnet20", 32, shortcut="B").train()
    fast = prepare_for_inference(model, "cpu", channels_last=channels_last)
    assert model.training and any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(5, 3, 32, 32)
    with torch.inference_mode():
        got = fast(x)
    with torch.no_grad():
        want = model.eval()(x)
    assert got.dtype == torch.float32 and got.shape == (5, 10)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)


def test_compile_failure_falls_back_to_eager(monkeypatch, caplog):
    def broken_compile(module, **kwargs):
        def run(x):
            raise RuntimeError("no C compiler found\nlong traceback")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    model = _trained_like("resnet20", 32)
    fast = prepare_for_inference(model, "cpu", compile=True)
    x = torch.randn(2, 3, 32, 32)
    with caplog.at_level(logging.WARNING), torch.inference_mode():
        got = fast(x)
        fast(x)
    with torch.no_grad():
        assert torch.allclose(got, model(x), rtol=1e-4, atol=1e-4)
    warnings = [r for r in caplog.records if "torch.compile failed" in r.getMessage()]
    assert len(warnings) == 1 and "no C compiler found" in warnings[0].getMessage()


def test_compile_unavailable_at_construction_runs_eagerly(monkeypatch):
    def unavailable(module, **kwargs):
        raise RuntimeError("Dynamo is not supported on this Python")

    monkeypatch.setattr(torch, "compile", unavailable)
    wrapped = CompileFallback(nn.Linear(3, 2))
    assert wrapped.compiled is None
    assert wrapped(torch.ones(1, 3)).shape == (1, 2)


@pytest.mark.slow
def test_compiled_inference_matches_eager():
    model = _trained_like("cifar_resnet", 32, depth=8)
    fast = prepare_for_inference(model, "cpu", compile=True)
    x = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        got = fast(x)
    assert fast.net.compiled is not None  # it really compiled, no silent fallback
    with torch.no_grad():
        assert torch.allclose(got, model(x), rtol=1e-4, atol=1e-4)


def test_unknown_precision_is_a_user_error():
    from resnet.errors import ResNetError

    with pytest.raises(ResNetError, match="precision"):
        prepare_for_inference(nn.Linear(2, 2), "cpu", precision="fp8")
    with pytest.raises(ResNetError, match="fp16 needs a CUDA"):
        prepare_for_inference(nn.Linear(2, 2), "cpu", precision="fp16")
