"""Dynamic batching: requests for one model wait a little so that those of one image size run
as one batch.

Each loaded model (a task with one set of options) has a :class:`ModelWorker`: one thread that
loads the pipeline, then takes the oldest waiting jobs, up to ``max_batch``, waiting at most
``max_wait`` seconds after the oldest arrived for more to join, and runs them through
:meth:`Pipeline.run` in one call (which runs those of one shape as one forward pass).
:class:`Batcher` owns the workers and bounds the requests in flight across all of them: a
request takes its place in the queue (:meth:`Batcher.reserve`) before its body is read or decoded,
and gives it back when its job is done, cancelled or refused.

The batcher also holds the server's memory budget: each request holds its estimated memory
(:meth:`Batcher.hold_memory`, before its image is decoded) until its job is done, and a worker
takes into one batch only jobs whose estimates fit the budget together.

Jobs are ``concurrent.futures.Future`` objects: a caller that gives up cancels its future, and a
cancelled job leaves its worker's queue at once (its decoded image with it).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imgzoo.errors import MemoryBudgetError, RequestError

if TYPE_CHECKING:
    from imgzoo.pipeline import Pipeline, Request

__all__ = ["Batcher", "Job", "ModelWorker", "Reservation"]


@dataclass
class Job:
    """One HTTP request's image and named inputs, read and checked; its
    :class:`~imgzoo.pipeline.Result` arrives in ``future``."""

    request: Request
    memory: int = 0
    """Its estimated memory in bytes (see :meth:`imgzoo.pipeline.Pipeline.memory_needed`)."""
    future: Future[Any] = field(default_factory=Future)
    arrived: float = field(default_factory=time.monotonic)


class ModelWorker:
    """One model's thread: loads its pipeline with ``load()``, then runs waiting jobs in batches.

    When loading fails, every job waiting or sent later gets the load's error, the thread ends and
    ``on_load_failed(worker)`` is called (the batcher forgets the worker).
    """

    def __init__(
        self,
        name: str,
        load: Callable[[], Pipeline],
        *,
        max_batch: int,
        max_wait: float,
        memory_budget: int | None = None,
        on_load_failed: Callable[[ModelWorker], None] | None = None,
    ) -> None:
        self.name = name
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.memory_budget = memory_budget
        """Most bytes one batch's jobs may be estimated to take together (None: no bound)."""
        self.pipeline: Pipeline | None = None
        """The loaded pipeline (None until :meth:`wait_loaded` returns)."""
        self.batches_run = 0
        """How many batches have run (each one ``pipeline`` call), for tests and metrics."""
        self._load = load
        self._on_load_failed = on_load_failed
        self._pending: list[Job] = []
        self._condition = threading.Condition()
        self._closed = False
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name=f"imgzoo-serve-{name}", daemon=True)
        self._thread.start()

    @property
    def idle(self) -> bool:
        with self._condition:
            return not self._pending

    def wait_loaded(self, timeout: float | None = None) -> Pipeline:
        """Block until the pipeline is loaded, and return it; raise what loading raised, or a
        504 RequestError when it is still loading after ``timeout`` seconds."""
        if not self._ready.wait(timeout):
            raise RequestError(
                f"model {self.name} is still loading after the server's timeout: retry shortly", status=504
            )
        if self._load_error is not None:
            raise self._load_error
        assert self.pipeline is not None
        return self.pipeline

    def submit(self, job: Job) -> None:
        """Queue ``job``; it fails with the load's error if loading failed."""
        with self._condition:
            load_error = self._load_error
            if load_error is None:
                if self._closed:
                    raise RequestError(
                        f"model {self.name} is shutting down: retry", status=503, retry_after=1
                    )
                self._pending.append(job)
                self._condition.notify()
        # Outside the lock: a finished job's callbacks take the batcher's lock, which is taken
        # before this one when the batcher looks for an idle worker.
        if load_error is not None:
            _fail([job], load_error)
            return
        job.future.add_done_callback(lambda _: self._discard(job))

    def _discard(self, job: Job) -> None:
        """Drop a job whose caller gave up before it ran, so that it neither holds its image nor
        keeps the worker from counting as idle."""
        if job.future.cancelled():
            with self._condition:
                self._pending = [waiting for waiting in self._pending if waiting is not job]

    def close(self) -> None:
        """Stop after the batch that is running; jobs still waiting are cancelled."""
        with self._condition:
            self._closed = True
            waiting, self._pending = self._pending, []
            self._condition.notify()
        for job in waiting:
            job.future.cancel()

    def _serve(self) -> None:
        try:
            pipeline = self._load()
        except BaseException as error:  # reported to every job, and by wait_loaded()
            with self._condition:
                self._load_error = error
                self._closed = True
                waiting, self._pending = self._pending, []
            self._ready.set()
            # Forgotten before any caller hears of the failure, so that a retry loads afresh.
            if self._on_load_failed is not None:
                self._on_load_failed(self)
            _fail(waiting, error)
            return
        self.pipeline = pipeline
        self._ready.set()
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run(pipeline, batch)

    def _next_batch(self) -> list[Job] | None:
        """The oldest ``max_batch`` jobs, once there are that many or the oldest has waited
        ``max_wait``; None once closed."""
        with self._condition:
            while True:
                while not self._pending and not self._closed:
                    self._condition.wait()
                if self._closed:
                    return None
                first = self._pending[0]
                deadline = first.arrived + self.max_wait
                while True:
                    batch = self._fitting(self._pending[: self.max_batch])
                    left = deadline - time.monotonic()
                    full = len(batch) >= self.max_batch or len(batch) < len(self._pending)
                    if full or left <= 0 or self._closed:
                        break
                    self._condition.wait(left)
                taken = {id(job) for job in batch}
                self._pending = [job for job in self._pending if id(job) not in taken]
                # A job whose caller gave up (its deadline passed) is dropped, not run.
                running = [job for job in batch if job.future.set_running_or_notify_cancel()]
                if running:
                    return running

    def _fitting(self, jobs: list[Job]) -> list[Job]:
        """The longest run of ``jobs`` from the first whose estimates fit the memory budget
        together (the first always: it was admitted alone)."""
        taken: list[Job] = []
        total = 0
        for job in jobs:
            total += job.memory
            if taken and self.memory_budget is not None and total > self.memory_budget:
                break
            taken.append(job)
        return taken

    def _run(self, pipeline: Pipeline, batch: list[Job]) -> None:
        try:
            results = pipeline.run(
                [job.request for job in batch], batch_size=self.max_batch, memory_limit=self.memory_budget
            )
        except BaseException as error:
            for job in batch:
                job.future.set_exception(error)
            return
        finally:
            self.batches_run += 1
        for job, result in zip(batch, results, strict=True):
            job.future.set_result(result)


