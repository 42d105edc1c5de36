"""LR schedules: values at the boundaries, warm-up, plateau, the ResNet-110 rule, exact state restore."""

from __future__ import annotations

import json

import pytest

from resnet.train.config import resolve
from resnet.train.schedule import Cosine, Plateau, Schedule, build_schedule


def test_cosine_with_linear_warmup():
    s = build_schedule(resolve({"schedule": "cosine", "warmup_iterations": 10, "lr": 1.0, "iterations": 110}), 110)
    assert s.lr(0) == pytest.approx(0.1) and s.lr(9) == pytest.approx(1.0)
    assert s.lr(60) == pytest.approx(0.5) and s.lr(110) == pytest.approx(0.0)


def test_plateau_drops_after_patience():
    p = Plateau(0.1, 0.1, patience=2, threshold=0.001)
    drops = [p.observe(e) for e in (0.5, 0.4, 0.4, 0.4005, 0.4)]
    assert drops == [False, False, False, False, True] and p.lr(0) == pytest.approx(0.01)


def test_warm_rule_for_resnet110():
    cfg = resolve({"model": "resnet110", "iterations": 1000})
    s = build_schedule(cfg, 1000)
    assert s.lr(0) == 0.01
    assert not s.observe_train_error(100, 0.85)
    assert s.observe_train_error(400, 0.79)
    assert s.lr(401) == 0.1 and not s.observe_train_error(500, 0.9)
    off = build_schedule(cfg.replace(warm_rule="off"), 1000)
    assert off.lr(0) == 0.1


def test_state_restores_exactly_through_json():
    def fresh() -> Schedule:
        return build_schedule(resolve({"schedule": "plateau", "warm_rule": "on", "iterations": 100}), 100)

    a = fresh()
    a.observe_train_error(10, 0.5)
    for e in (0.3, 0.3, 0.3, 0.3, 0.3):
        a.observe_val_error(e)
    b = fresh()
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert b.lr(50) == a.lr(50) == pytest.approx(0.01)
    for e in (0.3, 0.2, 0.3):
        assert a.observe_val_error(e) == b.observe_val_error(e)
    assert a.state_dict() == b.state_dict()


def test_cosine_ends_at_zero_without_warmup():
    assert Cosine(0.1, 100).lr(0) == pytest.approx(0.1) and Cosine(0.1, 100).lr(100) == pytest.approx(0.0)
