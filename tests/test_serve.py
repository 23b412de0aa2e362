"""`attnclf serve`: a real server on 127.0.0.1, its endpoints, bad requests, batching, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from conftest import Server, start_server
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from attnclf.predict.torch_backend import Predictor

TITLES = [
    "Tennis match ends in a draw",
    "Stocks and shares rally as market earnings beat forecasts",
    "NASA software",
    "the of and",  # empty after cleaning: a per-text error
    "Minister calls for ceasefire after troops cross the border at dawn",
]
LIMITS = ("--max-texts", "8", "--max-chars", "300", "--max-body-mb", "0.01")


@pytest.fixture(scope="module")
def server(trained_run: Path) -> Iterator[Server]:
    """The module's tiny run served with small limits (8 texts, 300 characters, 10 KiB)."""
    server = start_server(trained_run, *LIMITS)
    yield server
    server.stop()


def predict(server: Server, body: object, **kwargs) -> httpx.Response:
    """POST a JSON body to /predict."""
    return httpx.post(f"{server.url}/predict", json=body, timeout=30, **kwargs)


def same(served: dict, expected: dict, tol: float = 1e-6) -> None:
    """A served answer equals an expected one (the numbers within `tol`)."""
    numbers = ("probabilities", "attention", "influence")
    assert {k: v for k, v in served.items() if k not in numbers} == {
        k: v for k, v in expected.items() if k not in numbers
    }
    assert (served["influence"] is None) == (expected["influence"] is None)
    if served["influence"] is not None:
        assert served["influence"] == pytest.approx(expected["influence"], abs=tol)
    assert list(served["probabilities"]) == list(expected["probabilities"])
    assert served["probabilities"] == pytest.approx(expected["probabilities"], abs=tol)
    assert served["attention"] == pytest.approx(expected["attention"], abs=tol)


def test_predict_answers_like_predict_json(server: Server, trained_run: Path) -> None:
    predictor = Predictor.from_run(trained_run)
    expected = [json.loads(p.to_json()) for p in predictor.predict(TITLES, 2, explain=True)]
    response = predict(server, {"texts": TITLES, "top_k": 2, "explain": True})
    assert response.status_code == 200
    answers = response.json()["predictions"]
    assert len(answers) == len(TITLES)
    for served, wanted in zip(answers, expected, strict=True):
        same(served, wanted)
    assert answers[3]["label"] is None and "empty after preprocessing" in answers[3]["error"]


def test_explain_and_top_k_are_optional(server: Server) -> None:
    (answer,) = predict(server, {"texts": ["Stocks rally"]}).json()["predictions"]
    assert len(answer["probabilities"]) == 4 and answer["attention"] == []
    assert answer["influence"] is None
    assert answer["tokens"] == ["stocks", "rally"]