def _fail(jobs: list[Job], error: BaseException) -> None:
    for job in jobs:
        if job.future.set_running_or_notify_cancel():
            job.future.set_exception(error)


class Reservation:
    """A request's place in the server's queue, held from before its body is read until its job
    is done; :meth:`release` gives it back (once, however often it is called)."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release = release
        self._lock = threading.Lock()
        self._held = True

    def release(self, *_: Any) -> None:
        with self._lock:
            held, self._held = self._held, False
        if held:
            self._release()


class Batcher:
    """The workers of a server, one per model key, at most ``max_models`` of them (the least
    recently used idle one is closed to make room), and at most ``queue`` requests in flight."""

    def __init__(
        self,
        *,
        max_batch: int,
        max_wait: float,
        queue: int,
        max_models: int = 8,
        memory_budget: int | None = None,
    ) -> None:
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.queue = queue
        self.max_models = max_models
        self.memory_budget = memory_budget
        """Most bytes the requests in flight may be estimated to take together (None: no bound)."""
        self._workers: OrderedDict[str, ModelWorker] = OrderedDict()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._memory_changed = threading.Condition()
        self._memory_held = 0

    def worker(self, key: str, load: Callable[[], Pipeline]) -> ModelWorker:
        """The worker for ``key``, started with ``load`` when there is none yet."""
        with self._lock:
            worker = self._workers.get(key)
            if worker is not None:
                self._workers.move_to_end(key)
                return worker
            evicted = self._evict_idle(key) if len(self._workers) >= self.max_models else None
            worker = ModelWorker(
                key,
                load,
                max_batch=self.max_batch,
                max_wait=self.max_wait,
                memory_budget=self.memory_budget,
                on_load_failed=self._forget,
            )
            self._workers[key] = worker
        if evicted is not None:
            # Outside the lock: closing cancels any job that just arrived, whose callbacks take it.
            evicted.close()
        return worker

    def _forget(self, worker: ModelWorker) -> None:
        """Drop a worker whose model failed to load, so that it holds no place among the models."""
        with self._lock:
            if self._workers.get(worker.name) is worker:
                del self._workers[worker.name]

    @property
    def workers(self) -> list[ModelWorker]:
        """The workers whose models are loaded or loading, least recently used first."""
        with self._lock:
            return list(self._workers.values())

    def _evict_idle(self, key: str) -> ModelWorker:
        """Take the least recently used idle worker out (the caller closes it), or refuse ``key``."""
        for name, candidate in self._workers.items():
            if candidate.idle:
                del self._workers[name]
                return candidate
        raise RequestError(
            f"the server already runs {self.max_models} models, all busy, so it cannot load {key}: "
            "retry shortly, or use options the server has loaded already",
            status=503,
            retry_after=1,
        )

    def reserve(self) -> Reservation:
        """A place in the queue, or a 503 RequestError when all ``queue`` places are taken."""
        with self._lock:
            if self._in_flight >= self.queue:
                raise RequestError(
                    f"the server is busy: {self._in_flight} requests are queued (the limit is {self.queue}); "
                    "retry after a second",
                    status=503,
                    retry_after=1,
                )
            self._in_flight += 1
        return Reservation(self._release)

    def hold_memory(self, needed: int, wait: float) -> Reservation:
        """Hold ``needed`` bytes of the memory budget until the reservation is released,
        waiting up to ``wait`` seconds for requests in flight to give enough back. A request
        that cannot fit even alone is a MemoryBudgetError (413); one still waiting at the end
        a 503 RequestError."""
        budget = self.memory_budget
        if budget is None:
            return Reservation(lambda: None)
        if needed > budget:
            raise MemoryBudgetError(
                f"the request would need about {needed / 2**20:.1f} MiB, more than the server's memory "
                f"budget of {budget / 2**20:.1f} MiB: send a smaller image (or start the server with a "
                "larger --max-memory-gb)",
                needed=needed,
                limit=budget,
            )
        with self._memory_changed:
            if not self._memory_changed.wait_for(lambda: self._memory_held + needed <= budget, timeout=wait):
                raise RequestError(
                    f"the server is busy: the requests in flight hold {self._memory_held / 2**20:.0f} MiB of "
                    f"its {budget / 2**20:.0f} MiB memory budget; retry after a second",
                    status=503,
                    retry_after=1,
                )
            self._memory_held += needed

        def give_back() -> None:
            with self._memory_changed:
                self._memory_held -= needed
                self._memory_changed.notify_all()

        return Reservation(give_back)

    @property
    def memory_held(self) -> int:
        """Bytes of the memory budget the requests in flight hold now."""
        with self._memory_changed:
            return self._memory_held

    def submit(self, worker: ModelWorker, job: Job, reservation: Reservation | None = None) -> None:
        """Queue ``job`` on ``worker`` in the place ``reservation`` holds (one is reserved now
        when none is given: a 503 RequestError when the queue is full); the place is given back
        when the job is done or cancelled."""
        reservation = reservation or self.reserve()
        job.future.add_done_callback(reservation.release)
        try:
            worker.submit(job)
        except RequestError:
            job.future.cancel()
            raise

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    @property
    def batches_run(self) -> int:
        """Batches run so far by the workers now loaded."""
        with self._lock:
            return sum(worker.batches_run for worker in self._workers.values())

    @property
    def in_flight(self) -> int:
        """Jobs queued or running now."""
        with self._lock:
            return self._in_flight

    def close(self) -> None:
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for worker in workers:
            worker.close()
