"""Import lint (STYLE 1, DESIGN "rules of the house"): the protocol cores are pure.

Nothing under ``sip/`` (except the asyncio adapters ``sip/transport*.py``), ``cext/*.py``
or ``acd/`` may import asyncio or read a clock (``time.time()``, ``time.monotonic()``,
``loop.time()``): time is always passed in as ``now``. ``sip/`` imports only the
standard library and ``sip`` itself.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLOCKS = {"time", "monotonic", "monotonic_ns", "time_ns", "perf_counter"}


def _pure_files() -> list[Path]:
    files = [p for p in sorted((ROOT / "sip").glob("*.py")) if not p.name.startswith("transport")]
    files += sorted((ROOT / "cext").glob("*.py"))
    files += sorted((ROOT / "acd").rglob("*.py"))
    return files


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def violations(source: str, *, stdlib_only: bool) -> list[str]:
    """What a module does that a pure core must not (empty if nothing)."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside the package
                names = []
            else:
                names = [node.module or ""]
                if node.module == "time":
                    found += [f"from time import {a.name}" for a in node.names if a.name in CLOCKS]
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            parts = name.split(".")
            if len(parts) >= 2 and parts[-2] == "time" and parts[-1] in CLOCKS:
                found.append(f"{name}()")
            elif len(parts) >= 2 and parts[-1] == "time" and parts[-2].endswith("loop"):
                found.append(f"{name}()")
            continue
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top == "asyncio":
                found.append(f"import {name}")
            elif stdlib_only and top not in sys.stdlib_module_names and top != "sip":
                found.append(f"import {name} (not stdlib)")
    return found


def test_lint_catches_what_it_should() -> None:
    bad = (
        "import asyncio\nimport numpy\nfrom time import monotonic\nimport time\n"
        "time.time()\nself.loop.time()\nloop.time()\nfrom asyncio import sleep\n"
    )
    assert sorted(violations(bad, stdlib_only=True)) == sorted([
        "import asyncio",
        "import numpy (not stdlib)",
        "from time import monotonic",
        "time.time()",
        "self.loop.time()",
        "loop.time()",
        "import asyncio",
    ])
    ok = "import heapq\nfrom .message import SipMessage\nfrom sip.uri import Via\nx.time\n"
    assert violations(ok, stdlib_only=True) == []


@pytest.mark.parametrize("path", _pure_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_module(path: Path) -> None:
    stdlib_only = path.parent.name == "sip"
    assert violations(path.read_text(encoding="utf-8"), stdlib_only=stdlib_only) == []
