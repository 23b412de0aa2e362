"""`attnclf serve`: a trained run as an HTTP JSON service (FastAPI on uvicorn).

Endpoints: `POST /predict`, `GET /health`, `GET /metadata`, and FastAPI's `/docs`. Concurrent
requests are micro-batched (`MicroBatcher`): the texts waiting when the model is free (and those
arriving within `max_wait_ms`) share one forward pass of at most `max_batch` texts, like Ray
Serve's `@serve.batch`. Cleaning, encoding and the forward pass run on worker threads, apart for
plain and for explained requests, so the event loop keeps answering while a big batch runs; while
a full batch waits, a second pass runs beside the first on another core (`passes`).
Every bad request gets a 4xx JSON body `{"error": "..."}` that says what is wrong; SIGTERM
lets in-flight requests finish (uvicorn's graceful shutdown), then the server exits.
"""

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from functools import partial
from itertools import islice
from pathlib import Path

from attnclf import __version__
from attnclf.errors import UserError

try:
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
    from pydantic import BaseModel, ConfigDict, Field, ValidationError
    from pydantic_core import to_json
    from starlette.exceptions import HTTPException
except ImportError:
    raise UserError(
        "serving needs FastAPI and uvicorn; install them with pip install 'attnclf[serve]'"
    ) from None
from attnclf.predict import freeze_loaded, load
from attnclf.predict.base import Prediction, TextClassifier
from attnclf.runfolder import METRICS

_SETTINGS_ENV = "ATTNCLF_SERVE_SETTINGS"  # how `--workers N` hands the settings to each worker


