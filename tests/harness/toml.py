"""The one TOML writer for test configs (node, coordinator, archive)."""

from __future__ import annotations

import math
import re

_BARE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def string(s: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def key(k: str) -> str:
    """A key as written: bare when it can be (dots make a dotted key), else quoted."""
    return k if _BARE.fullmatch(k) else string(k)


def value(v) -> str:
    if isinstance(v, bool):  # before int: bool is an int
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table; its keys are always quoted ("remote.test")
        return "{ " + ", ".join(f"{string(k)} = {value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML for {v!r} ({type(v).__name__})")


def dumps(sections: dict[str, dict]) -> str:
    """[section] tables of key = value lines."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{key(section)}]")
        lines.extend(f"{key(k)} = {value(v)}" for k, v in values.items())
    return "\n".join(lines) + "\n"


def write(path, sections: dict[str, dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:  # TOML is UTF-8
        f.write(dumps(sections))
