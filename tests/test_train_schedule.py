"""LR schedules: values at the boundaries, warm-up, plateau, the ResNet-110 rule, exact state restore."""

from __future__ import annotations

import json

import pytest

from resnet.errors import ResNetError
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


def _cfg(schedule: str, **kw):
    return resolve({"schedule": schedule, "lr": 0.1, "iterations": 1000, **kw})


def test_a_new_length_keeps_the_lr_and_spreads_the_rest_of_a_linear_decay():
    cfg = _cfg("linear", warmup_iterations=200)
    planned = build_schedule(cfg, 3416)
    # Shortened at step 1800 to 3000, lengthened again at 2400 to 3300.
    short = build_schedule(cfg, 3000, [[1800, 3416, 3000]])
    again = build_schedule(cfg, 3300, [[1800, 3416, 3000], [2400, 3000, 3300]])
    assert all(short.lr(s) == planned.lr(s) for s in range(1801))  # the steps taken keep their LR
    assert all(again.lr(s) == short.lr(s) for s in range(2401))
    # From each change a straight line from the LR it had to 0 at the new end.
    lr_1800, lr_2400 = planned.lr(1800), short.lr(2400)
    assert lr_1800 == pytest.approx(0.1 * (3416 - 1800) / (3416 - 200))
    assert short.lr(2400) == pytest.approx(lr_1800 * (3000 - 2400) / (3000 - 1800))
    assert again.lr(2850) == pytest.approx(lr_2400 / 2) and again.lr(3300) == pytest.approx(0.0, abs=1e-12)
    # Rebuilt for the new length instead, the LR would have dropped by 15% at the change.
    assert build_schedule(cfg, 3000).lr(1800) == pytest.approx(0.853 * lr_1800, abs=1e-3 * lr_1800)


def test_a_new_length_moves_the_milestones_ahead_in_proportion_and_keeps_those_passed():
    cfg = _cfg("multistep")  # milestones at 50% and 75%
    assert build_schedule(cfg, 1000).milestone_steps() == [500, 750]
    # Lengthened at step 600 to 1400: the passed one stays at 500 (the LR does not go back up tenfold),
    # the one at 750 moves to 600 + 150 x 800 / 400 = 900.
    longer = build_schedule(cfg, 1400, [[600, 1000, 1400]])
    assert longer.milestone_steps() == [500, 900]
    assert longer.lr(599) == longer.lr(600) == longer.lr(899) == pytest.approx(0.01)
    assert longer.lr(900) == pytest.approx(0.001)
    # Shortened at step 300 to 700: both ahead, at 300 + 200 x 400 / 700 = 414.3 and 300 + 450 x 400 / 700 = 557.1.
    shorter = build_schedule(cfg, 700, [[300, 1000, 700]])
    assert shorter.milestone_steps() == [415, 558]
    lrs = [shorter.lr(s) for s in (414, 415, 557, 558)]
    assert lrs == pytest.approx([0.1, 0.01, 0.01, 0.001])


def test_length_changes_that_do_not_lead_to_the_length_are_refused():
    with pytest.raises(ResNetError, match=r"the length changes \[\[300, 1000, 700\]\] do not lead to 800 iterations"):
        build_schedule(_cfg("linear"), 800, [[300, 1000, 700]])
    with pytest.raises(ResNetError, match="do not lead to"):
        build_schedule(_cfg("linear"), 700, [[300, 1000, 700], [500, 800, 700]])
    # A schedule that ignores the length ignores its changes.
    assert build_schedule(_cfg("constant"), 700, [[300, 1000, 900]]).lr(650) == 0.1
