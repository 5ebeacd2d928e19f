"""A small load test of a real server on 127.0.0.1: many clients at once, several tasks and
sizes, valid and invalid images; nothing lost, every answer right. The full one, with latency and
throughput figures, is tests/benchmarks/test_serve_bench.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imgzoo.serve import ServeSettings
from serving import check_answers, hammer, live_server, mixed_calls, write_seeded_weights

TASKS = ("invert", "toy-upscale", "toy-depth")


@pytest.mark.parametrize("max_batch", [1, 8], ids=["batching-off", "batching-on"])
def test_many_clients_get_every_answer_right(
    toy_tasks: None, contract_tasks: None, tmp_path: Path, max_batch: int
) -> None:
    write_seeded_weights(tmp_path, TASKS)
    calls = mixed_calls(np.random.default_rng(1), TASKS, count=8 * 5)
    with live_server(TASKS, ServeSettings(max_batch=max_batch, max_wait_ms=5)) as url:
        answers = hammer(url, calls, clients=8)
    assert len(answers) == len(calls)
    check_answers(answers)
    assert sum(answer.call.expected is None for answer in answers) == 8  # the invalid ones were sent