def test_health_metadata_and_docs(server: Server, trained_run: Path) -> None:
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ok" and health["requests"] >= health["batches"] >= 0
    meta = httpx.get(f"{server.url}/metadata").json()
    assert meta["run"] == trained_run.name
    assert meta["labels"] == ["Business", "Sci/Tech", "Sports", "World"]
    assert meta["metrics"] == json.loads((trained_run / "metrics.json").read_text())
    assert meta["config"]["model"]["cell"] == "gru" and meta["backend"] == "torch"
    assert meta["attnclf_version"] == "0.1.0"
    docs = httpx.get(f"{server.url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert {"/predict", "/health", "/metadata"} <= set(schema["paths"])


BAD_REQUESTS = {
    "malformed JSON": (b'{"texts": ["a",', 400, "not valid JSON"),
    "not UTF-8": (b'{"texts": ["\xff"]}', 400, "not valid JSON"),
    "a number for a text": (b'{"texts": ["a", 3]}', 422, "texts.1: Input should be a valid string"),
    "a string for the list": (b'{"texts": "a"}', 422, "texts: Input should be a valid array"),
    "no texts": (b'{"text": ["a"]}', 422, "texts: Field required"),
    "top_k 0": (b'{"texts": ["a"], "top_k": 0}', 422, "top_k: Input should be greater than"),
    "explain as text": (b'{"texts": ["a"], "explain": "yes"}', 422, "explain: Input should be"),
    "a list for the body": (b'["a"]', 422, "body: Input should be an object"),
    "JSON nested past the parser's depth": (
        b'{"texts": ' + b"[" * 4_000 + b"]" * 4_000 + b"}",
        400,
        "not valid JSON (recursion limit exceeded",
    ),
    "top_k past the platform's integers": (
        b'{"texts": ["a"], "top_k": 9223372036854775808}',
        422,
        "top_k: Input should be less than or equal to 9223372036854775807",
    ),
    "top_k past 64 bits": (b'{"texts": ["a"], "top_k": 1' + b"0" * 30 + b"}", 422, "top_k: Input"),
    "top_k as a float": (b'{"texts": ["a"], "top_k": 2.0}', 422, "top_k: Input should be"),
    "a lone surrogate": (b'{"texts": ["\\ud800"]}', 400, "not valid JSON"),
    "an empty body": (b"", 400, "not valid JSON"),
    "null texts": (b'{"texts": null}', 422, "texts: Input should be a valid array"),
    "too many texts": (json.dumps({"texts": ["a"] * 9}).encode(), 422, "at most 8 per request"),
    "a text too long": (
        json.dumps({"texts": ["a", "b" * 301]}).encode(),
        422,
        "texts[1] has 301 characters; at most 300",
    ),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_a_bad_request_gets_a_clear_4xx_and_the_server_lives_on(server: Server, case: str) -> None:
    body, status, message = BAD_REQUESTS[case]
    response = httpx.post(f"{server.url}/predict", content=body, timeout=30)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert predict(server, {"texts": ["Stocks rally"]}).status_code == 200


def test_a_body_too_large_is_413_declared_or_streamed(server: Server) -> None:
    body = json.dumps({"texts": ["word " * 50] * 50}).encode()
    declared = httpx.post(f"{server.url}/predict", content=body, timeout=30)
    chunks = (body[i : i + 1000] for i in range(0, len(body), 1000))  # chunked: no length
    streamed = httpx.post(f"{server.url}/predict", content=chunks, timeout=30)
    for response in (declared, streamed):
        assert response.status_code == 413
        assert "request body over 10,485 bytes" in response.json()["error"]


def test_escaped_non_ascii_text_is_answered(server: Server) -> None:
    body = b'{"texts": ["Caf\\u00e9 chain \\ud83d\\ude00 profit soars"]}'
    (answer,) = httpx.post(f"{server.url}/predict", content=body).json()["predictions"]
    assert answer["text"] == "Caf\u00e9 chain \U0001f600 profit soars"


def test_unknown_paths_and_methods_are_json_errors(server: Server) -> None:
    missing = httpx.get(f"{server.url}/nope")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    wrong = httpx.get(f"{server.url}/predict")
    assert wrong.status_code == 405 and wrong.json() == {"error": "Method Not Allowed"}


async def _concurrently(url: str, texts: list[str]) -> list[dict]:
    """One single-text request per text, all in flight at once."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        responses = await asyncio.gather(
            *(client.post("/predict", json={"texts": [t], "explain": True}) for t in texts)
        )
    assert all(r.status_code == 200 for r in responses)
    return [r.json()["predictions"][0] for r in responses]


def test_concurrent_requests_share_forward_passes_and_answers(server: Server) -> None:
    texts = [f"{t} {i}" for i in range(8) for t in TITLES]
    alone = [
        predict(server, {"texts": [t], "explain": True}).json()["predictions"][0] for t in texts
    ]
    before = httpx.get(f"{server.url}/health").json()
    together = asyncio.run(_concurrently(server.url, texts))
    after = httpx.get(f"{server.url}/health").json()
    assert after["requests"] - before["requests"] == len(texts)
    assert after["batches"] - before["batches"] < len(texts) / 2  # merged into shared passes
    for served, wanted in zip(together, alone, strict=True):
        same(served, wanted)


LONG_TEXTS = [" ".join(TITLES * 3)] * 1000  # long texts: a request that takes a while


@pytest.fixture(scope="module")
def default_server(trained_run: Path) -> Iterator[Server]:
    """The module's tiny run served with the default limits (1,000 texts a request)."""
    server = start_server(trained_run)
    yield server
    server.stop()


def _batched(passes: int, max_batch: int, requests: int) -> tuple[list[list[str]], int]:
    """Answers to `requests` concurrent one-text requests through a `MicroBatcher`, and the
    most passes that ran at once (each pass takes 20 ms, off the GIL, as a backend's would)."""
    import threading

    from attnclf.serve import MicroBatcher

    lock, now, most = threading.Lock(), [0], [0]

    def predict(texts: list[str]) -> list[str]:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.02)
        with lock:
            now[0] -= 1
        return [t.upper() for t in texts]

    async def main() -> list[list[str]]:
        batcher = MicroBatcher(predict, max_batch, 0.0, passes=passes)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.predict([f"t{i}"]) for i in range(requests)))
        finally:
            await batcher.stop()

    return asyncio.run(main()), most[0]


