"""The small-image and mean-image caches: one entry per folder however it is named, listed and cleared."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
import torch

from resnet.cli import main
from resnet.data import cache as cache_mod
from resnet.data import fit_normalization, load_dataset
from resnet.data.cache_entries import list_entries
from resnet.errors import ResNetError
from test_data_folder import save, small_folder


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_relative_absolute_and_symlinked_names_share_one_entry(tmp_path, monkeypatch):
    small_folder(tmp_path / "data")
    (tmp_path / "link").symlink_to(tmp_path / "data")
    cache = str(tmp_path / "cache")
    monkeypatch.chdir(tmp_path)
    first = load_dataset("imagefolder", "data", cache_dir=cache)
    for name in (str(tmp_path / "data"), "./data/", "link", str(tmp_path / "link")):
        b = load_dataset("imagefolder", name, cache_dir=cache)
        assert torch.equal(b.train.images, first.train.images) and torch.equal(b.train.labels, first.train.labels)
    assert len(list((tmp_path / "cache").glob("images-*.npy"))) == 1


def test_skipped_images_are_left_out_whichever_name_loads_the_entry(tmp_path, monkeypatch):
    small_folder(tmp_path / "d")
    (tmp_path / "d" / "ant" / "zz.png").write_bytes(b"not an image")
    cache = str(tmp_path / "c")
    monkeypatch.chdir(tmp_path)
    a = load_dataset("imagefolder", "d", cache_dir=cache, skip_bad_images=True)
    b = load_dataset("imagefolder", str(tmp_path / "d"), cache_dir=cache, skip_bad_images=True)
    assert len(a.train) == len(b.train) == 9 and torch.equal(a.train.labels, b.train.labels)
    assert torch.equal(a.train.images, b.train.images)
    assert b.skipped == [str((tmp_path / "d" / "ant" / "zz.png").resolve())]


def test_entry_records_source_and_date_and_is_listed(tmp_path, capsys):
    small_folder(tmp_path / "data")
    load_dataset("imagefolder", str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
    [entry] = list_entries(tmp_path / "cache")
    assert entry.kind == "images" and entry.images == 9 and entry.complete
    assert entry.source == str((tmp_path / "data").resolve()) and entry.created.endswith("Z")
    assert entry.size == sum(p.stat().st_size for p in (tmp_path / "cache").iterdir())
    assert main(["cache", "list", "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert entry.key in out and str((tmp_path / "data").resolve()) in out and "1 entry," in out
    assert main(["cache", "list", "--json", "--cache-dir", str(tmp_path / "cache")]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["key"] == entry.key and listed["images"] == 9 and listed["bytes"] == entry.size


def test_mean_image_entry_is_listed_with_its_source(tmp_path):
    for i in range(3):
        save(tmp_path / "big" / ("a" if i % 2 else "b") / f"{i}.png", (100, 80), i, fmt="PNG")
    b = load_dataset("imagefolder", str(tmp_path / "big"), cache_dir=str(tmp_path / "cache"))
    assert b.kind == "files"
    fit_normalization(b, "pixel-mean")
    [entry] = list_entries(tmp_path / "cache")
    assert entry.kind == "mean" and entry.images == 3 and entry.source == str((tmp_path / "big").resolve())


def test_clear_by_key_prefix_and_all(tmp_path, capsys):
    cache = tmp_path / "cache"
    small_folder(tmp_path / "one")
    small_folder(tmp_path / "two", per_class=2)
    for name in ("one", "two"):
        load_dataset("imagefolder", str(tmp_path / name), cache_dir=str(cache))
    (cache / "cifar10").mkdir()  # a downloaded dataset: never the cache's to remove
    (cache / "notes.txt").write_text("mine")
    first, second = list_entries(cache)
    assert main(["cache", "clear", first.key[:8], "--cache-dir", str(cache)]) == 0
    assert "removed 1 entry (" in capsys.readouterr().out
    assert [e.key for e in list_entries(cache)] == [second.key]
    assert main(["cache", "clear", "--cache-dir", str(cache)]) == 2  # neither --all nor a key
    assert "give --all or the KEYs" in capsys.readouterr().err
    assert main(["cache", "clear", "ffffffff", "--cache-dir", str(cache)]) == 2
    assert "no such entry" in capsys.readouterr().err
    assert main(["cache", "clear", "--all", "--cache-dir", str(cache)]) == 0
    assert list_entries(cache) == [] and sorted(p.name for p in cache.iterdir()) == ["cifar10", "notes.txt"]
    assert main(["cache", "list", "--cache-dir", str(cache)]) == 0
    assert "is empty" in capsys.readouterr().out


def test_entries_written_before_source_and_date_still_load_and_list(tmp_path, monkeypatch):
    small_folder(tmp_path / "data")
    cache = tmp_path / "cache"
    first = load_dataset("imagefolder", str(tmp_path / "data"), cache_dir=str(cache))
    [sidecar] = cache.glob("images-*.json")
    old = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({k: old[k] for k in ("version", "count", "size", "skipped")}))  # old format
    (cache / "images-0123456789abcdef01234567.json").write_text("{}")  # an orphan sidecar, no .npy

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the cache was valid")

    monkeypatch.setattr(cache_mod, "build_cache", no_decoding)
    again = load_dataset("imagefolder", str(tmp_path / "data"), cache_dir=str(cache))
    assert torch.equal(again.train.images, first.train.images)
    entries = {e.key: e for e in list_entries(cache)}
    assert len(entries) == 2
    assert entries["0123456789abcdef01234567"].complete is False
    current = next(e for k, e in entries.items() if k != "0123456789abcdef01234567")
    assert current.source is None and current.images == 9 and current.created  # the file's date
    assert main(["cache", "list", "--cache-dir", str(cache)]) == 0


def test_one_time_decoding_shows_a_bar_on_a_terminal_unless_quiet(tmp_path, monkeypatch):
    small_folder(tmp_path / "data")
    term = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", term)
    load_dataset("imagefolder", str(tmp_path / "data"), cache_dir=str(tmp_path / "quiet"), quiet=True)
    assert term.getvalue() == ""
    load_dataset("imagefolder", str(tmp_path / "data"), cache_dir=str(tmp_path / "c"))
    assert "reading image headers" in term.getvalue() and "decoding 9 images into the cache" in term.getvalue()


def test_short_or_ambiguous_keys_are_refused(tmp_path):
    from resnet.data.cache_entries import select

    small_folder(tmp_path / "data")
    load_dataset("imagefolder", str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
    entries = list_entries(tmp_path / "cache")
    with pytest.raises(ResNetError, match="at least 4 characters"):
        select(entries, ["ab"])
    assert select(entries, [entries[0].key]) == entries
    assert np.load(entries[0].files[1]).shape[0] == 9  # files sorted: .json, .npy


def test_an_older_entry_that_missed_skipped_files_is_rebuilt(tmp_path):
    small_folder(tmp_path / "d")
    bad = tmp_path / "d" / "ant" / "zz.png"
    bad.write_bytes(b"not an image")
    cache = tmp_path / "c"
    load_dataset("imagefolder", str(tmp_path / "d"), cache_dir=str(cache), skip_bad_images=True)
    [sidecar] = cache.glob("images-*.json")
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "skipped": []}))  # as older versions wrote it
    b = load_dataset("imagefolder", str(tmp_path / "d"), cache_dir=str(cache), skip_bad_images=True)
    assert len(b.train) == 9 and b.skipped == [str(bad.resolve())]
    assert json.loads(sidecar.read_text())["skipped"] == [str(bad.resolve())]