@dataclass
class ServeLimits:
    """What one request may hold, and how requests are merged into forward passes."""

    max_texts: int = 1_000  # texts per request
    max_chars: int = 10_000  # characters per text
    max_body_bytes: int = 16 * 2**20  # bytes per request body (413 beyond)
    max_batch: int = 512  # texts per merged forward pass
    max_wait_ms: float = 0.0  # how long a batch waits for more requests (see docs/serving.md)
    threads: int = 1  # the backend's threads per worker: more wait on each other when loaded
    passes: int | None = None  # passes side by side while a full batch waits; None: cores/workers

    def __post_init__(self) -> None:
        """Refuse limits no server can work with."""
        for name in ("max_texts", "max_chars", "max_body_bytes", "max_batch", "threads", "passes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"{name} must be at least 1, got {value}")
        if not 0 <= self.max_wait_ms <= 1000:
            raise UserError(f"max_wait_ms must be between 0 and 1000, got {self.max_wait_ms}")


def default_passes(workers: int) -> int:
    """Passes side by side per worker process: the usable cores shared among the workers."""
    return max(1, len(os.sched_getaffinity(0)) // workers)


class PredictRequest(BaseModel):
    """The body of `POST /predict` (any content type: it is always read as JSON)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    texts: list[str] = Field(description="the texts to classify")
    # le: a larger K than there are classes keeps them all; past sys.maxsize islice refuses it.
    top_k: int | None = Field(
        None, ge=1, le=sys.maxsize, description="keep the K likeliest classes"
    )
    explain: bool = Field(
        False, description="include each token's attention weight and influence (torch backend)"
    )


class BadRequest(Exception):
    """A request the server refuses: its HTTP status and what is wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _parse(raw: bytes, limits: ServeLimits) -> PredictRequest:
    """The validated body of a `POST /predict`, or `BadRequest` saying what is wrong.

    pydantic parses and validates in one pass; its JSON parser stops at a nesting depth of 200
    and refuses invalid UTF-8 and lone surrogates, all as `json_invalid` (a 400).
    """
    try:
        body = PredictRequest.model_validate_json(raw)
    except ValidationError as exc:
        invalid = [e for e in exc.errors() if e["type"] == "json_invalid"]
        if invalid:
            reason = invalid[0]["msg"].removeprefix("Invalid JSON: ")
            raise BadRequest(400, f"the request body is not valid JSON ({reason})") from None
        where = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise BadRequest(
            422, f'invalid request ({where}); send {{"texts": [...], "top_k": K, "explain": B}}'
        ) from None
    if len(body.texts) > limits.max_texts:
        raise BadRequest(
            422,
            f"texts has {len(body.texts):,} items; at most {limits.max_texts:,} per request: "
            f"split it into several requests",
        )
    for i, text in enumerate(body.texts):
        if len(text) > limits.max_chars:
            raise BadRequest(
                422,
                f"texts[{i}] has {len(text):,} characters; at most {limits.max_chars:,} per "
                f"text: shorten it",
            )
    return body


class MicroBatcher:
    """Merges the texts of concurrent requests into shared passes, run by worker threads.

    One pass runs at a time, except that while a full batch (`max_batch` texts) is waiting,
    up to `passes` run side by side: a pass of many texts is mostly the backend's own code,
    which releases the GIL, so a second one uses another core; small passes would only
    contend for the GIL (`make bench-serve`: its single-title and 100-title rows).
    """

    def __init__(
        self,
        predict: Callable[[list[str]], list[Prediction]],
        max_batch: int,
        max_wait_ms: float,
        name: str = "predict",
        passes: int = 1,
    ) -> None:
        """Batch for `predict` (texts in, predictions out); `start()` it inside the event loop."""
        self.predict_texts = predict
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.name = name
        self.passes = passes
        self.queue: asyncio.Queue[tuple[list[str], asyncio.Future]] = asyncio.Queue()
        self.waiting = 0  # texts in the queue
        self.running = 0  # passes in progress
        self.changed: asyncio.Event | None = None  # set when either count changes
        self.in_flight: set[asyncio.Task] = set()
        self.requests = 0
        self.batches = 0
        self.task: asyncio.Task | None = None
        self.executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        """Start merging requests in the running event loop."""
        self.executor = ThreadPoolExecutor(self.passes, thread_name_prefix=f"attnclf-{self.name}")
        self.changed = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop merging requests (after the pass in progress)."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.executor is not None:
            self.executor.shutdown(wait=True)

    async def predict(self, texts: list[str]) -> list[Prediction]:
        """Predictions for `texts`, in passes shared with other requests."""
        future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((texts, future))
        self.waiting += len(texts)
        self.changed.set()
        return await future

    async def _gather(self) -> list[tuple[list[str], asyncio.Future]]:
        """The next batch: every waiting request, and those arriving within the window."""
        loop = asyncio.get_running_loop()
        items = [await self.queue.get()]
        size = len(items[0][0])
        deadline = loop.time() + self.max_wait
        while size < self.max_batch:
            if self.queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    items.append(await asyncio.wait_for(self.queue.get(), remaining))
                except TimeoutError:
                    break
            else:
                items.append(self.queue.get_nowait())
            size += len(items[-1][0])
        self.waiting -= size
        return items

    async def _loop(self) -> None:
        """Forever: when a pass may start, gather a batch and classify it on a worker thread.

        While a pass runs, the next requests queue up: they form the next batch.
        """
        while True:
            while not self._may_start():
                self.changed.clear()
                await self.changed.wait()
            items = await self._gather()
            self.running += 1
            task = asyncio.get_running_loop().create_task(self._pass(items))
            self.in_flight.add(task)  # asyncio keeps only a weak reference
            task.add_done_callback(self.in_flight.discard)

    def _may_start(self) -> bool:
        """Whether a pass may start now: a request waits (even one of no texts), and no pass
        runs or a full batch waits."""
        if self.queue.empty():
            return False
        return self.running == 0 or (self.running < self.passes and self.waiting >= self.max_batch)

    async def _pass(self, items: list[tuple[list[str], asyncio.Future]]) -> None:
        """Classify the texts of `items` on a worker thread, then answer each request."""
        texts = [t for request, _ in items for t in request]
        try:
            predictions = await asyncio.get_running_loop().run_in_executor(
                self.executor, self.predict_texts, texts
            )
        except Exception as exc:  # passed to these requests (a 4xx or 500); the server lives on
            for _, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        finally:
            self.running -= 1
            self.changed.set()
        self.batches += 1
        self.requests += len(items)
        start = 0
        for request, future in items:
            if not future.done():  # its client may have gone away
                future.set_result(predictions[start : start + len(request)])
            start += len(request)


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


async def _read_body(scope: dict, receive: Callable, max_bytes: int) -> bytes:
    """An ASGI request's body; `BadRequest` 413 as soon as it is known to exceed `max_bytes`."""
    message = f"request body over {max_bytes:,} bytes; send fewer or shorter texts"
    declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
    if declared.isdigit() and int(declared) > max_bytes:
        raise BadRequest(413, message)
    chunks, size, more = [], 0, True
    while more:
        event = await receive()
        if event["type"] == "http.disconnect":
            raise ClientGone
        chunk, more = event.get("body", b""), event.get("more_body", False)
        size += len(chunk)
        if size > max_bytes:
            raise BadRequest(413, message)
        chunks.append(chunk)
    return b"".join(chunks)


class PredictFastPath:
    """The served ASGI app: `POST /predict` answered here, every other request by FastAPI.

    FastAPI's routing, middleware and `Request` objects cost as much CPU per request as the
    model's share of a single-title request (`make bench-serve`: its "bare plain ASGI" rows
    against "bare FastAPI"), so the hot route skips them. FastAPI still serves `/health`,
    `/metadata`, `/docs` and the OpenAPI schema, where its `/predict` route documents this
    one (and answers the same way).
    """

    def __init__(self, app: FastAPI, answer: Callable[[bytes], Awaitable[bytes]], limit: int):
        """Serve `answer` (body in, JSON out) at `POST /predict` in front of `app`."""
        self.app, self.answer, self.limit = app, answer, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        """One ASGI connection event."""
        if scope["type"] != "http" or scope["path"] != "/predict" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        try:
            status, payload = 200, await self.answer(await _read_body(scope, receive, self.limit))
        except BadRequest as exc:
            status, payload = exc.status, to_json({"error": str(exc)})
        except ClientGone:
            return
        length = str(len(payload)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", length)]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _answer(p: Prediction, top_k: int | None, explain: bool) -> dict:
    """One prediction as `predict --format json` has it; attention and influence if `explain`."""
    fields = dict(vars(p))
    if top_k is not None:
        fields["probabilities"] = dict(islice(p.probabilities.items(), top_k))
    if not explain:
        fields["attention"] = []
    return fields


def _metadata(classifier: TextClassifier, run: Path, backend: str) -> dict:
    """Run name, labels, config, test metrics and versions, for `GET /metadata`."""
    metrics = run / METRICS
    return {
        "run": run.resolve().name,
        "labels": classifier.labels.classes,
        "config": classifier.config.to_dict(),
        "metrics": json.loads(metrics.read_text(encoding="utf-8")) if metrics.is_file() else None,
        "backend": backend,
        "attnclf_version": __version__,
    }


def create_app(
    classifier: TextClassifier, run: Path, backend: str, limits: ServeLimits
) -> PredictFastPath:
    """The ASGI application serving `classifier` (loaded from `run` for `backend`)."""
    # Explained requests (about n + 1 passes per text) get their own thread and batches:
    # a big one does not hold up plain ones.
    batchers = {
        explain: MicroBatcher(
            partial(classifier.predict, explain=explain),
            limits.max_batch,
            limits.max_wait_ms,
            "explain" if explain else "predict",
            limits.passes or default_passes(1),  # serve() resolves it for its workers
        )
        for explain in (False, True)
    }
    metadata = _metadata(classifier, run, backend)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for batcher in batchers.values():
            batcher.start()
        yield
        for batcher in batchers.values():
            await batcher.stop()

    app = FastAPI(
        title="attnclf",
        version=__version__,
        description=f"RNN + attention text classifier: run {metadata['run']}",
        lifespan=lifespan,
    )

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    schema = {"application/json": {"schema": PredictRequest.model_json_schema()}}

    async def answer(raw: bytes) -> bytes:
        """The JSON answer to a `POST /predict` body, or `BadRequest`."""
        body = _parse(raw, limits)
        try:
            predictions = await batchers[body.explain].predict(body.texts)
        except UserError as exc:  # influence asked of the onnx backend
            raise BadRequest(422, str(exc)) from None
        return to_json({"predictions": [_answer(p, body.top_k, body.explain) for p in predictions]})

    @app.post("/predict", openapi_extra={"requestBody": {"content": schema, "required": True}})
    async def predict(request: Request) -> Response:
        """Classify texts: one answer per text, with `predict --format json`'s fields."""
        raw = await _read_body(request.scope, request.receive, limits.max_body_bytes)
        return Response(await answer(raw), media_type="application/json")

    @app.get("/health")
    async def health() -> dict:
        """Liveness, and how many requests went through how many forward passes."""
        return {
            "status": "ok",
            "requests": sum(b.requests for b in batchers.values()),
            "batches": sum(b.batches for b in batchers.values()),
        }

    @app.get("/metadata")
    async def get_metadata() -> dict:
        """The run behind this server: name, labels, config, test metrics, version."""
        return metadata

    freeze_loaded()  # everything the server holds for its lifetime now exists
    return PredictFastPath(app, answer, limits.max_body_bytes)


def app_from_env() -> PredictFastPath:
    """The application for one of several uvicorn workers, from the parent's settings."""
    settings = json.loads(os.environ[_SETTINGS_ENV])
    run, backend = Path(settings["run"]), settings["backend"]
    limits = ServeLimits(**settings["limits"])
    return create_app(load(run, backend, limits.threads), run, backend, limits)


def _check_port(host: str, port: int) -> None:
    """Refuse a host and port this process cannot listen on, before anything starts."""
    try:
        with socket.create_server((host, port)):  # SO_REUSEADDR, as uvicorn binds
            pass
    except OSError as exc:
        raise UserError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass another --port or --host"
        ) from None


def serve(
    run: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    backend: str = "torch",
    workers: int = 1,
    limits: ServeLimits | None = None,
) -> None:
    """Serve a run folder over HTTP until SIGTERM or Ctrl-C (`workers` processes share the port)."""
    run, limits = Path(run), limits or ServeLimits()
    if workers < 1:
        raise UserError(f"workers must be at least 1, got {workers}")
    classifier = load(run, backend, limits.threads)  # a damaged run fails here
    _check_port(host, port)
    options = {"host": host, "port": port, "access_log": False, "timeout_graceful_shutdown": 30}
    limits = replace(limits, passes=limits.passes or default_passes(workers))
    if workers == 1:
        uvicorn.run(create_app(classifier, run, backend, limits), **options)
        return
    del classifier  # each worker loads the run itself; SIGTERM to this parent stops them all
    settings = {"run": str(run), "backend": backend, "limits": asdict(limits)}
    os.environ[_SETTINGS_ENV] = json.dumps(settings)
    uvicorn.run("attnclf.serve:app_from_env", factory=True, workers=workers, **options)
