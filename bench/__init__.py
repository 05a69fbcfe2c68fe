"""The benchmark suite: ``python3 -m bench`` (``--quick`` for a smoke run) writes BENCHMARKS.md.

Sections: ``startup``, ``latency``, ``concurrency``, ``gallery`` (``bench/run_all.py``); each
module also runs alone (``python3 -m bench.latency --quick``), from the repository root.
``bench/load.py`` is the bounded load run (50 clients; ``tests/test_load.py`` runs a small one
with the same ``harness.load``).

Importing the package makes this process loopback-only, before any module of it imports gradio
or gradio_client: no proxy, Hugging Face offline, no token, no analytics.
"""

from harness import go_offline

go_offline()
