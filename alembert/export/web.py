"""Export a fine-tuned classifier as a folder a web browser runs as it is, and serve it locally.

The folder is a transformers.js local model (``pipeline("text-classification", id)`` with
``env.localModelPath`` at its parent loads it) and a static demo page at the same time:

    config.json, tokenizer.json, tokenizer_config.json   the model's own files (id2label included)
    onnx/model.onnx, onnx/model_quantized.onnx           fp32 and int8 graphs (transformers.js names)
    labels.json                                           the label names, in id order
    alembert_web.json                                     task, files with sizes and sha256, versions, export checks
    index.html, demo.js                                   the demo: text box, label, probability, browser time
    vendor/                                               transformers.js and the onnxruntime-web WASM build,
                                                          copied from npm packages at export time, with licences

Nothing is fetched from a CDN: the JavaScript comes from ``web/package.json`` (pinned versions),
installed by ``make web-deps`` into ``.cache/web-node`` (or ``ALEMBERT_WEB_NODE``). The graphs are
the same as ``alembert export --onnx`` writes (opset-23 attention, fused layer norms, [CLS]-only
last layer, per-channel int8, here with 7-bit weights); onnxruntime-web runs them unchanged.

A sentence-embedding model (a sentence-transformers folder, as
:func:`alembert.export.embedding.is_embedding_dir` detects it) gets the same layout with the graphs of
:func:`alembert.export.embedding.export_embedding_onnx` (pooling, Dense and normalisation inside, output
``sentence_embedding``), its sentence-transformers module files, no ``labels.json``, and the similarity
demo (``similarity.html``/``similarity.js`` copied as ``index.html``/``demo.js``): two text boxes, the cosine
similarity of their embeddings and the browser time. See ``similarity.js`` for why it runs the graph
through transformers.js's ``AutoTokenizer`` + ``AutoModel`` rather than ``pipeline("feature-extraction")``.
A static model (a model2vec folder) gets the same page with the graph of
:func:`alembert.export.static.export_static_onnx` (token table, weighted mean, normalisation) and its model2vec
``config.json``: transformers.js knows no ``model2vec`` model type and runs the graph with its base model class,
which feeds ``input_ids``/``attention_mask`` and returns ``sentence_embedding`` by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from alembert.errors import AlembertError
from alembert.files import write_json_atomic

ASSETS = Path(__file__).with_name("web_assets")
REPO = Path(__file__).resolve().parents[2]
PACKAGE_JSON = REPO / "web" / "package.json"
NODE_ENV = "ALEMBERT_WEB_NODE"
DEFAULT_NODE_MODULES = REPO / ".cache" / "web-node" / "node_modules"
WEB_INFO = "alembert_web.json"
GRAPHS = {"fp32": "onnx/model.onnx", "q8": "onnx/model_quantized.onnx"}  # transformers.js dtype -> file
BUNDLE = ("@huggingface/transformers", "dist/transformers.min.js")  # the browser build, dependencies bundled
# onnxruntime-web's plain CPU build (SIMD + threads): 14 MB. transformers.js defaults to the
# asyncify build (27 MB) because it can also drive WebGPU; the page only asks for the WASM device,
# and the browser test checks that this build gives the Python runtime's probabilities.
RUNTIME = {"mjs": "ort-wasm-simd-threaded.mjs", "wasm": "ort-wasm-simd-threaded.wasm"}
NODE_ONLY = {"onnxruntime-node", "sharp"}  # transformers.js dependencies for Node.js: never in the browser
LICENCE_FILES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "NOTICE", "ThirdPartyNotices.txt")
HF_ID = re.compile(r"^[\w\-.]{1,96}$")  # a name transformers.js accepts as a local model id


def node_modules_dir(explicit: str | Path | None = None) -> Path:
    """The installed npm packages: ``explicit``, else ``$ALEMBERT_WEB_NODE``, else the repo's
    ``.cache/web-node/node_modules``; a missing transformers.js bundle is a one-line error."""
    folder = Path(explicit or os.environ.get(NODE_ENV) or DEFAULT_NODE_MODULES)
    if not (folder / BUNDLE[0] / BUNDLE[1]).is_file():
        raise AlembertError(
            f"the vendored JavaScript is missing: no {BUNDLE[0]}/{BUNDLE[1]} under {folder}; "
            f"run `make web-deps` (npm ci of web/package.json) or point {NODE_ENV} at its node_modules"
        )
    return folder


def _package(node_modules: Path, name: str) -> dict:
    path = node_modules / name / "package.json"
    if not path.is_file():
        raise AlembertError(f"npm package {name} is missing from {node_modules}; run `make web-deps` again")
    return json.loads(path.read_text())


def _check_pins(node_modules: Path) -> dict[str, str]:
    """Installed versions of web/package.json's packages; a version other than the pinned one is
    an error (a stale install would vendor other JavaScript than the repo says)."""
    pins = json.loads(PACKAGE_JSON.read_text())["dependencies"] if PACKAGE_JSON.is_file() else {}
    versions = {}
    for name in (BUNDLE[0], "onnxruntime-web"):
        versions[name] = _package(node_modules, name)["version"]
        if name in pins and pins[name] != versions[name]:
            raise AlembertError(
                f"{node_modules} has {name} {versions[name]} but web/package.json pins {pins[name]}; "
                "run `make web-deps`"
            )
    return versions


def _resolve(name: str, below: Path, node_modules: Path) -> Path | None:
    """Node's lookup: ``below/node_modules/name``, then each folder up to the top node_modules."""
    for base in [below, *below.parents]:
        candidate = (base / name) if base == node_modules else (base / "node_modules" / name)
        if (candidate / "package.json").is_file():
            return candidate
        if base == node_modules:
            return None
    return None


