"""Names read from results files (families, splits, models, task names) on their way into file names, CSV
and markdown. A results file is input like any other: a family named ``../../x`` must not choose where a
figure is written, a model named ``=HYPERLINK(...)`` must not become a spreadsheet formula, and a task
named ``a | <img src=x onerror=...>`` must not break a table or smuggle markup into a rendered report.
(HTML is escaped with the standard library's ``html.escape`` where the page is built.)
"""

from __future__ import annotations

import re
from pathlib import Path

from icl_generalization.core.errors import UserError

_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
# Spreadsheets (Excel, LibreOffice, Google Sheets) read a cell starting with one of these as a formula;
# OWASP's advice is to prefix a single quote, which they show as text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Backslash first, so the escapes added for the others are not escaped again.
_MARKDOWN_SPECIAL = str.maketrans({"\\": "\\\\", "`": "\\`", "|": "\\|", "[": "\\[", "]": "\\]", "*": "\\*",
                                   "<": "&lt;", ">": "&gt;", "&": "&amp;", "\n": " ", "\r": " "})


def slug(name: str) -> str:
    """A file-name stem made of letters, digits, ``_`` and ``-`` only (``reversal_curse`` stays as it is)."""
    cleaned = _UNSAFE_FILE_CHARS.sub("-", name).strip("-")
    return cleaned or "unnamed"


def unique_slugs(names: list[str]) -> dict[str, str]:
    """One distinct slug per name; names that slug alike get ``-2``, ``-3``... in their given order."""
    taken: set[str] = set()
    out: dict[str, str] = {}
    for name in names:
        base = candidate = slug(name)
        index = 1
        while candidate in taken:
            index += 1
            candidate = f"{base}-{index}"
        taken.add(candidate)
        out[name] = candidate
    return out


def inside(folder: Path, file_name: str) -> Path:
    """``folder / file_name``, refused unless it resolves to a direct child of ``folder``."""
    path = (folder / file_name).resolve()
    if path.parent != folder.resolve():
        raise UserError(f"refusing to write {file_name!r}: it would land outside {folder}")
    return path


def csv_text(value: str) -> str:
    """A text cell that a spreadsheet shows as text, never evaluates. Numbers are not passed through here:
    the writer emits them as numbers (so ``-0.1`` stays numeric); only names from the data are text."""
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def markdown_text(value: str) -> str:
    """Text for a markdown table cell, heading or list item: pipes, brackets, emphasis, code and HTML are
    escaped and line breaks flattened, so a name shows literally and cannot open a link, tag or column."""
    return value.translate(_MARKDOWN_SPECIAL)


def markdown_code(value: str) -> str:
    """``value`` as an inline code span: fenced with more backticks than it contains (CommonMark's rule, as
    escapes do not work inside code), so a path or fingerprint shows literally; ordinary text gets `x`."""
    flat = value.replace("\n", " ").replace("\r", " ")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"
