"""The web export in a real browser: headless Chromium opens the demo page from a 127.0.0.1
server, classifies 50 SST-2 dev sentences with transformers.js + onnxruntime-web, and every label
and probability must match Python onnxruntime on the same ONNX file. A tiny sentence-transformers
model exported the same way gets the similarity page, whose cosines for 10 STS-B dev pairs must
match Python onnxruntime's within 1e-4 (int8 and fp32 graphs); so must a static model's (a token table
and its weighted mean, alembert's own folder and one model2vec wrote), whose fp32 vectors in the page are
PyTorch's.

Needs Chromium, Node.js and the npm packages of web/package.json (``make web-deps``, run by
``make test``); without them each test is skipped with the one-line reason."""

import json
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from alembert.cli.main import main
from alembert.errors import AlembertError
from alembert.export import browser
from alembert.export.web import GRAPHS, WEB_INFO, download_bytes, export_web, make_server, page_url

REASON = browser.missing()
pytestmark = [pytest.mark.cli, pytest.mark.skipif(REASON is not None, reason=f"browser test not run: {REASON}")]
N_SENTENCES = 50


def _decisive(teacher: Path, out: Path, texts: list[str], labels: list[int]) -> Path:
    """The tiny random teacher fitted for a few seconds to the test sentences: its probabilities
    spread over (0, 1) and both labels occur, so matching labels says something (the random head
    gives about the same probability to every sentence)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(teacher)
    model = AutoModelForSequenceClassification.from_pretrained(teacher)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    model.train()
    for _ in range(15):
        for i in range(0, len(texts), 25):
            batch = tokenizer(texts[i : i + 25], padding=True, return_tensors="pt")
            model(**batch, labels=torch.tensor(labels[i : i + 25])).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def dev():
    from alembert.data.readers import default_data_dir, load_glue_split

    return load_glue_split("sst2", default_data_dir(), "dev")[:N_SENTENCES]


@pytest.fixture(scope="module")
def sentences(dev):
    return list(dev["text_a"])


@pytest.fixture(scope="module")
def web_dir(tiny_teacher, dev, tmp_path_factory):
    """Exported through the CLI, as a user would: alembert export MODEL --web --output DIR."""
    root = tmp_path_factory.mktemp("web")
    student = _decisive(tiny_teacher, root / "student", dev["text_a"], dev["label"])
    assert main(["export", str(student), "--web", "--output", str(root / "student-web")]) == 0
    return root / "student-web"


def test_folder_is_a_transformers_js_model_with_its_page_and_runtime(web_dir):
    info = json.loads((web_dir / WEB_INFO).read_text())
    for path in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "labels.json",
        "index.html",
        "demo.js",
        *GRAPHS.values(),
    ]:
        assert (web_dir / path).is_file(), path
    assert json.loads((web_dir / "labels.json").read_text()) == info["labels"] == ["negative", "positive"]
    assert json.loads((web_dir / "config.json").read_text())["model_type"] == "bert"
    assert info["export"]["int8"]["quantization"] == "int8" and info["export"]["fp32"]["quantization"] is None
    assert (
        info["export"]["fp32"]["max_abs_diff_vs_torch"] < 1e-4
        and info["export"]["int8"]["argmax_agreement_vs_fp32_onnx"] == 1
    )
    import onnx

    ops = {n.op_type for n in onnx.load(web_dir / GRAPHS["q8"]).graph.node}
    assert "MatMulInteger" in ops and "MatMul" not in ops
    assert info["files"]["q8"]["bytes"] < info["files"]["fp32"]["bytes"]
    pins = json.loads((browser.REPO / "web" / "package.json").read_text())["dependencies"]
    for name in ("@huggingface/transformers", "onnxruntime-web"):
        assert info["versions"][name] == pins[name]
    for file in info["runtime"].values():
        assert (web_dir / "vendor" / file).stat().st_size > 0
    licences = {p.name.split("-")[0] for p in (web_dir / "vendor" / "LICENSES").iterdir()}
    assert {"@huggingface__transformers", "onnxruntime"} <= licences
    for asset in ("index.html", "demo.js"):  # no CDN, no remote host: every URL is relative
        assert "https://" not in (web_dir / asset).read_text() and "http://" not in (web_dir / asset).read_text()
    sizes = download_bytes(web_dir, "q8")
    assert info["files"]["q8"]["path"] in sizes and GRAPHS["fp32"] not in sizes


def test_browser_labels_and_probabilities_match_python_onnxruntime(web_dir, sentences, tmp_path):
    import numpy as np

    shot = tmp_path / "demo.png"
    with browser.serving(web_dir) as url:
        page = browser.run_page(url + "?threads=1", sentences, repeats=1, warmup=2, screenshot=shot)
    assert page["external"] == [], "the page asked for something outside 127.0.0.1"
    assert page["ready"]["threads"] == 1 and page["ready"]["dtype"] == "q8"
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fetched = {u["url"].rsplit("/", 2)[-2] + "/" + u["url"].rsplit("/", 1)[-1] for u in page["downloads"]}
    assert "onnx/model_quantized.onnx" in fetched and "onnx/model.onnx" not in fetched  # the int8 graph ran

    web = page["bench"]["rows"]
    py = browser.python_predictions(web_dir, sentences, dtype="q8", repeats=1, warmup=1)["rows"]
    assert [r["text"] for r in web] == sentences and len(py) == N_SENTENCES
    for w, p in zip(web, py, strict=True):
        assert w["input_ids"] == p["input_ids"], f"tokenisation differs on {w['text']!r}"
    assert [w["label"] for w in web] == [p["label"] for p in py]
    gap = np.abs(np.array([w["probs"] for w in web]) - np.array([p["probs"] for p in py])).max()
    assert gap < 1e-3
    positive = [p["probs"][1] for p in py]
    assert 0 < sum(p["label"] == "positive" for p in py) < N_SENTENCES and np.std(positive) > 0.1  # a decisive model
    summary = browser.latency_summary(web)
    print(
        f"\nbrowser (headless Chromium, WASM, 1 thread), {N_SENTENCES} SST-2 dev sentences: every label equal to "
        f"Python's, max |prob diff| {gap:.1e}, latency median {summary['median_ms']:.2f} ms, p90 "
        f"{summary['p90_ms']:.2f} ms"
    )
    for w, p in list(zip(web, py, strict=True))[:3]:
        print(
            f"  {w['label']:8s} p={max(w['probs']):.4f} (python {max(p['probs']):.4f}) "
            f"{w['ms'][0]:6.2f} ms  {w['text'][:60]}"
        )


def test_page_with_all_threads_is_cross_origin_isolated(web_dir, sentences):
    with browser.serving(web_dir) as url:
        page = browser.run_page(url + "?threads=max&dtype=fp32", sentences[:4], repeats=1, warmup=1)
    ready = page["ready"]
    assert ready["crossOriginIsolated"] is True and ready["dtype"] == "fp32"
    assert ready["threads"] == page["bench"]["hardwareConcurrency"]
    py = browser.python_predictions(web_dir, sentences[:4], dtype="fp32", repeats=1, warmup=0)["rows"]
    assert [w["label"] for w in page["bench"]["rows"]] == [p["label"] for p in py]


def _get(url: str):
    try:
        with urllib.request.urlopen(url) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, b""


def test_server_serves_only_the_folder_with_isolation_headers(web_dir):
    server = make_server(web_dir, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = page_url(server, web_dir)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/student-web/")
        status, headers, body = _get(url)
        assert status == 200 and b'src="demo.js"' in body
        assert (
            headers["Cross-Origin-Opener-Policy"] == "same-origin"
            and headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        )
        wasm = json.loads((web_dir / WEB_INFO).read_text())["runtime"]["wasm"]
        assert _get(url + "vendor/" + wasm)[1]["Content-Type"] == "application/wasm"
        assert _get(url + "demo.js")[1]["Content-Type"].startswith("text/javascript")
        root = url.rsplit("/", 2)[0]
        assert _get(root + "/")[2] == body  # the bare address redirects to the page
        assert _get(root + "/etc/passwd")[0] == 404 and _get(url + "../../etc/passwd")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_bad_inputs_are_one_line_errors(web_dir, tmp_path, capsys, monkeypatch):
    (tmp_path / "notes.txt").write_text("not a model")
    assert main(["export", str(tmp_path), "--web", "--output", str(tmp_path / "out")]) == 2
    assert main(["serve-web", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("error: ") and "config.json" in err[0] and "not a web export" in err[1]
    monkeypatch.setenv("ALEMBERT_WEB_NODE", str(tmp_path / "empty"))
    with pytest.raises(AlembertError, match="vendored JavaScript is missing"):
        export_web(web_dir, tmp_path / "again")  # checked before any export work
    out = tmp_path / "taken"
    shutil.copytree(web_dir, out)
    with pytest.raises(AlembertError, match="--overwrite"):
        export_web(web_dir, out)


# Sentence-embedding models: the same layout, the similarity page, cosines equal to Python's.
N_PAIRS = 10


@pytest.fixture(scope="module")
def sts_pairs():
    import csv

    from alembert.data.readers import default_data_dir

    with (Path(default_data_dir()) / "STS-B" / "dev.tsv").open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [[r["sentence1"], r["sentence2"]] for r in rows[:N_PAIRS]]


@pytest.fixture(scope="module")
def emb_web_dir(tiny_bert, tmp_path_factory):
    """A tiny sentence-transformers model (tiny BERT, mean pooling, normalisation), exported through the CLI."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as m

    root = tmp_path_factory.mktemp("emb-web")
    t = m.Transformer(str(tiny_bert))
    SentenceTransformer(
        modules=[t, m.Pooling(t.get_embedding_dimension(), pooling_mode="mean"), m.Normalize()], device="cpu"
    ).save(str(root / "st"))
    assert main(["export", str(root / "st"), "--web", "--output", str(root / "st-web")]) == 0
    return root / "st-web"