@pytest.mark.parametrize(
    ("passes", "max_batch", "side_by_side"),
    [(2, 4, 2), (2, 64, 1), (1, 4, 1)],  # a full batch waiting, none waiting, one pass allowed
)
def test_a_second_pass_runs_beside_the_first_only_while_a_full_batch_waits(
    passes: int, max_batch: int, side_by_side: int
) -> None:
    answers, most = _batched(passes, max_batch, 40)
    assert answers == [[f"T{i}"] for i in range(40)]  # each request gets its own answer
    assert most == side_by_side


def test_a_request_of_no_texts_is_answered_with_no_predictions(server: Server) -> None:
    response = predict(server, {"texts": []})
    assert response.status_code == 200 and response.json() == {"predictions": []}


def test_json_nested_100000_deep_is_a_400(default_server: Server) -> None:
    body = b'{"texts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = httpx.post(f"{default_server.url}/predict", content=body, timeout=30)
    assert response.status_code == 400
    assert "not valid JSON (recursion limit exceeded" in response.json()["error"]


def test_health_and_small_requests_answer_while_a_big_explain_runs(default_server: Server) -> None:
    url = default_server.url

    async def scenario() -> tuple[list[float], float, float]:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            big = asyncio.ensure_future(
                client.post("/predict", json={"texts": LONG_TEXTS, "explain": True})
            )
            await asyncio.sleep(0.3)  # the big request is being explained
            waits = []
            for _ in range(5):
                started = time.monotonic()
                assert (await client.get("/health")).status_code == 200
                waits.append(time.monotonic() - started)
            started = time.monotonic()
            small = await client.post("/predict", json={"texts": ["Stocks rally"]})
            small_wait = time.monotonic() - started
            assert small.status_code == 200 and not big.done()  # still in flight
            big_started = started
            response = await big
            assert response.status_code == 200 and len(response.json()["predictions"]) == 1000
            return waits, small_wait, time.monotonic() - big_started

    waits, small_wait, big_left = asyncio.run(scenario())
    assert max(waits) < 0.1, f"/health took {max(waits):.3f} s during the big request"
    assert small_wait < big_left  # the plain request did not queue behind the explained one


def test_sigterm_finishes_in_flight_requests_then_exits(trained_run: Path) -> None:
    server = start_server(trained_run)
    texts = LONG_TEXTS
    finished: list[float] = []

    async def request(client: httpx.AsyncClient) -> httpx.Response:
        response = await client.post("/predict", json={"texts": texts})
        finished.append(time.monotonic())
        return response

    async def in_flight() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            requests = [asyncio.ensure_future(request(client)) for _ in range(6)]
            await asyncio.sleep(0.2)
            signalled.append(time.monotonic())
            server.process.send_signal(signal.SIGTERM)
            return await asyncio.gather(*requests)

    signalled: list[float] = []
    responses = asyncio.run(in_flight())
    assert max(finished) > signalled[0]  # still in flight when SIGTERM came
    assert [r.status_code for r in responses] == [200] * 6
    assert all(len(r.json()["predictions"]) == 1000 for r in responses)
    assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/health", timeout=2)


@pytest.mark.parametrize(
    ("make_run", "message"),
    [
        (lambda run, tmp: tmp / "missing", "run folder not found"),
        (lambda run, tmp: run, "has no model.onnx; run `attnclf export"),
    ],
    ids=["missing run", "onnx backend without an export"],
)
def test_a_run_that_fails_to_load_is_one_line_and_exit_2(
    trained_run: Path, tmp_path: Path, run_cli, make_run, message: str
) -> None:
    result = run_cli("serve", "--run", make_run(trained_run, tmp_path), "--backend", "onnx")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_port_in_use_is_one_line_and_exit_2(server: Server, trained_run: Path, run_cli) -> None:
    port = server.url.rsplit(":", 1)[1]
    result = run_cli("serve", "--run", trained_run, "--port", port)
    assert result.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in result.stderr


