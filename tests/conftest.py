"""Suite-wide settings: headless Qt, fixed seeds, and the requirement-marker registry."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REQ_MARKS: dict[str, set[str]] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Record which tests carry which requirement ids, for the RG-11 traceability test."""
    for item in items:
        for mark in item.iter_markers("req"):
            for req_id in mark.args:
                REQ_MARKS.setdefault(req_id, set()).add(item.nodeid)


@pytest.fixture(autouse=True)
def _fixed_seeds() -> None:
    random.seed(0)
    np.random.seed(0)
