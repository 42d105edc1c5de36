"""A few training steps of the fast path (trainer's step: channels-last, foreach) follow the plain loss trajectory.

Why these comparisons hold on every CPU: two float32 trajectories at LR 0.1 are not comparable after a
few steps. The kernels of NCHW and channels-last convolutions sum in different orders, and how
different depends on the CPU (AVX2, AVX-512, AMX pick different oneDNN kernels); each step then
amplifies the rounding difference of the last (measured on Sapphire Rapids: step 6 0.9% apart). So the
trajectories are compared in float64, where rounding is ~1e-16 and six steps of amplification stay far
below the tolerance, and the float32 kernels are compared one step at a time from the *same* state
(parameters, BN statistics and momentum copied), where only one step's rounding separates them.
"""

from __future__ import annotations

import argparse
import copy

import torch

from resnet import create_model
from resnet.bench import _baseline_train, _fast_train, settings_from_args

LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 1e-4


def _settings():
    args = argparse.Namespace(
        device="cpu",
        models=["resnet20"],
        compile="off",
        compile_mode=None,
        train_batch=None,
        infer_batch=None,
        warmup=0,
        rounds=1,
        iters=1,
        quick=True,
        isolate="off",
    )
    return settings_from_args(args)


def _pair(name="resnet20", dtype=torch.float32, **options):
    torch.manual_seed(0)
    a = create_model(name, **options).to(dtype)
    b = create_model(name, **options).to(dtype)
    b.load_state_dict(a.state_dict())
    return a.train(), b.train()


def _batch(dtype=torch.float32):
    torch.manual_seed(1)
    return torch.randn(8, 3, 32, 32, dtype=dtype), torch.randint(0, 10, (8,))


def _losses(step, n=6):
    return torch.stack([step().detach() for _ in range(n)])


def _same_float64_trajectory(got, want):
    # float64 rounding (~1e-16) amplified over 6 steps is still many orders below 1e-7; a wrong step
    # (momentum, weight decay, a missing zero_grad) moves the loss by far more from the second step on.
    assert got.dtype == want.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=1e-7, atol=0)


def _sgd(model, foreach):
    return torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, foreach=foreach)


def _step(model, opt, x, y):
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.detach()


def test_fast_training_step_matches_textbook_loop():
    plain, fast = _pair(dtype=torch.float64)
    x, y = _batch(torch.float64)
    want = _losses(_baseline_train(plain, x, y))
    step, described = _fast_train(fast, x, y, _settings())
    got = _losses(step)
    assert "channels_last on" in described
    assert fast.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert want[-1] < want[0]  # it does train: the trajectory is not flat
    _same_float64_trajectory(got, want)


def test_channels_last_and_foreach_sgd_match_plain_sgd_float64():
    plain, fast = _pair("resnet20", dtype=torch.float64, shortcut="B")
    fast = fast.to(memory_format=torch.channels_last)
    x, y = _batch(torch.float64)
    opt_plain, opt_fast = _sgd(plain, foreach=False), _sgd(fast, foreach=True)
    want = torch.stack([_step(plain, opt_plain, x, y) for _ in range(6)])
    got = torch.stack([_step(fast, opt_fast, x.contiguous(memory_format=torch.channels_last), y) for _ in range(6)])
    assert want[-1] < want[0]
    _same_float64_trajectory(got, want)


def test_channels_last_and_foreach_sgd_match_plain_sgd_float32_step_by_step():
    """The float32 kernels of both paths, each step taken from the same state (no amplification)."""
    plain, fast = _pair("resnet20", shortcut="B")
    fast = fast.to(memory_format=torch.channels_last)
    x, y = _batch()
    x_cl = x.contiguous(memory_format=torch.channels_last)
    opt_plain, opt_fast = _sgd(plain, foreach=False), _sgd(fast, foreach=True)
    for step in range(6):
        fast.load_state_dict(plain.state_dict())  # in place: the optimizer keeps its parameters
        opt_fast.load_state_dict(copy.deepcopy(opt_plain.state_dict()))  # a copy, or both share the buffers
        before = [p.detach().clone() for p in plain.parameters()]
        want, got = _step(plain, opt_plain, x, y), _step(fast, opt_fast, x_cl, y)
        # One float32 forward pass through 20 layers: measured 3e-7 apart on AVX-512 and AVX2 alike.
        torch.testing.assert_close(got, want, rtol=1e-4, atol=0, msg=f"step {step}")
        # The whole update (lr x (momentum + gradient + weight decay)) of all parameters. Measured up to
        # 2e-3 apart (relative norm): the gradient of a batch of 8 that is nearly fitted sums terms that
        # cancel, so rounding weighs more in it than in the loss. A wrong kernel or a lost term is O(1).
        update_want = torch.cat([(p.detach() - b).flatten() for p, b in zip(plain.parameters(), before)])
        update_got = torch.cat([(p.detach() - b).flatten() for p, b in zip(fast.parameters(), before)])
        relative = ((update_got - update_want).norm() / update_want.norm()).item()
        assert relative < 5e-2, f"step {step}: updates {relative:.2e} apart"
