"""A small Markdown-to-HTML converter for the subset the experiment report emits.

``course_sr.results.report`` writes Markdown; ``--html`` turns it into one self-contained page with
this, so no extra package is needed. Headings, pipe tables, bullets, fenced code, HTML comments,
paragraphs, and inline images, links, code, bold and italics; anything else stays readable text.
"""
from __future__ import annotations

import html as _html
import re


def _inline(text: str) -> str:
    """Escape, then the inline Markdown this report emits: images, links, code, bold, italics."""
    text = _html.escape(text, quote=True)
    text = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2">', text)
    text = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"(?<![\w/])_(.+?)_(?![\w/])", r"<em>\1</em>", text)
    return text.replace("\\|", "|")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def markdown_to_html(text: str, title: str = "report") -> str:
    """A small Markdown-to-HTML converter for what reports hold (no extra package needed).

    Handles ATX headings, pipe tables, ``-``/``*`` bullets, fenced code, HTML comments,
    paragraphs and the inline forms of :func:`_inline`. Anything else stays readable text.
    """
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    para: list[str] = []

    def flush():
        if para:
            out.append("<p>" + " ".join(_inline(p) for p in para) + "</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if s.startswith("```"):
            flush()
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            out.append("<pre><code>" + _html.escape("\n".join(lines[i + 1:j])) + "</code></pre>")
            i = j + 1
            continue
        if s.startswith("<!--"):
            flush()
            out.append(s)
        elif m := re.match(r"(#{1,6})\s+(.*)", s):
            flush()
            n = len(m.group(1))
            out.append(f"<h{n}>{_inline(m.group(2))}</h{n}>")
        elif s.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|$", lines[i + 1].strip()):
            flush()
            rows = ["<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in _cells(s)) + "</tr>"]
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(lines[i])) + "</tr>")
                i += 1
            out.append("<table>\n" + "\n".join(rows) + "\n</table>")
            continue
        elif re.match(r"[-*]\s", s):
            flush()
            items = []
            while i < len(lines) and re.match(r"[-*]\s", lines[i].strip()):
                items.append(f"<li>{_inline(lines[i].strip()[2:])}</li>")
                i += 1
            out.append("<ul>\n" + "\n".join(items) + "\n</ul>")
            continue
        elif not s:
            flush()
        else:
            para.append(s)
        i += 1
    flush()
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.45}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.25em .6em}"
             "th{background:#f2f2f2}img{max-width:100%}code{background:#f4f4f4;padding:0 .2em}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{_html.escape(title)}</title>"
            f"<style>{style}</style></head>\n<body>\n" + "\n".join(out) + "\n</body></html>\n")
