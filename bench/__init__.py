"""Benchmarks of broadcaster's live path, run with ``python -m bench`` (see docs/performance.md).

Every figure is measured in the same run as what it is compared with: the
conversion against ffmpeg and sox, the whole live path against a hand-made
``pw-record | ffmpeg > fifo`` on the same playing app.  The script prints
figures and ratios; it asserts nothing (tests/integration/test_bench.py only
checks that it runs).
"""
