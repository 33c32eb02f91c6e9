"""Denormal flushing reaches PyTorch's already-running worker threads and is undone after."""

from __future__ import annotations

import torch

from aedetect.core.model.fastmath import flush_denormals, set_flush_denormal_everywhere, thread_flushes

TINY = 1e-40  # a float32 denormal


def _parallel_product_keeps_denormals() -> bool:
    """A product big enough for PyTorch to split over its pool threads: any thread that does
    not flush leaves denormals in its chunk."""
    x = torch.full((1 << 22,), TINY, dtype=torch.float32)
    return bool((x * 1.0 != 0).any())


def test_flush_reaches_the_running_pool_and_is_restored() -> None:
    torch.ones(1 << 22).mul_(2)  # make sure the worker pool already exists
    set_flush_denormal_everywhere(False)
    assert not thread_flushes()
    assert _parallel_product_keeps_denormals()
    with flush_denormals() as every_thread:
        if not every_thread:  # a CPU without FTZ/DAZ: nothing to check
            return
        assert thread_flushes()
        assert not _parallel_product_keeps_denormals()
        states = set_flush_denormal_everywhere(True)
        assert states and all(states)
        assert len(states) == torch.get_num_threads() or len(states) == 1
    assert not thread_flushes()
    assert _parallel_product_keeps_denormals()


def test_nested_blocks_keep_the_outer_setting() -> None:
    set_flush_denormal_everywhere(False)
    with flush_denormals():
        with flush_denormals():
            pass
        inner_left_it_on = thread_flushes()
    assert not thread_flushes()
    assert inner_left_it_on or not torch.set_flush_denormal(False)
