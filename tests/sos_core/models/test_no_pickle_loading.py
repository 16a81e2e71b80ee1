"""MW-1: no code path in sos_core / sos_desktop unpickles (AST scan, after VoxCPM's
tests/test_torch_load_safety.py). The only exception would be an allow-listed converter."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("sos_core", "sos_desktop")
# Module paths (relative to the repo root) allowed to call a banned loader; empty for now.
ALLOW_LIST: frozenset[str] = frozenset()

BANNED = {
    "torch.load",
    "torch.jit.load",
    "torch.serialization.load",
    "pickle.load",
    "pickle.loads",
    "pickle.Unpickler",
    "_pickle.load",
    "_pickle.loads",
    "_pickle.Unpickler",
    "cPickle.load",
    "cPickle.loads",
    "dill.load",
    "dill.loads",
    "cloudpickle.load",
    "cloudpickle.loads",
    "joblib.load",
    "pandas.read_pickle",
    "shelve.open",
}
NUMPY_LOADS = {"numpy.load"}


class _Scanner(ast.NodeVisitor):
    """Resolves import aliases, then flags calls whose dotted target is banned."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.hits: list[tuple[int, str]] = []

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.aliases[alias.asname or alias.name.split(".")[0]] = (
                alias.name if alias.asname else alias.name.split(".")[0]
            )

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def _dotted(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self._dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def visit_Call(self, node: ast.Call) -> None:
        name = self._dotted(node.func)
        if name in BANNED:
            self.hits.append((node.lineno, name))
        elif name in NUMPY_LOADS:
            for kw in node.keywords:
                risky = not (isinstance(kw.value, ast.Constant) and not kw.value.value)
                if kw.arg == "allow_pickle" and risky:
                    self.hits.append((node.lineno, f"{name}(allow_pickle=...)"))
            if kw_unpacked := [kw for kw in node.keywords if kw.arg is None]:
                self.hits.append((kw_unpacked[0].value.lineno, f"{name}(**kwargs)"))
        self.generic_visit(node)


def scan_source(source: str) -> list[tuple[int, str]]:
    scanner = _Scanner()
    scanner.visit(ast.parse(source))
    return scanner.hits


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_scanner_catches_every_form() -> None:
    """Guard: the scanner really flags the calls it is meant to, so the scan can fail."""
    snippet = """
import torch
import pickle as pk
import numpy as np
from joblib import load as jl
from torch.jit import load
torch.load("m.pt", weights_only=True)
pk.loads(b"")
np.load("a.npy", allow_pickle=True)
np.load("a.npy", allow_pickle=flag)
jl("m.joblib")
load("m.ts")
"""
    found = [name for _, name in scan_source(snippet)]
    assert found == [
        "torch.load",
        "pickle.loads",
        "numpy.load(allow_pickle=...)",
        "numpy.load(allow_pickle=...)",
        "joblib.load",
        "torch.jit.load",
    ]
    assert scan_source("import numpy as np\nnp.load('a.npy', allow_pickle=False)") == []
    assert scan_source("from safetensors.torch import load_file\nload_file('w')") == []


@pytest.mark.req("MW-1")
def test_no_unpickling_call_in_the_packages() -> None:
    sources = _sources()
    assert any(p.name == "model_file.py" for p in sources)  # the scan sees the packages
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in sources
        if str(path.relative_to(ROOT)) not in ALLOW_LIST
        for line, name in scan_source(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, "unsafe deserialisation calls:\n" + "\n".join(offenders)
