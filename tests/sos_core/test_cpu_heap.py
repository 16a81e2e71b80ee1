"""retained_heap: freed training buffers are reused instead of being faulted in again."""

from __future__ import annotations

import resource

import pytest
import torch

from sos_core.cpu_heap import heap_control_available, retained_heap

pytestmark = pytest.mark.skipif(
    not heap_control_available(), reason="malloc settings are glibc-only (Linux)"
)

_MB = 1024 * 1024
_SIZE = 96 * _MB  # above glibc's largest mmap threshold (32 MB): mmapped by default
_PAGES = _SIZE // 4096


def _faults_of_second_buffer() -> int:
    """Minor page faults while a second big buffer is filled after a first one was freed."""
    first = torch.ones(_SIZE // 4)
    del first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    second = torch.ones(_SIZE // 4)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del second
    return faults


def _steady_faults() -> int:
    """Faults of the second buffer once the heap has grown to hold the pattern.

    torch asks for 64-byte aligned blocks, slightly larger than a freed one, so the heap
    grows for a few rounds before the freed blocks coalesce into one that fits.
    """
    for _ in range(8):
        _faults_of_second_buffer()
    return max(_faults_of_second_buffer() for _ in range(3))


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def test_a_freed_buffer_is_reused_without_page_faults() -> None:
    with retained_heap() as applied:
        assert applied
        assert _steady_faults() < _PAGES // 10


def test_the_heap_is_given_back_when_the_block_ends() -> None:
    """A long-lived process (the app's retraining worker) must not keep its training peak."""
    with retained_heap():
        buffers = [torch.ones(_SIZE // 4) for _ in range(4)]
        del buffers
        held = _rss()
    released = held - _rss()
    assert released > 0.8 * 4 * _SIZE


def test_nested_blocks_keep_the_setting_until_the_outermost_ends() -> None:
    with retained_heap():
        with retained_heap():
            buffers = [torch.ones(_SIZE // 4) for _ in range(4)]
            del buffers
            held = _rss()
        assert held - _rss() < 0.2 * 4 * _SIZE  # the inner end gave nothing back
        assert _steady_faults() < _PAGES // 10
    assert held - _rss() > 0.8 * 4 * _SIZE
