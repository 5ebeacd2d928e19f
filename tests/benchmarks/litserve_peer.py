"""LitServe serving a task through the same :meth:`Pipeline.run`, with LitServe's own batching:
the peer a user would pick instead of ``imgzoo serve``, for the serving benchmark.

    python tests/benchmarks/litserve_peer.py TASK PORT MAX_BATCH MAX_WAIT_MS

``POST /predict`` takes ``{"image": BASE64}`` (LitServe reads JSON or forms) and answers
``{"image": BASE64 PNG}``, the PNG of what ``imgzoo.run`` gives for the image.
"""

from __future__ import annotations

import base64
import sys
from typing import Any

import litserve as ls

from imgzoo.images import InputForm, OutputSpec, encode_pixels, finished_output
from imgzoo.model_cache import cached_pipeline
from imgzoo.pipeline import Pipeline, prepare_requests

AS_BYTES = OutputSpec((InputForm("encoded"),), as_list=False)
"""What ``imgzoo.run`` returns for an image sent as bytes (as the imgzoo server answers too)."""


class TaskAPI(ls.LitAPI):
    def __init__(self, task: str, *, max_batch_size: int, batch_timeout: float) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.task = task

    def setup(self, device: str) -> None:
        self.pipeline: Pipeline = cached_pipeline(self.task, device=device)

    # Not annotated: LitServe reads the annotation of `request`, and without one passes the JSON body.
    def decode_request(self, request):  # type: ignore[no-untyped-def]
        requests, _ = prepare_requests(type(self.pipeline.task), base64.b64decode(request["image"]), {})
        return requests[0]

    def batch(self, inputs: list[Any]) -> list[Any]:
        return inputs

    def predict(self, requests: Any) -> list[Any]:
        if not isinstance(requests, list):  # batching off: one request
            requests = [requests]
        return self.pipeline.run(requests, batch_size=len(requests))

    def unbatch(self, output: list[Any]) -> list[Any]:
        return output

    def encode_response(self, result: Any) -> dict[str, str]:
        if isinstance(result, list):
            (result,) = result
        pixels = finished_output([result.output], AS_BYTES)
        return {"image": base64.b64encode(encode_pixels(pixels, ".png")).decode()}


if __name__ == "__main__":
    task, port, max_batch, max_wait_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    api = TaskAPI(task, max_batch_size=max_batch, batch_timeout=max_wait_ms / 1000)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=120)
    server.run(port=port, generate_client_file=False, log_level="warning")
