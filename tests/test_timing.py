"""The scripts' timing and peak-memory helper (padis_plugin.timing) on CPU."""
import mmap
import time

from padis_plugin.timing import PeakRSS, peak_memory_bytes, timed


def test_timed_measures_the_call():
    seconds = timed(lambda: time.sleep(0.05), "cpu")
    assert 0.04 < seconds < 1.0


def test_peak_rss_sees_an_allocation_inside_the_block():
    with PeakRSS() as mem:
        # 64 MiB of fresh anonymous pages, touched: a numpy array could land in memory the allocator kept resident
        # from earlier tests (it did once in a full-suite run), and then RSS does not grow
        block = mmap.mmap(-1, 64 * 2 ** 20)
        block.write(b"\1" * len(block))
        deadline = time.monotonic() + 5.0  # the 2 ms sampler may wait for a CPU on a loaded machine
        while mem.peak - mem.base <= 32 * 2 ** 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        block.close()
    assert mem.bytes > 32 * 2 ** 20
    assert peak_memory_bytes("cpu") >= mem.peak - 2 ** 20  # the lifetime peak (ru_maxrss) covers it
