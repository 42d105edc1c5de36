"""The one progress helper: drawn on a terminal, silent when quiet or when stderr is not a terminal."""

from __future__ import annotations

import io
import sys

from resnet.progress import bars_enabled, progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_forced_bar_reports_the_counts():
    out = io.StringIO()
    assert list(progress(range(7), desc="decoding", file=out, force=True, leave=True)) == list(range(7))
    assert "decoding" in out.getvalue() and "7/7" in out.getvalue()


def test_total_may_be_given_for_iterators_without_length():
    out = io.StringIO()
    assert sum(progress(iter(range(5)), total=5, file=out, force=True, leave=True)) == 10
    assert "5/5" in out.getvalue()


def test_silent_when_quiet_even_if_forced_or_on_a_terminal(monkeypatch):
    term = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert list(progress(range(3), quiet=True)) == [0, 1, 2]
    out = io.StringIO()
    assert list(progress(range(3), quiet=True, file=out, force=True)) == [0, 1, 2]
    assert term.getvalue() == "" and out.getvalue() == ""


def test_silent_when_stderr_is_not_a_terminal(monkeypatch):
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    assert not bars_enabled()
    assert list(progress(range(3), desc="x")) == [0, 1, 2]
    assert pipe.getvalue() == ""


def test_drawn_on_stderr_when_it_is_a_terminal(monkeypatch):
    term = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert bars_enabled() and not bars_enabled(quiet=True)
    assert list(progress(range(4), desc="measuring", leave=True)) == [0, 1, 2, 3]
    assert "measuring" in term.getvalue() and "4/4" in term.getvalue()


# -- the commands and library calls that use it ------------------------------------------------------


def test_evaluate_draws_a_bar_of_batches_unless_quiet(monkeypatch):
    import torch
    from torch import nn

    from resnet.evaluate import evaluate

    term = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", term)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    batches = [(torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 0]))] * 3
    evaluate(model, batches, quiet=True)
    assert term.getvalue() == ""
    assert evaluate(model, batches, desc="validating").images == 12
    assert "validating" in term.getvalue() and "/3" in term.getvalue()


def test_gradient_flow_counts_its_steps_unless_quiet(monkeypatch):
    import itertools

    import torch

    import resnet
    from resnet.analysis.gradients import gradient_flow

    term = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", term)
    model = resnet.create_model("cifar_plain", depth=8)
    measure = (torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,)))
    batches = itertools.repeat(measure)
    gradient_flow(model, measure, batches, steps=2, name="plain8", quiet=True)
    assert term.getvalue() == ""
    gradient_flow(model, measure, batches, steps=2, name="plain8")
    assert "plain8: SGD steps" in term.getvalue() and "/2" in term.getvalue()


def test_resnet_eval_quiet_flag(trained_run, monkeypatch, capsys):
    from resnet.cli import main

    term = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert main(["eval", str(trained_run), "--device", "cpu", "--quiet"]) == 0
    assert "evaluating" not in term.getvalue()
    assert main(["eval", str(trained_run), "--device", "cpu"]) == 0
    assert "evaluating" in term.getvalue()
    assert "top-1 error" in capsys.readouterr().out
