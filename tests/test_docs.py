"""The documentation against the tool: README.md and docs/*.md.

* every ``resnet ...`` command shown in a shell or text code block parses with the real parser;
  an error shown under a ``$ resnet ...`` line is the error the parser gives;
* output shown for ``$ resnet summary ...`` and tables the tool prints (the models table in docs/,
  the published-weights table) equal what the tool prints now; TOML examples resolve as configs;
* every relative link (and its ``#anchor``) points at something that exists.

The README's models table is checked by tests/test_complexity.py.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import shlex
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest

from resnet.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]

SHELL_LANGS = {"bash", "sh", "shell", "console", "text", ""}
OPERATORS = {"&&", "||", "|", "|&", ";", "&"}
REDIRECTS = {">", ">>", "<", ">&", "&>"}
WRAPPERS = {"time", "/usr/bin/time", "env", "nohup", "exec"}
LOOKS_LIKE_RESNET = re.compile(r"(?:^|[\s;&|])(?:-m\s+)?resnet(?:\s|$)")
OUTPUT_LINE = re.compile(r"^\s*resnet(?: [\w-]+)*: ")  # "resnet train: error: ...", "resnet: stopped ..."


def doc_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


@dataclass
class Block:
    path: Path
    lang: str
    line: int  # 1-based line number of the first line inside the fence
    lines: list[str]


def code_blocks(path: Path) -> list[Block]:
    blocks, current = [], None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fence = re.match(r"^\s*```\s*([\w+-]*)", line)
        if current is None and fence:
            current = Block(path, fence.group(1).lower(), number + 1, [])
        elif current is not None and re.match(r"^\s*```\s*$", line):
            blocks.append(current)
            current = None
        elif current is not None:
            current.lines.append(line)
    assert current is None, f"{path}: unclosed code block from line {current.line - 1}"
    return blocks


@dataclass
class Shown:
    """A command line of a code block, with the output shown under it (``$ `` blocks only)."""

    path: Path
    line: int
    text: str
    output: list[str]

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path}:{self.line}"


def command_lines(block: Block) -> list[Shown]:
    """The command lines of a block, continuation lines joined.

    In a block with ``$ `` prompts only the prompted lines are commands and the lines under them are
    their output; in any other block every line is a candidate.
    """
    prompted = any(line.startswith("$ ") for line in block.lines)
    shown: list[Shown] = []
    i = 0
    while i < len(block.lines):
        line, start = block.lines[i], block.line + i
        i += 1
        if prompted:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        elif OUTPUT_LINE.match(line):
            continue
        while line.rstrip().endswith("\\") and i < len(block.lines):
            line = line.rstrip()[:-1] + " " + block.lines[i].strip()
            i += 1
        output = []
        if prompted:
            while i < len(block.lines) and not block.lines[i].startswith("$ "):
                output.append(block.lines[i])
                i += 1
        shown.append(Shown(block.path, start, line, output))
    return shown


def resnet_invocations(line: str) -> list[list[str]]:
    """The ``resnet`` argument vectors in one shell line: ``resnet ...``, ``python -m resnet ...``,
    ``torchrun ... -m resnet ...``, after env-var prefixes, in each part of a pipe or ``&&`` chain.
    ``...`` (the rest of a command, left out) is dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError as e:  # unbalanced quotes: fine in output or a file tree, not in a resnet command
        if LOOKS_LIKE_RESNET.search(line):
            raise ValueError(f"not a valid shell line ({e}): {line.strip()}") from None
        return []
    segments, current = [], []
    skip_next = False
    for token in tokens:
        if skip_next:
            skip_next = False
        elif token in OPERATORS:
            segments.append(current)
            current = []
        elif token in REDIRECTS:
            skip_next = True
        else:
            current.append(token)
    segments.append(current)
    found = []
    for words in segments:
        while words and (re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]) or words[0] in WRAPPERS):
            words = words[1:]
        if not words:
            continue
        if words[0] == "resnet":
            argv = words[1:]
        elif Path(words[0]).name.startswith(("python", "torchrun")) and any(
            a == "-m" and b == "resnet" for a, b in zip(words, words[1:])
        ):
            argv = words[next(k for k in range(len(words) - 1) if words[k : k + 2] == ["-m", "resnet"]) + 2 :]
        else:
            continue
        found.append([w for w in argv if w != "..."])
    return found