def test_embedding_folder_has_the_graphs_and_the_similarity_page(emb_web_dir):
    import onnx

    info = json.loads((emb_web_dir / WEB_INFO).read_text())
    assert info["task"] == "feature-extraction" and info["output"] == "sentence_embedding"
    assert info["pooling"] == "mean" and info["normalize"] is True and info["dim"] == 32 and "labels" not in info
    for path in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "modules.json",
        "index.html",
        "demo.js",
        *GRAPHS.values(),
    ]:
        assert (emb_web_dir / path).is_file(), path
    assert not (emb_web_dir / "labels.json").exists()
    for graph in GRAPHS.values():
        assert [o.name for o in onnx.load(emb_web_dir / graph).graph.output] == ["sentence_embedding"]
    assert (
        info["export"]["fp32"]["max_abs_diff_vs_torch"] < 1e-4
        and info["export"]["int8"]["min_cosine_vs_fp32_onnx"] > 0.9
    )
    page = (emb_web_dir / "index.html").read_text()
    assert 'id="text-a"' in page and 'id="text-b"' in page and 'id="cosine"' in page
    for asset in ("index.html", "demo.js"):
        assert (
            "https://" not in (emb_web_dir / asset).read_text() and "http://" not in (emb_web_dir / asset).read_text()
        )


