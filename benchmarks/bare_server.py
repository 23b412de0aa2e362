"""The bare web stack `benchmarks/serve.py` compares `attnclf serve` with: FastAPI on uvicorn,
`POST /predict` reading the body and answering fixed bytes (a real answer of the same shape),
with the same uvicorn options as `attnclf serve`, so the ratio of the two is what attnclf adds.

    python benchmarks/bare_server.py --port 8001 --answer answer.json [--workers 2 | --plain]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response


def plain_asgi(answer: bytes) -> Callable:
    """The same answer from a plain ASGI function: what FastAPI's routing and middleware cost."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return app


def bare_app(answer: bytes) -> FastAPI:
    """FastAPI with `POST /predict` (reads the body, answers `answer`) and `GET /health`."""
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        await request.body()
        return Response(answer, media_type="application/json")

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    return app


_ANSWER_ENV = "BARE_SERVER_ANSWER"  # how `--workers N` hands the answer file to each worker


def app_from_env() -> FastAPI:
    """`bare_app` for one of several uvicorn workers (as `attnclf serve --workers N` starts)."""
    return bare_app(Path(os.environ[_ANSWER_ENV]).read_bytes())


def main() -> None:
    """Serve `bare_app` on 127.0.0.1:--port until SIGTERM."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--answer", type=Path, required=True, help="file of the fixed answer")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--plain", action="store_true", help="a plain ASGI function, not FastAPI")
    args = p.parse_args()
    options = {"host": "127.0.0.1", "port": args.port, "access_log": False}
    if args.plain or args.workers == 1:
        make = plain_asgi if args.plain else bare_app
        uvicorn.run(make(args.answer.read_bytes()), **options)
        return
    os.environ[_ANSWER_ENV] = str(args.answer.resolve())
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    uvicorn.run("bare_server:app_from_env", factory=True, workers=args.workers, **options)


if __name__ == "__main__":
    main()
