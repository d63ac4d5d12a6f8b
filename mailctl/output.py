"""Tables for people, JSON for scripts (``--json``)."""

from __future__ import annotations

import json


def table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    line = "+" + "+".join("-" * (widths[c] + 2) for c in columns) + "+"
    out = [line, "| " + " | ".join(c.ljust(widths[c]) for c in columns) + " |", line]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) + " |")
    out.append(line)
    return "\n".join(out)


def show_json(doc, indent: int | None = 2) -> None:
    print(json.dumps(doc, indent=indent))


def emit(rows: list[dict] | dict, columns: list[str], as_json: bool) -> None:
    """``rows`` as a table of ``columns``, or all of it as JSON."""
    if as_json:
        show_json(rows)
    else:
        print(table(rows if isinstance(rows, list) else [rows], columns))