@pytest.mark.parametrize("dtype,threads", [("q8", "1"), ("fp32", "max")])
def test_browser_cosines_match_python_onnxruntime(emb_web_dir, sts_pairs, dtype, threads, tmp_path):
    import numpy as np

    shot = tmp_path / "similarity.png"
    with browser.serving(emb_web_dir) as url:
        page = browser.run_page(
            f"{url}?threads={threads}&dtype={dtype}", sts_pairs, repeats=1, warmup=2, screenshot=shot
        )
    assert page["external"] == [], "the page asked for something outside 127.0.0.1"
    assert page["ready"]["dtype"] == dtype and shot.stat().st_size > 10_000
    fetched = {u["url"].rsplit("/", 2)[-2] + "/" + u["url"].rsplit("/", 1)[-1] for u in page["downloads"]}
    other = "fp32" if dtype == "q8" else "q8"
    assert GRAPHS[dtype] in fetched and GRAPHS[other] not in fetched

    web = page["bench"]
    py = browser.python_embeddings(emb_web_dir, sts_pairs, dtype=dtype, repeats=1, warmup=1)
    assert [r["texts"] for r in web["rows"]] == sts_pairs and len(web["sentences"]) == 2 * N_PAIRS
    for w, p in zip(web["sentences"], py["sentences"], strict=True):
        assert w["input_ids"] == p["input_ids"], f"tokenisation differs on {w['text']!r}"
    web_cos, py_cos = (np.array([r["cosine"] for r in x["rows"]]) for x in (web, py))
    gap = np.abs(web_cos - py_cos).max()
    emb_gap = np.abs(
        np.array([s["embedding"] for s in web["sentences"]]) - np.array([s["embedding"] for s in py["sentences"]])
    ).max()
    assert gap < 1e-4, f"browser cosines differ from Python's by {gap:.1e}"
    assert np.ptp(py_cos) > 1e-3  # the pairs do not all get one cosine: the comparison says something
    summary = browser.latency_summary(web["sentences"])
    print(
        f"\nbrowser ({dtype}, threads={threads}), {N_PAIRS} STS-B dev pairs: max |cosine diff| vs Python {gap:.1e}, "
        f"max |embedding diff| {emb_gap:.1e}, cosines {py_cos.min():.3f}..{py_cos.max():.3f}, "
        f"latency median {summary['median_ms']:.2f} ms per sentence"
    )


