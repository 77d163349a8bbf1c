"""The RTP port range is split into one slice per worker, each starting on an even port
(RTP even, RTCP odd, RFC 3550 §11), whatever the range's size."""

from __future__ import annotations

import pytest

from media.client import MediaPool


@pytest.mark.parametrize(("n", "lo", "hi"), [(2, 40000, 45998), (2, 20000, 29999),
                                             (3, 20000, 20005), (4, 30000, 30999)])
def test_worker_slices_start_even_and_do_not_overlap(n: int, lo: int, hi: int) -> None:
    slices = [w.ports for w in MediaPool(n, (lo, hi))._workers]
    assert len(slices) == n
    for a, b in slices:
        assert a % 2 == 0 and lo <= a < b <= hi, slices
    for (_, b1), (a2, _) in zip(slices, slices[1:], strict=False):
        assert b1 < a2, slices
