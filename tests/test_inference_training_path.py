"""A few training steps of the fast path (trainer's step: channels-last, foreach) follow the plain loss trajectory."""

from __future__ import annotations

import argparse

import torch

from resnet import create_model
from resnet.bench import _baseline_train, _fast_train, settings_from_args


def _settings():
    args = argparse.Namespace(device="cpu", models=["resnet20"], compile="off", compile_mode=None,
                              train_batch=None, infer_batch=None, warmup=0, rounds=1, iters=1, quick=True, isolate="off")
    return settings_from_args(args)


def _pair(name="resnet20", **options):
    torch.manual_seed(0)
    a = create_model(name, **options)
    b = create_model(name, **options)
    b.load_state_dict(a.state_dict())
    return a.train(), b.train()


def _same_trajectory(got, want):
    """The first steps agree to float rounding; later ones drift a little (rounding is amplified by lr 0.1)."""
    assert torch.allclose(got[:3], want[:3], rtol=1e-4, atol=1e-5), (got, want)
    assert torch.allclose(got, want, rtol=5e-3, atol=1e-4), (got, want)


def _losses(step, n=6):
    return torch.stack([step().detach() for _ in range(n)])


def test_fast_training_step_matches_textbook_loop():
    plain, fast = _pair()
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    want = _losses(_baseline_train(plain, x, y))
    step, described = _fast_train(fast, x, y, _settings())
    got = _losses(step)
    assert "channels_last on" in described
    assert fast.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert want[-1] < want[0]  # it does train: the trajectory is not flat
    _same_trajectory(got, want)


def test_channels_last_and_foreach_sgd_match_plain_sgd():
    plain, fast = _pair("resnet20", shortcut="B")
    fast = fast.to(memory_format=torch.channels_last)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def stepper(model, x, **sgd):
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, **sgd)

        def step():
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss
        return step

    want = _losses(stepper(plain, x, foreach=False))
    got = _losses(stepper(fast, x.contiguous(memory_format=torch.channels_last), foreach=True))
    _same_trajectory(got, want)