@dataclass
class Command:
    shown: Shown
    argv: list[str]
    error: str | None = None  # the line is not valid shell

    def __str__(self) -> str:
        return f"{self.shown.where}: resnet {shlex.join(self.argv)}"


def commands(root: Path = ROOT) -> list[Command]:
    found = []
    for path in doc_files(root):
        for block in code_blocks(path):
            if block.lang in SHELL_LANGS:
                for s in command_lines(block):
                    try:
                        found.extend(Command(s, argv) for argv in resnet_invocations(s.text))
                    except ValueError as e:
                        found.append(Command(s, [], str(e)))
    return found


@functools.lru_cache(maxsize=1)
def _parser():
    return build_parser()


def parse(argv: list[str]) -> tuple[int | None, str]:
    """(exit status or None if it parsed, what the parser wrote on stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            _parser().parse_args(argv)
        except SystemExit as e:
            return (e.code if isinstance(e.code, int) else 1), err.getvalue()
    return None, err.getvalue()


def shown_parse_error(command: Command) -> str | None:
    """The argparse error shown under a ``$ resnet SUB ...`` line ("resnet SUB: error: ..."), if any.
    ``resnet: error: ...`` comes from running the command, after parsing."""
    first = next((line for line in command.shown.output if line.strip()), "")
    return first if re.match(r"^resnet [\w-]+(?: [\w-]+)*: error: ", first) else None


ALL_COMMANDS = commands()


def test_the_docs_show_commands() -> None:
    # The extractor found the commands: if it silently found none, every test below would pass.
    assert len(ALL_COMMANDS) >= 60
    assert len([c for c in ALL_COMMANDS if c.shown.path.name == "README.md"]) >= 8
    assert {c.argv[0] for c in ALL_COMMANDS} >= {
        "train",
        "eval",
        "predict",
        "export",
        "experiment",
        "analyze",
        "summary",
        "weights",
        "cache",
        "report",
        "bench",
    }


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=str)
def test_every_shown_command_parses(command: Command) -> None:
    assert command.error is None, f"{command.shown.where}: {command.error}"
    status, stderr = parse(command.argv)
    expected = shown_parse_error(command)
    if expected is not None:  # the docs show this mistake and the one-line error it gets
        assert status == 2, f"{command}: shown failing with {expected!r}, but it parses"
        assert stderr.strip() == expected.strip(), f"{command}: the error shown is not the parser's"
    else:
        assert status is None, f"{command}: does not parse: {stderr.strip()}"


def test_the_command_extractor() -> None:
    text = (
        "OMP_NUM_THREADS=1 resnet train --lr 0.1 \\\n    --epochs 2   # a comment, with 'quotes\n"
        "pip install -e . && resnet eval runs/x --split all | tee log\n"
        "python -m resnet predict RUN_DIR cat.jpg\n"
        "torchrun --nproc-per-node 8 -m resnet train --sync-bn\n"
        "resnet train --nproc 8 ...\n"
        "python benchmarks/bench_data.py --data x\n"
        "    # only a comment\n"
    )
    block = Block(Path("x.md"), "bash", 1, text.splitlines())
    found = [(s.line, argv) for s in command_lines(block) for argv in resnet_invocations(s.text)]
    assert found == [
        (1, ["train", "--lr", "0.1", "--epochs", "2"]),
        (3, ["eval", "runs/x", "--split", "all"]),
        (4, ["predict", "RUN_DIR", "cat.jpg"]),
        (5, ["train", "--sync-bn"]),
        (6, ["train", "--nproc", "8"]),
    ]
    prompted = Block(
        Path("x.md"),
        "text",
        1,
        ["$ resnet train --modle x", "resnet train: error: ...", "resnet summary resnet50", "$ resnet cache list"],
    )
    lines = command_lines(prompted)
    assert [(s.text, s.output) for s in lines] == [
        ("resnet train --modle x", ["resnet train: error: ...", "resnet summary resnet50"]),
        ("resnet cache list", []),
    ]
    assert parse(["train", "--modle", "resnet20"])[0] == 2  # a wrong option fails
    assert parse(["train", "--model", "resnet20"])[0] is None


# -- shown output and generated tables ---------------------------------------------------------------

SUMMARIES = [c for c in ALL_COMMANDS if c.argv[:1] == ["summary"] and c.shown.output and "--weights" not in c.argv]


def run_tool(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 0
    return capsys.readouterr().out


def _lines(text: str | list[str]) -> list[str]:
    lines = text.splitlines() if isinstance(text, str) else text
    lines = [line.rstrip() for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def test_summaries_are_shown():
    assert len(SUMMARIES) >= 2


@pytest.mark.parametrize("command", SUMMARIES, ids=str)
def test_shown_summary_output_is_the_tools(command: Command, capsys: pytest.CaptureFixture[str]) -> None:
    assert _lines(command.shown.output) == _lines(run_tool(command.argv, capsys)), (
        f"{command}: the output shown is not what the command prints now"
    )


def test_models_tables_in_docs_are_the_tools_output(capsys: pytest.CaptureFixture[str]) -> None:
    table = run_tool(["summary", "--all"], capsys).strip()
    for path in doc_files()[1:]:  # README.md: tests/test_complexity.py
        for match in re.finditer(r"<!-- models-table -->\n(.*?)\n<!-- /models-table -->", path.read_text(), re.S):
            assert match.group(1).strip() == table, f"{path.name}: the models table is not `resnet summary --all`"


WEIGHTS_HEADER = "| model | weights | file | acc@1 | acc@5 | size |"


def _markdown_rows(text: str, header: str) -> list[list[list[str]]]:
    tables, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if " ".join(line.split()) == header:
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append([cell.strip() for cell in row.strip().strip("|").split("|")])
            tables.append(rows)
    return tables


def test_published_weights_tables_are_the_tools_output(capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RESNET_CACHE", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    printed = run_tool(["weights"], capsys).splitlines()
    start = next(i for i, line in enumerate(printed) if line.startswith("-----"))
    tool_rows = []
    for line in printed[start + 1 :]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) < 6:
            break
        tool_rows.append(cells[:6])
    assert len(tool_rows) >= 12
    tables = [(p, rows) for p in doc_files() for rows in _markdown_rows(p.read_text(), WEIGHTS_HEADER)]
    assert tables, "the published-weights table is gone from the docs"
    for path, rows in tables:
        assert rows == tool_rows, f"{path.name}: the published-weights table is not what `resnet weights` prints"


def test_toml_examples_resolve(tmp_path) -> None:
    from resnet.train.config import resolve

    blocks = [b for p in doc_files() for b in code_blocks(p) if b.lang == "toml"]
    assert blocks
    for n, block in enumerate(blocks):
        path = tmp_path / f"example{n}.toml"
        path.write_text("\n".join(block.lines) + "\n")
        resolve(config_file=path)  # a ResNetError names the bad option


# -- links -------------------------------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _prose(path: Path) -> str:
    """The text outside code blocks and inline code."""
    text = re.sub(r"^\s*```.*?^\s*```\s*$", "", path.read_text(), flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def github_anchors(path: Path) -> set[str]:
    """The ``#anchors`` GitHub gives a Markdown file's headings."""
    text = re.sub(r"^\s*```.*?^\s*```\s*$", "", path.read_text(), flags=re.S | re.M)
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for match in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M):
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(1)).replace("`", "")
        slug = "".join(ch for ch in title.lower() if ch in "-_ " or unicodedata.category(ch)[0] in "LN").replace(
            " ", "-"
        )
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in LINK.findall(_prose(path)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target}: no such file")
            continue
        if anchor and dest.suffix == ".md" and anchor not in github_anchors(dest):
            broken.append(f"{target}: no heading with that anchor in {dest.name}")
    return broken


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files_that_exist(path: Path) -> None:
    assert not broken_links(path), f"{path.relative_to(ROOT)}: broken links: {broken_links(path)}"


def test_the_link_check_sees_links() -> None:
    readme = ROOT / "README.md"
    assert len(LINK.findall(_prose(readme))) >= 10
    assert {"quick-start", "the-networks"} <= github_anchors(readme)
    assert "why-resnet-56-starts-slowly-at-lr-01-measured" in github_anchors(ROOT / "docs" / "experiments.md")
