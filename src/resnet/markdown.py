"""Markdown tables, the one text format of every table the project prints or writes."""

from __future__ import annotations

import re
from collections.abc import Sequence

# Characters Markdown reads as syntax inside a line (a table cell, a heading): backslash-escaped.
# Not "_": inside a word (val_split, the settings' names) it is no emphasis, and names stay readable.
_SYNTAX = re.compile(r"([\\`*\[\]|#])")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}  # raw HTML (<script>) shown as text


def _one_line(text: str) -> str:
    return " ".join(str(text).splitlines())


def markdown_escape(text: str) -> str:
    """``text`` as literal Markdown on one line: syntax characters escaped, HTML as entities.

    ``a|b <script>`` becomes ``a\\|b &lt;script&gt;``: a ``|`` no longer splits a table cell, a tag
    is shown, not run, and a newline (which would end a table row) is a space.
    """
    escaped = _SYNTAX.sub(r"\\\1", _one_line(text))
    return "".join(_ENTITIES.get(c, c) for c in escaped)


def markdown_code(text: str) -> str:
    """``text`` as an inline code span on one line, or escaped text where it holds a backtick or HTML.

    CommonMark shows a code span's HTML verbatim, but not every renderer does: a name with ``<``,
    ``>``, ``&`` or a backtick goes through :func:`markdown_escape` instead, so no tag is ever in the file.
    """
    text = _one_line(text)
    if any(c in text for c in "`<>&"):
        return markdown_escape(text)
    return f"`{text}`"


def markdown_table(rows: Sequence[Sequence[str]], escape: bool = False) -> str:
    """A GitHub-flavoured Markdown table; the first row is the header.

    With ``escape``, every cell goes through :func:`markdown_escape` (cells that hold names or values
    from files: a ``|`` or a tag in them cannot break the table).
    """
    if escape:
        rows = [[markdown_escape(c) for c in r] for r in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(" --- " for _ in rows[0]) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows[1:]])
