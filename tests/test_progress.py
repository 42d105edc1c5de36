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