def test_embedding_export_overwrites_a_web_folder(emb_web_dir, web_dir, tmp_path):
    out = tmp_path / "taken"
    shutil.copytree(web_dir, out)  # a classifier's web folder (its labels.json recorded as its own)
    export_web(emb_web_dir.parent / "st", out, overwrite=True)
    assert not (out / "labels.json").exists() and 'id="text-b"' in (out / "index.html").read_text()
    assert json.loads((out / WEB_INFO).read_text())["task"] == "feature-extraction"
    for d, graph in GRAPHS.items():
        assert json.loads((out / WEB_INFO).read_text())["files"][d]["bytes"] == (out / graph).stat().st_size


# Static models (no layers: a token table, weighted mean, normalised): the similarity page runs the graph of
# alembert/export/static.py, for a folder alembert saved and for one model2vec.distill wrote (its own tokenizer).
@pytest.fixture(
    scope="module", params=[("alembert", "q8"), ("model2vec", "fp32")], ids=["alembert-q8", "model2vec-fp32"]
)
def static_web(request, tiny_bert, bert_tokenizer, tmp_path_factory):
    """(the static source folder, its web folder exported through the CLI, the graph the page runs)."""
    from test_static_export import distilled_static, random_static

    source, dtype = request.param
    root = tmp_path_factory.mktemp(f"static-web-{source}")
    src = (
        random_static(root / "static", bert_tokenizer)
        if source == "alembert"
        else distilled_static(root / "m2v", tiny_bert)
    )
    assert main(["export", str(src), "--web", "--output", str(root / "static-web")]) == 0
    return src, root / "static-web", dtype


def test_static_model_runs_in_the_browser_with_python_s_vectors(static_web, sts_pairs, tmp_path):
    import numpy as np
    import onnx
    import torch

    from alembert.models.static import load_static_model

    src, folder, dtype = static_web
    info = json.loads((folder / WEB_INFO).read_text())
    assert info["task"] == "feature-extraction" and info["pooling"] == "weighted mean" and info["dim"] == 16
    assert info["export"]["fp32"]["static"] is True and info["export"]["fp32"]["max_abs_diff_vs_torch"] < 1e-4
    assert "DequantizeLinear" in {n.op_type for n in onnx.load(folder / GRAPHS["q8"]).graph.node}
    assert info["files"]["q8"]["bytes"] < 0.3 * info["files"]["fp32"]["bytes"]

    with browser.serving(folder) as url:
        page = browser.run_page(f"{url}?threads=1&dtype={dtype}", sts_pairs, repeats=1, warmup=2)
    assert page["external"] == [], "the page asked for something outside 127.0.0.1"
    web = page["bench"]
    py = browser.python_embeddings(folder, sts_pairs, dtype=dtype, repeats=1, warmup=1)
    for w, p in zip(web["sentences"], py["sentences"], strict=True):
        assert w["input_ids"] == p["input_ids"], f"tokenisation differs on {w['text']!r}"
    web_cos, py_cos = (np.array([r["cosine"] for r in x["rows"]]) for x in (web, py))
    assert np.abs(web_cos - py_cos).max() < 1e-4 and np.ptp(py_cos) > 1e-3
    web_emb = np.array([s["embedding"] for s in web["sentences"]])
    if dtype == "fp32":  # the browser's vectors are PyTorch's: the static model itself, one sentence at a time
        model, tok = load_static_model(src)
        with torch.no_grad():
            want = np.concatenate(
                [
                    model(
                        **{k: v for k, v in tok(s["text"], return_tensors="pt").items() if k != "token_type_ids"}
                    ).embeddings.numpy()
                    for s in web["sentences"]
                ]
            )
        assert np.abs(web_emb - want).max() < 1e-4
    summary = browser.latency_summary(web["sentences"])
    print(
        f"\nstatic model in the browser ({dtype}, 1 thread), {N_PAIRS} STS-B dev pairs: max |cosine diff| vs "
        f"Python {np.abs(web_cos - py_cos).max():.1e}, latency median {summary['median_ms']:.2f} ms per sentence"
    )
