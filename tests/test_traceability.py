"""RG-11: every adopted requirement has a test, and every test's requirement is adopted.

The markers are read statically from the test sources, so the check holds whatever subset of
the suite is run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _adopted() -> set[str]:
    text = (ROOT / "docs" / "requirements" / "adopted.txt").read_text(encoding="utf-8")
    return {ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")}


def _marked() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in (ROOT / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "req"
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "mark"
            ):
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        found.setdefault(arg.value, []).append(str(path.relative_to(ROOT)))
    return found


@pytest.mark.req("RG-11")
def test_every_adopted_requirement_has_a_test() -> None:
    missing = sorted(_adopted() - set(_marked()))
    assert not missing, f"adopted requirements with no test: {missing}"


@pytest.mark.req("RG-11")
def test_every_requirement_marker_is_adopted() -> None:
    orphans = {k: v for k, v in _marked().items() if k not in _adopted()}
    assert not orphans, f"tests mark requirements that are not adopted: {orphans}"
