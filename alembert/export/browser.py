"""Run a web export in a real headless Chromium, and the same sentences in Python onnxruntime.

Used by the browser test (tests/test_web.py) and the latency benchmark
(benchmarks/web_latency.py). The browser side is ``web/browser.mjs`` (playwright-core driving the
system's Chromium, every non-local request blocked); the Python side runs the same ONNX file the
page loaded, one sentence at a time, tokenised by the folder's own tokenizer.json, with the
same protocol (warm-up, then each sentence ``repeats`` times through tokenisation + run + softmax,
then the ONNX run alone) so the latencies compare. For an embedding folder the same is done per
sentence of each pair (:func:`python_embeddings`), and the pair's cosine compared.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from alembert.errors import AlembertError
from alembert.export.web import GRAPHS, REPO, WEB_INFO, make_server, node_modules_dir, page_url

DRIVER = REPO / "web" / "browser.mjs"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def missing() -> str | None:
    """Why the browser cannot run here (one line), or None when Chromium, Node.js, the driver
    and the npm packages are all present."""
    if chromium_path() is None:
        return "no Chromium on PATH (make web-deps installs the Debian package chromium)"
    if shutil.which("node") is None:
        return "no node on PATH (Node.js runs the playwright-core driver; make web-deps needs npm)"
    if not DRIVER.is_file():
        return f"the browser driver {DRIVER} is missing (it lives in the repository, not the wheel)"
    try:
        node_modules_dir()
    except AlembertError as exc:
        return str(exc)
    return None


@contextmanager
def serving(folder: str | Path):
    """The folder served on a free 127.0.0.1 port in a background thread; yields the page URL."""
    server = make_server(folder, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield page_url(server, folder)
    finally:
        server.shutdown()
        server.server_close()


def run_page(
    url: str,
    sentences: list[str] | None = None,
    repeats: int = 3,
    warmup: int = 5,
    screenshot: str | Path | None = None,
    timeout_s: float = 240,
) -> dict:
    """Open ``url`` in headless Chromium; with ``sentences``, classify each in the page. Returns the
    driver's JSON: ``ready`` (threads, load time), ``bench.rows`` (label, probs, ms, input_ids; for an
    embedding page ``sentences`` are pairs, and ``bench`` has ``rows`` (cosines) and ``sentences``),
    ``downloads`` (url, bytes) and ``external`` (blocked non-local requests)."""
    reason = missing()
    if reason:
        raise AlembertError(f"cannot run the browser: {reason}")
    cmd = [
        "node",
        str(DRIVER),
        "--node-modules",
        str(node_modules_dir()),
        "--url",
        url,
        "--chromium",
        chromium_path(),
        "--timeout-ms",
        str(int(timeout_s * 1000)),
        "--repeats",
        str(repeats),
        "--warmup",
        str(warmup),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        if sentences is not None:
            path = Path(tmp) / "sentences.json"
            path.write_text(json.dumps(sentences))
            cmd += ["--sentences", str(path)]
        if screenshot:
            cmd += ["--screenshot", str(Path(screenshot).resolve())]
        out = Path(tmp) / "result.json"
        proc = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=timeout_s + 60)
        if not out.is_file():
            raise AlembertError(
                f"the browser driver wrote nothing (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"
            )
        result = json.loads(out.read_text())
    if result.get("error"):
        raise AlembertError(f"the browser run failed: {result['error']}")
    return result


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _python_model(folder: Path, dtype: str, threads: int, output: str = "logits"):
    """(the folder's ``dtype`` graph as the ONNX runtime runs it, ``feeds(text)``: one sentence tokenised
    as the page does, ready for ``model.run``)."""
    from transformers import AutoTokenizer

    from alembert.runtimes.onnxruntime import graph_model

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = graph_model(folder / GRAPHS[dtype], output, threads=threads)

    def feeds(text: str) -> dict:
        return model.prepare(dict(tokenizer(text, truncation=True, return_tensors="np")))

    return model, feeds


def python_predictions(
    folder: str | Path, sentences: list[str], dtype: str = "q8", threads: int = 1, repeats: int = 3, warmup: int = 5
) -> dict:
    """The same ONNX file in Python onnxruntime, one sentence per run as in the page: per sentence
    the label, the label probabilities, the token ids and ``repeats`` timings (ms) of
    tokenisation + run + softmax (``ms``) and of the run alone (``model_ms``)."""
    folder = Path(folder)
    labels = json.loads((folder / WEB_INFO).read_text())["labels"]
    model, feeds = _python_model(folder, dtype, threads)

    def once(text: str):
        f = feeds(text)
        return softmax(model.run(f))[0], f["input_ids"][0]

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3

    for i in range(warmup):
        once(sentences[i % len(sentences)])
    rows = []
    for text in sentences:
        runs = [timed(lambda: once(text)) for _ in range(repeats)]  # noqa: B023 (called at once)
        f = feeds(text)
        model_runs = [timed(lambda: model.run(f)) for _ in range(repeats)]  # noqa: B023
        probs, ids = once(text)
        rows.append(
            {
                "text": text,
                "label": labels[int(probs.argmax())],
                "probs": probs.tolist(),
                "ms": runs,
                "model_ms": model_runs,
                "input_ids": ids.tolist(),
            }
        )
    return {"threads": threads, "dtype": dtype, "rows": rows}


def python_embeddings(
    folder: str | Path, pairs: list[list[str]], dtype: str = "q8", threads: int = 1, repeats: int = 3, warmup: int = 5
) -> dict:
    """An embedding folder's ONNX file in Python onnxruntime, one sentence per run as in the page:
    ``rows`` (per pair: the texts and the cosine of their ``sentence_embedding``s) and ``sentences``
    (per sentence: token ids, embedding, ``repeats`` timings of tokenisation + run (``ms``) and of
    the run alone (``model_ms``)), the page's ``bench`` structure."""
    folder = Path(folder)
    output = json.loads((folder / WEB_INFO).read_text())["output"]
    model, feeds = _python_model(folder, dtype, threads, output)

    def once(text: str):
        f = feeds(text)
        return model.run(f)[0], f["input_ids"][0]

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3

    flat = [t for pair in pairs for t in pair]
    for i in range(warmup):
        once(flat[i % len(flat)])
    sentences, rows = [], []
    for pair in pairs:
        embs = []
        for text in pair:
            runs = [timed(lambda: once(text)) for _ in range(repeats)]  # noqa: B023 (called at once)
            f = feeds(text)
            model_runs = [timed(lambda: model.run(f)) for _ in range(repeats)]  # noqa: B023
            emb, ids = once(text)
            embs.append(emb)
            sentences.append(
                {"text": text, "ms": runs, "model_ms": model_runs, "input_ids": ids.tolist(), "embedding": emb.tolist()}
            )
        rows.append({"texts": list(pair), "cosine": cosine(*embs)})
    return {"threads": threads, "dtype": dtype, "rows": rows, "sentences": sentences}


def cosine(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def latency_summary(rows: list[dict], key: str = "ms") -> dict:
    """Per-sentence latency = the median of its repeats; then the median and p90 over sentences."""
    per_sentence = np.array([np.median(r[key]) for r in rows])
    return {
        "median_ms": float(np.median(per_sentence)),
        "p90_ms": float(np.percentile(per_sentence, 90)),
        "sentences": len(rows),
    }
