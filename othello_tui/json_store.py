"""Small versioned JSON files (notes, sessions): read with clear errors, written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path


def read_versioned(path: Path, fmt: str, version: int, error: type[Exception], after: str = "") -> dict:
    """The object in ``path``, checked to be ``{"format": fmt, "version": version, …}``; else
    ``error`` saying why (each message ending with ``after``)."""
    kind = fmt.removeprefix("othello-tui ")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as reason:
        raise error(f"cannot read the {kind} file {path} ({reason}){after}") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise error(f"{path} is not an {fmt} file{after}")
    if data.get("version") != version:
        raise error(
            f"{path} is {kind} format version {data.get('version')!r}; this version reads {version}{after}"
        )
    return data


def write_atomically(path: Path, data: dict) -> None:
    """Write ``data`` as JSON whole: a temporary file renamed over the old one."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        temporary.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
