"""Shared helper: replace one `## Section` of benchmarks/RESULTS.md, keeping the others."""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine_line() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs "
        f"({cpu}); Python {platform.python_version()}; load average {load}"
    )


def write_section(title: str, body: str) -> None:
    """Replace the section headed `## title` (or append it) in RESULTS.md."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    block = f"## {title}\n\n{body.strip()}\n\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = (
        pattern.sub(lambda _m: block, text)
        if pattern.search(text)
        else (text.rstrip() + "\n\n" + block)
    )
    RESULTS.write_text(text, encoding="utf-8")
