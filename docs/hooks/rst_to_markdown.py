"""Griffe extension: the reST of the project's docstrings as Markdown for mkdocstrings.

The docstrings are numpy style with a few reStructuredText constructs that Python-Markdown
does not know. Before mkdocstrings parses a docstring this extension rewrites them:

- Sphinx roles (``:class:`~a.B```, ``:func:``, ``:mod:``, ...) become optional cross
  references (a link when the target is documented, plain code otherwise);
- ``:math:`x``` becomes ``$x$`` and a ``.. math::`` block a ``$$ ... $$`` block
  (rendered by ``pymdownx.arithmatex``);
- a paragraph ending in ``::`` introduces a fenced code block;
- a simple table (``====  ====`` borders) becomes a Markdown table;
- runs of ``>>>`` doctest lines (with their expected output) become ``pycon`` blocks;
- a list that follows a paragraph line gets the blank line Markdown needs.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(class|mod|func|meth|attr|data|obj|exc|const):`(~?)([^`]+)`")
MATH_ROLE = re.compile(r":math:`([^`]+)`")
TABLE_BORDER = re.compile(r"^(\s*)=+(?:\s+=+)+\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+\.)\s+\S")


def _role(match: re.Match[str]) -> str:
    short, target = match.group(2), match.group(3).strip()
    if "<" in target and target.endswith(">"):  # :class:`title <target>`
        title, target = (part.strip() for part in target[:-1].split("<", 1))
    else:
        target = target.lstrip(".~")
        title = target.rsplit(".", 1)[-1] if short else target
    if match.group(1) in ("func", "meth"):
        title += "()"
    return (
        f'<autoref identifier="{html.escape(target)}" optional>'
        f"<code>{html.escape(title)}</code></autoref>"
    )


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block_end(lines: list[str], start: int, parent_indent: int) -> int:
    """Index after the indented block that starts at or after ``start``."""
    end = start
    last = start
    while end < len(lines):
        line = lines[end]
        if line.strip():
            if _indent(line) <= parent_indent:
                break
            last = end + 1
        end += 1
    return last


def _dedent(block: list[str]) -> list[str]:
    width = min((_indent(line) for line in block if line.strip()), default=0)
    return [line[width:] for line in block]


def _table(lines: list[str], start: int) -> tuple[list[str], int] | None:
    """A simple table starting at the border ``lines[start]``: (markdown lines, end)."""
    border = lines[start]
    pad = _indent(border)
    spans = [(m.start(), m.end()) for m in re.finditer(r"=+", border)]
    rows: list[list[str]] = []
    borders = 1
    i = start + 1
    header_rows = 0
    while i < len(lines) and borders < 3:
        line = lines[i]
        if TABLE_BORDER.match(line) and _indent(line) == pad:
            borders += 1
            if borders == 2:
                header_rows = len(rows)
            i += 1
            continue
        if not line.strip():
            i += 1
            continue
        cells = []
        for n, (lo, hi) in enumerate(spans):
            hi = len(line) if n == len(spans) - 1 else spans[n + 1][0]
            cells.append(line[lo:hi].strip())
        if rows and not cells[0] and borders == 2:  # continuation of the previous row
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
        else:
            rows.append(cells)
        i += 1
    if borders < 3 or not header_rows:
        return None
    indent = " " * pad
    head = [" ".join(col).strip() for col in zip(*rows[:header_rows], strict=True)]
    out = ["", indent + "| " + " | ".join(head) + " |"]
    out.append(indent + "|" + "---|" * len(head))
    for row in rows[header_rows:]:
        out.append(indent + "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    out.append("")
    return out, i


def rst_to_markdown(text: str) -> str:
    """Rewrite the reST constructs of a docstring as Markdown (see the module docstring)."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    in_fence = False
    list_indent: int | None = None  # indentation of the list being written, if any
    while i < len(lines):
        line = lines[i]
        if FENCE.match(line):
            in_fence = not in_fence
            out.append(line)
            i += 1
            continue
        if in_fence:
            out.append(line)
            i += 1
            continue
        stripped = line.strip()
        pad = " " * _indent(line)
        if stripped == ".. math::":
            end = _block_end(lines, i + 1, _indent(line))
            body = [b for b in _dedent(lines[i + 1 : end]) if b.strip()]
            out += ["", pad + "$$", *(pad + b for b in body), pad + "$$", ""]
            i = end
            continue
        if stripped.endswith("::") and not stripped.startswith(".."):
            end = _block_end(lines, i + 1, _indent(line))
            if end > i + 1:
                intro = stripped[:-2].rstrip()
                if intro:
                    out.append(pad + _inline(intro) + ":")
                body = _dedent(lines[i + 1 : end])
                while body and not body[0].strip():
                    body.pop(0)
                out += ["", pad + "```python", *(pad + b for b in body), pad + "```", ""]
                i = end
                continue
        if TABLE_BORDER.match(line):
            table = _table(lines, i)
            if table is not None:
                rows, i = table
                out += [_inline(row) for row in rows]
                continue
        if stripped.startswith(">>>") and (not out or not out[-1].strip().startswith("```")):
            end = i
            while end < len(lines) and lines[end].strip():
                end += 1
            block = [b[_indent(line) :] if b.strip() else b for b in lines[i:end]]
            out += ["", pad + "```pycon", *(pad + b for b in block), pad + "```", ""]
            i = end
            continue
        if stripped:  # Markdown needs a blank line between a paragraph and a list
            if LIST_ITEM.match(line):
                if list_indent != _indent(line) and out and out[-1].strip():
                    out.append("")
                list_indent = _indent(line)
            elif list_indent is not None and _indent(line) <= list_indent:
                list_indent = None
        out.append(_inline(line))
        i += 1
    return "\n".join(out)


def _inline(line: str) -> str:
    line = MATH_ROLE.sub(lambda m: f"${m.group(1)}$", line)
    return ROLE.sub(_role, line)


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring once, when griffe has loaded its object."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and not getattr(obj.docstring, "_rst_done", False):
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
            obj.docstring._rst_done = True  # type: ignore[attr-defined]


DOCSTRING_MARKER = re.compile(r"^<!-- docstring: (\S+) -->$", re.M)
SECTION_TITLE = re.compile(r"^(\S[^\n]*)\n-{3,}[ \t]*$", re.M)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """MkDocs hook: ``<!-- docstring: package.module -->`` -> that module's docstring.

    For prose pages that quote a module's docstring without registering the module a
    second time as a cross-reference target (the API reference owns it).
    """
    import importlib
    import inspect

    def docstring(match: re.Match[str]) -> str:
        doc = inspect.getdoc(importlib.import_module(match.group(1)))
        if not doc:
            raise ValueError(f"{match.group(1)} has no docstring to quote")
        # numpy section titles ("Model" over dashes) as small headings under the page's own
        doc = SECTION_TITLE.sub(lambda m: f"#### {m.group(1)}", doc)
        return rst_to_markdown(doc)

    return DOCSTRING_MARKER.sub(docstring, markdown)