def _browser_packages(node_modules: Path) -> list[Path]:
    """transformers.js and its dependencies, transitively, without the Node.js-only ones: the
    code the browser bundle and the WASM build contain, whose licences travel with them."""
    seen, todo = [], [(BUNDLE[0], node_modules)]
    while todo:
        name, below = todo.pop()
        path = None if name in NODE_ONLY else _resolve(name, below, node_modules)
        if path is None or path in seen:
            continue
        seen.append(path)
        todo.extend((dep, path) for dep in json.loads((path / "package.json").read_text()).get("dependencies", {}))
    return sorted(seen)


def _vendor(node_modules: Path, dest: Path) -> dict[str, str]:
    """Copy the browser bundle, the WASM runtime and every licence into ``dest``; returns the
    vendored packages' versions. A package without a licence file gets a note with the licence
    its package.json declares (onnxruntime-web ships none in its npm package)."""
    dest.mkdir(parents=True)
    shutil.copy2(node_modules / BUNDLE[0] / BUNDLE[1], dest / Path(BUNDLE[1]).name)
    for file in RUNTIME.values():
        src = node_modules / "onnxruntime-web" / "dist" / file
        if not src.is_file():
            raise AlembertError(f"the vendored JavaScript is missing: {src}; run `make web-deps`")
        shutil.copy2(src, dest / file)
    licences = dest / "LICENSES"
    licences.mkdir()
    versions = {}
    for path in _browser_packages(node_modules):
        meta = json.loads((path / "package.json").read_text())
        name = meta["name"]
        versions.setdefault(name, meta["version"])
        stem = f"{name.replace('/', '__')}-{meta['version']}"
        found = [f for f in LICENCE_FILES if (path / f).is_file()]
        for f in found:
            shutil.copy2(path / f, licences / f"{stem}.{f}")
        if not found:
            (licences / f"{stem}.LICENSE-NOTE.txt").write_text(
                f"{name} {meta['version']} ships no licence file in its npm package; its package.json declares "
                f"the licence: {meta.get('license', 'unknown')}. Source: {json.dumps(meta.get('repository'))}\n"
            )
    return versions


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(partial(f.read, 1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _int8_check(folder: Path, output: str = "logits") -> dict:
    """Largest |logit| gap of the int8 graph vs the fp32 one, and argmax agreement, on the export
    check sentences (batch of 4, padded): what the quantisation alone changes. For an embedding
    graph (``output="sentence_embedding"``): the largest |component| gap and the lowest cosine."""
    import numpy as np
    from transformers import AutoTokenizer

    from alembert.export.graph import CHECK_SENTENCES
    from alembert.runtimes.onnxruntime import graph_model

    models = [graph_model(folder / GRAPHS[d], output, threads=1) for d in ("fp32", "q8")]
    enc = AutoTokenizer.from_pretrained(folder)(CHECK_SENTENCES, padding=True, return_tensors="np")
    fp32, int8 = (m.run(m.prepare(dict(enc))) for m in models)
    if output != "logits":
        cos = (fp32 * int8).sum(-1) / (np.linalg.norm(fp32, axis=-1) * np.linalg.norm(int8, axis=-1)).clip(1e-12)
        return {
            "max_abs_diff_vs_fp32_onnx": float(np.abs(int8 - fp32).max()),
            "min_cosine_vs_fp32_onnx": float(cos.min()),
        }
    return {
        "max_abs_diff_vs_fp32_onnx": float(np.abs(int8 - fp32).max()),
        "argmax_agreement_vs_fp32_onnx": float((int8.argmax(-1) == fp32.argmax(-1)).mean()),
    }


def export_web(
    model_dir: str | Path,
    out_dir: str | Path,
    overwrite: bool = False,
    node_modules: str | Path | None = None,
    first_token: bool = True,
    opset: int | None = None,
) -> Path:
    """Write the web folder for ``model_dir`` (a fine-tuned classifier, or a sentence-transformers
    embedding model: then the similarity demo) to ``out_dir``.

    The fp32 graph is :func:`alembert.export.onnx.export_onnx`'s (checked against PyTorch there);
    the int8 one is its quantisation with the same settings as ``--quantize int8`` except for
    7-bit weights (``reduce_range``): with full-range weights onnxruntime's x86 kernel on AVX2
    without VNNI saturates, and on a tiny model Python then disagreed with the browser (exact
    int32 WASM kernels) by 0.11 probability; with 7 bits every runtime computes the same numbers.
    Written through the same output guard as every export (:mod:`alembert.export.staging`): the
    output is checked before any work (a file, a read-only or full disk, a PyTorch model's own folder
    are one-line errors), built in a staged folder and moved into place; ``--overwrite`` replaces
    only the files the previous web export wrote (listed in its ``alembert_web.json``)."""
    from alembert.export.embedding import OUTPUT as EMBEDDING_OUTPUT
    from alembert.export.graph import quantize_int8
    from alembert.export.onnx import export_onnx
    from alembert.export.staging import EXPORT_INFO, check_output, staged_folder
    from alembert.models.resolve import resolve_model

    out_dir = Path(out_dir)
    check_output(out_dir, resolve_model(model_dir), overwrite)
    node_modules = node_modules_dir(node_modules)  # fail before the slow part
    pinned = _check_pins(node_modules)
    with staged_folder(out_dir, overwrite, record=WEB_INFO) as tmp:
        exported = export_onnx(model_dir, tmp / "export", opset=opset, first_token=first_token)
        if not (exported / "tokenizer.json").is_file():
            raise AlembertError(
                f"model {model_dir} has no fast tokenizer (tokenizer.json), which transformers.js needs; "
                "save it with a fast tokenizer (use_fast=True)"
            )
        (tmp / "onnx").mkdir()
        quantize_int8(exported / "model.onnx", tmp / GRAPHS["q8"], reduce_range=True)
        os.replace(exported / "model.onnx", tmp / GRAPHS["fp32"])
        info = json.loads((exported / EXPORT_INFO).read_text())
        for f in exported.iterdir():
            if f.name not in (EXPORT_INFO, "clean.onnx", "README.md"):  # the ONNX card describes the other layout
                os.replace(f, tmp / f.name)
        shutil.rmtree(exported)
        embedding = info.get("kind") == "embedding"  # export_onnx detected a sentence-transformers folder
        int8 = {
            **info,
            "quantization": "int8",
            "int8": "dynamic; per-channel weight MatMuls, embedding tables; 7-bit weights",
            **_int8_check(tmp, EMBEDDING_OUTPUT if embedding else "logits"),
        }
        for key in ("max_abs_diff_vs_torch", "argmax_agreement", "min_cosine_vs_torch"):
            int8.pop(key, None)  # those were the fp32 graph's
        if embedding:
            labels = None
            for asset, name in (("similarity.html", "index.html"), ("similarity.js", "demo.js")):
                shutil.copy2(ASSETS / asset, tmp / name)
        else:
            labels = _label_names(tmp)
            write_json_atomic(tmp / "labels.json", labels)
            for asset in ("index.html", "demo.js"):
                shutil.copy2(ASSETS / asset, tmp / asset)
        versions = _vendor(node_modules, tmp / "vendor")
        versions.update(pinned)
        task = (
            {
                "task": "feature-extraction",
                "output": EMBEDDING_OUTPUT,
                "dim": info["dim"],
                "pooling": info["pooling"],
                "normalize": info["normalize"],
            }
            if embedding
            else {"task": "text-classification", "labels": labels}
        )
        write_json_atomic(
            tmp / WEB_INFO,
            {
                "name": Path(model_dir).resolve().name,
                **task,
                "files": {
                    d: {"path": p, "bytes": (tmp / p).stat().st_size, "sha256": _sha256(tmp / p)}
                    for d, p in GRAPHS.items()
                },
                "runtime": RUNTIME,
                "owned": sorted(
                    {str(f.relative_to(tmp)) for f in tmp.rglob("*") if f.is_file()} | {WEB_INFO}
                ),  # what --overwrite may replace: this export's files, and only those
                "versions": versions,
                "export": {"fp32": info, "int8": int8},
            },
        )
    return out_dir


def _label_names(folder: Path) -> list[str]:
    """The class names in id order, as transformers reads them (a config.json without ``id2label``,
    which transformers 5 omits for default labels, gives LABEL_0, LABEL_1, ...)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    return [str(config.id2label[i]) for i in range(config.num_labels)]


def is_web_dir(folder: str | Path) -> bool:
    return (Path(folder) / WEB_INFO).is_file() and (Path(folder) / "index.html").is_file()


def download_bytes(folder: str | Path, dtype: str = "q8") -> dict[str, int]:
    """What a visitor's browser downloads to run the demo with one graph: page, scripts, WASM,
    model files (the other graph and the licences are never requested)."""
    folder = Path(folder)
    info = json.loads((folder / WEB_INFO).read_text())
    files = [
        "index.html",
        "demo.js",
        WEB_INFO,
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        f"vendor/{Path(BUNDLE[1]).name}",
        f"vendor/{RUNTIME['mjs']}",
        f"vendor/{RUNTIME['wasm']}",
        info["files"][dtype]["path"],
    ]
    return {f: (folder / f).stat().st_size for f in files if (folder / f).is_file()}


class _Handler(SimpleHTTPRequestHandler):
    """Serves one folder under ``/<mount>/``, cross-origin isolated (COOP + COEP: the WASM
    runtime needs SharedArrayBuffer for more than one thread), never cached, with the MIME types
    module scripts and streaming WASM compilation insist on.

    Safe by construction: only regular files whose resolved path (symbolic links followed) lies
    inside the folder are served, no listing of any folder; a request whose Host header is not the
    address the server is bound to (a DNS-rebinding page in the user's browser) is refused (421)."""

    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
        ".json": "application/json",
        ".onnx": "application/octet-stream",
    }

    def __init__(self, *args, mount: str, quiet: bool, **kwargs):
        self.mount, self.quiet = mount, quiet
        super().__init__(*args, **kwargs)

    def send_head(self):  # GET and HEAD: the bare address leads to the page
        if not self._host_ok():
            self.send_error(421, "Misdirected Request: the Host header is not this server's address")
            return None
        if urlsplit(self.path).path in ("/", ""):
            self.send_response(302)
            self.send_header("Location", f"/{self.mount}/")
            self.end_headers()
            return None
        path = Path(self.translate_path(self.path))
        if path.is_dir() and (path / "index.html").is_file():
            path = path / "index.html"
        root = Path(self.directory).resolve()
        real = path.resolve()
        if path.is_dir() and not urlsplit(self.path).path.endswith("/"):
            return super().send_head()  # the redirect to the folder's address with a slash
        if not real.is_relative_to(root) or not real.is_file():  # a link out, a folder without a page, nothing
            self.send_error(404, "File not found")
            return None
        return super().send_head()

    def list_directory(self, path):  # never a listing: only the page and its files are served
        self.send_error(404, "File not found")
        return None

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").strip().lower()
        port = self.server.server_address[1]
        return host in {f"127.0.0.1:{port}", f"localhost:{port}"} or (port == 80 and host in {"127.0.0.1", "localhost"})

    def translate_path(self, path: str) -> str:
        path = unquote(urlsplit(path).path)
        prefix = f"/{self.mount}/"
        if not path.startswith(prefix) and path != prefix.rstrip("/"):
            return str(Path(self.directory) / ".not-served")  # a 404
        return super().translate_path("/" + path[len(prefix) :])

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format, *args):
        if not self.quiet:
            super().log_message(format, *args)


def mount_name(folder: str | Path) -> str:
    """The URL folder the page is served under: the folder's own name when transformers.js takes it
    as a model id (letters, digits, ``-_.``, no ``--`` or ``..``), else ``model``."""
    name = Path(folder).resolve().name
    return name if HF_ID.match(name) and "--" not in name and ".." not in name else "model"


def make_server(folder: str | Path, port: int = 8000, quiet: bool = True) -> ThreadingHTTPServer:
    """A server for ``folder`` on 127.0.0.1 (port 0: any free one); the page is at
    ``http://127.0.0.1:<port>/<mount_name(folder)>/``. Call ``serve_forever`` (or run it in a thread)."""
    folder = Path(folder)
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise AlembertError(f"--port {port}: a port is 1-65535 (or 0 for any free one)")
    if not is_web_dir(folder):
        raise AlembertError(
            f"{folder} is not a web export (no {WEB_INFO} and index.html); "
            "create one with alembert export MODEL --web --output DIR"
        )
    handler = partial(_Handler, directory=str(folder.resolve()), mount=mount_name(folder), quiet=quiet)
    try:
        return ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        raise AlembertError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); pass another --port") from None


def page_url(server: ThreadingHTTPServer, folder: str | Path) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{mount_name(folder)}/"
