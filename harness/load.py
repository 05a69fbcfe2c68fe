"""Many API clients at once against a studio app: each job ends in a result, the expected
"queue full" answer, another error, or hangs; the report counts each (``bench/load.py`` runs the
full load, ``tests/test_load.py`` a small one)."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field

from gradio_client import Client
from gradio_client.utils import QueueError

from sd35.params import GenerationRequest
from sd35.ui import generate_inputs

ARGS = generate_inputs(
    GenerationRequest("a load test", width=512, height=512, num_inference_steps=6)
)


@dataclass
class LoadReport:
    clients: int
    jobs: int
    finished: int = 0
    queue_full: int = 0
    other_errors: list[str] = field(default_factory=list)
    hung: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def accounted(self) -> int:
        return self.finished + self.queue_full + len(self.other_errors) + self.hung


def run_load(url: str, *, clients: int, jobs_per_client: int, timeout: float = 120) -> LoadReport:
    """``clients`` threads, each with its own ``gradio_client.Client``, submit jobs at once."""
    report = LoadReport(clients=clients, jobs=clients * jobs_per_client)
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def one_client() -> None:
        try:
            client = Client(url, verbose=False, download_files=False)
        except Exception as error:  # the app did not even answer: every job of it failed
            with lock:
                report.other_errors += [f"connect: {error}"] * jobs_per_client
            barrier.abort()
            return
        # If another client could not connect, go on without the common start.
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=60)
        for _ in range(jobs_per_client):
            began = time.monotonic()
            try:
                result = client.submit(*ARGS, api_name="/generate").result(timeout=timeout)
                outcome = "ok" if str(result[1]).startswith("✅") else f"odd: {result[1]}"
            except QueueError:
                outcome = "full"
            except TimeoutError:
                outcome = "hung"
            except Exception as error:  # counted and reported, never swallowed silently
                outcome = f"{type(error).__name__}: {error}"
            with lock:
                if outcome == "ok":
                    report.finished += 1
                    report.latencies.append(time.monotonic() - began)
                elif outcome == "full":
                    report.queue_full += 1
                elif outcome == "hung":
                    report.hung += 1
                else:
                    report.other_errors.append(outcome)
        client.close()

    began = time.monotonic()
    threads = [threading.Thread(target=one_client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout * jobs_per_client + 60)
    report.seconds = time.monotonic() - began
    return report