async def _soak(url: str, total: int, concurrency: int) -> dict[int, int]:
    """`total` single-text requests, every 100th malformed; the count of each status."""
    statuses: dict[int, int] = {}
    sent = iter(range(total))
    good = json.dumps({"texts": ["Stocks rally as oil prices fall"]}).encode()

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:  # one connection each
            for i in sent:
                body = b'{"texts": [' if i % 100 == 0 else good
                status = (await client.post("/predict", content=body)).status_code
                statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


@pytest.mark.slow
def test_soak_of_10000_requests_leaves_the_server_alive_and_its_memory_flat(
    trained_run: Path,
) -> None:
    server = start_server(trained_run)
    try:
        process = psutil.Process(server.process.pid)
        asyncio.run(_soak(server.url, 1_000, 16))  # warm up: allocator pools, caches
        before = process.memory_info().rss
        started = time.monotonic()
        statuses = asyncio.run(_soak(server.url, 10_000, 16))
        elapsed = time.monotonic() - started
        after = process.memory_info().rss
        assert statuses == {200: 9_900, 400: 100}
        assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
        assert after - before < 20 * 2**20, f"RSS grew {(after - before) / 2**20:.1f} MiB"
        print(f"soak: {10_000 / elapsed:.0f} requests/s, RSS {before >> 20} -> {after >> 20} MiB")
    finally:
        assert server.stop() in (0, -signal.SIGTERM)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
EDGE_INTEGERS = [0, 1, 4, 5, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63) - 1]
# Shaped like the schema, each field of either the right type (edge values included) or any JSON.
BODIES = st.fixed_dictionaries(
    {
        "texts": st.one_of(*[st.lists(st.text(max_size=40), min_size=1, max_size=8)] * 3, JSON),
        "top_k": st.sampled_from(EDGE_INTEGERS) | st.integers() | JSON,
    },
    optional={"explain": st.booleans() | JSON, "text": JSON},
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES | BODIES | BODIES | JSON)
@example(body={"texts": ["a"], "top_k": 2**63})  # the known cases, always tried
@example(body={"texts": [[[[]]]]})
def test_no_json_body_gets_a_500(server: Server, body: object) -> None:
    response = httpx.post(f"{server.url}/predict", content=json.dumps(body), timeout=30)
    assert response.status_code < 500, response.text
    answer = response.json()
    if response.status_code == 200:
        assert len(answer["predictions"]) == len(body["texts"])
    else:
        assert set(answer) == {"error"} and answer["error"]


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_no_byte_string_gets_a_500(server: Server, raw: bytes) -> None:
    response = httpx.post(f"{server.url}/predict", content=raw, timeout=30)
    assert response.status_code < 500, response.text
    assert set(response.json()) == {"predictions"} if response.is_success else {"error"}


def _workers(parent: psutil.Process) -> list[psutil.Process]:
    """The uvicorn worker processes under `parent` (not multiprocessing's resource tracker)."""
    return [p for p in parent.children() if "spawn_main" in " ".join(p.cmdline())]


def test_two_workers_share_the_port_and_sigterm_stops_them_after_in_flight_requests(
    trained_run: Path,
) -> None:
    server = start_server(trained_run, "--workers", "2")
    parent = psutil.Process(server.process.pid)
    port = int(server.url.rsplit(":", 1)[1])
    deadline = time.monotonic() + 60
    while len(workers := _workers(parent)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(workers) == 2
    for worker in workers:  # each worker accepts on the one shared socket
        listening = [c for c in worker.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
        assert [c.laddr.port for c in listening] == [port]
    answers = asyncio.run(_concurrently(server.url, TITLES * 4))
    assert [a["label"] is None for a in answers] == [t == "the of and" for t in TITLES * 4]

    async def in_flight() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            requests = [
                asyncio.ensure_future(client.post("/predict", json={"texts": LONG_TEXTS}))
                for _ in range(2)
            ]
            await asyncio.sleep(0.2)
            server.process.send_signal(signal.SIGTERM)
            return await asyncio.gather(*requests)

    responses = asyncio.run(in_flight())
    assert [r.status_code for r in responses] == [200] * 2
    assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
