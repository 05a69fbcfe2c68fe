"""The benchmark suite: ``python3 -m bench`` (``--quick`` for a smoke run) writes BENCHMARKS.md.

Sections: ``startup``, ``latency``, ``concurrency``, ``gallery`` (``bench/run_all.py``); each
module also runs alone (``python3 -m bench.latency --quick``). ``bench/load.py`` is the bounded
load run (50 clients) and ``tests/test_load.py`` imports it.
"""
