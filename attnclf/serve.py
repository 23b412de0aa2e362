"""`attnclf serve`: a trained run as an HTTP JSON service (FastAPI on uvicorn).

Endpoints: `POST /predict`, `GET /health`, `GET /metadata`, and FastAPI's `/docs`. Concurrent
requests are micro-batched (`MicroBatcher`): texts that arrive within `max_wait_ms` of each
other share one forward pass of at most `max_batch` texts, like Ray Serve's `@serve.batch`.
Every bad request gets a 4xx JSON body `{"error": "..."}` that says what is wrong; SIGTERM
lets in-flight requests finish (uvicorn's graceful shutdown), then the server exits.
"""

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from attnclf import __version__
from attnclf.errors import UserError

try:
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
    from pydantic import BaseModel, ConfigDict, Field, ValidationError
    from starlette.exceptions import HTTPException
except ImportError:
    raise UserError(
        "serving needs FastAPI and uvicorn; install them with pip install 'attnclf[serve]'"
    ) from None
from attnclf.predict import load
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
    max_wait_ms: float = 2.0  # how long the first request of a batch waits for others
    threads: int = 1  # the backend's threads per worker: more wait on each other when loaded


class PredictRequest(BaseModel):
    """The body of `POST /predict` (any content type: it is always read as JSON)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    texts: list[str] = Field(description="the texts to classify")
    top_k: int | None = Field(None, ge=1, description="keep the K likeliest classes")
    explain: bool = Field(
        False, description="include each token's attention weight and influence (torch backend)"
    )


class BadRequest(Exception):
    """A request the server refuses: its HTTP status and what is wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _parse(raw: bytes, limits: ServeLimits) -> PredictRequest:
    """The validated body of a `POST /predict`, or `BadRequest` saying what is wrong."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(400, f"the request body is not valid JSON ({exc})") from None
    try:
        body = PredictRequest.model_validate(data)
    except ValidationError as exc:
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
    """Merges the texts of concurrent requests into shared forward passes, one at a time."""

    def __init__(self, classifier: TextClassifier, max_batch: int, max_wait_ms: float) -> None:
        """Batch for `classifier`; start with `start()` inside the event loop."""
        self.classifier = classifier
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.queue: asyncio.Queue[tuple[list[str], bool, asyncio.Future]] = asyncio.Queue()
        self.requests = 0
        self.batches = 0
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        """Start merging requests in the running event loop."""
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop merging requests."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def predict(self, texts: list[str], explain: bool = False) -> list[Prediction]:
        """Predictions for `texts` (with influence if `explain`), in passes shared with others."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, explain, future))
        return await future

    async def _gather(self) -> list[tuple[list[str], bool, asyncio.Future]]:
        """The next batch: the first waiting request and those arriving within the window."""
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
        return items

    async def _loop(self) -> None:
        """Forever: gather a batch, classify it, answer each request.

        The forward pass runs in the event loop itself: a batch takes milliseconds, and an
        inference thread would make every request wait for the GIL's 5 ms switch interval.
        """
        while True:
            items = await self._gather()
            for explain in (False, True):  # explained texts share passes with explained ones
                group = [(texts, future) for texts, e, future in items if e == explain]
                if group:
                    self._classify(group, explain)

    def _classify(self, items: list[tuple[list[str], asyncio.Future]], explain: bool) -> None:
        """Classify the texts of `items` together and give each request its answers."""
        texts = [t for request, _ in items for t in request]
        try:
            predictions = self.classifier.predict(texts, explain=explain)
        except Exception as exc:  # passed to these requests (a 4xx or 500); the server lives on
            for _, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        self.requests += len(items)
        start = 0
        for request, future in items:
            if not future.done():  # its client may have gone away
                future.set_result(predictions[start : start + len(request)])
            start += len(request)


class _BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is answered 413 before the app sees it."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        body = bytearray()
        if int(declared) <= self.max_bytes:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                body += message.get("body", b"")
                if len(body) > self.max_bytes or not message.get("more_body"):
                    break
        if int(declared) > self.max_bytes or len(body) > self.max_bytes:
            message = f"request body over {self.max_bytes:,} bytes; send fewer or shorter texts"
            return await _send_error(send, 413, message)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        return await self.app(scope, replay, send)


async def _send_error(send: Any, status: int, message: str) -> None:
    """Answer an ASGI request with `{"error": message}`."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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


def create_app(classifier: TextClassifier, run: Path, backend: str, limits: ServeLimits) -> FastAPI:
    """The FastAPI application serving `classifier` (loaded from `run` for `backend`)."""
    batcher = MicroBatcher(classifier, limits.max_batch, limits.max_wait_ms)
    metadata = _metadata(classifier, run, backend)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
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

    @app.post("/predict", openapi_extra={"requestBody": {"content": schema, "required": True}})
    async def predict(request: Request) -> Response:
        """Classify texts: one answer per text, with `predict --format json`'s fields."""
        body = _parse(await request.body(), limits)
        try:
            predictions = await batcher.predict(body.texts, body.explain)
        except UserError as exc:  # influence asked of the onnx backend
            raise BadRequest(422, str(exc)) from None
        answers = [_answer(p, body.top_k, body.explain) for p in predictions]
        return Response(json.dumps({"predictions": answers}), media_type="application/json")

    @app.get("/health")
    async def health() -> dict:
        """Liveness, and how many requests went through how many forward passes."""
        return {"status": "ok", "requests": batcher.requests, "batches": batcher.batches}

    @app.get("/metadata")
    async def get_metadata() -> dict:
        """The run behind this server: name, labels, config, test metrics, version."""
        return metadata

    app.add_middleware(_BodyLimit, max_bytes=limits.max_body_bytes)
    return app


def app_from_env() -> FastAPI:
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
    """Serve a run folder over HTTP until SIGTERM or Ctrl-C."""
    run, limits = Path(run), limits or ServeLimits()
    classifier = load(run, backend, limits.threads)  # a damaged run fails here
    _check_port(host, port)
    options = {"host": host, "port": port, "access_log": False, "timeout_graceful_shutdown": 30}
    if workers == 1:
        uvicorn.run(create_app(classifier, run, backend, limits), **options)
        return
    settings = {"run": str(run), "backend": backend, "limits": asdict(limits)}
    os.environ[_SETTINGS_ENV] = json.dumps(settings)
    uvicorn.run("attnclf.serve:app_from_env", factory=True, workers=workers, **options)
