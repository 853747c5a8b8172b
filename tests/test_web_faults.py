"""Issue 32: the web export goes through the one output guard, and serve-web is safe by construction.

No browser is needed here (tests/test_web.py runs the pages in Chromium): the web export needs only
the vendored JavaScript (``make web-deps``), and the server is spoken to with urllib and raw sockets.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import run_cli

from alembert.errors import AlembertError
from alembert.export.web import WEB_INFO, export_web, make_server, node_modules_dir, page_url


def _vendored() -> str | None:
    try:
        node_modules_dir()
    except AlembertError as exc:
        return str(exc)
    return None


REASON = _vendored()
pytestmark = [pytest.mark.cli, pytest.mark.skipif(REASON is not None, reason=f"web export not run: {REASON}")]


@pytest.fixture(scope="module")
def plain_classifier(tiny_bert, tmp_path_factory) -> Path:
    """A transformers classifier saved without id2label in config.json (transformers 5 omits default labels)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path_factory.mktemp("plain")
    AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(out)
    config = json.loads((out / "config.json").read_text())
    for key in ("id2label", "label2id"):
        config.pop(key, None)
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def web_dir(plain_classifier, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("web") / "plain-web"
    export_web(plain_classifier, out)
    return out


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_classifier_without_id2label_gets_transformers_default_names(web_dir):
    assert json.loads((web_dir / WEB_INFO).read_text())["labels"] == ["LABEL_0", "LABEL_1"]
    assert json.loads((web_dir / "labels.json").read_text()) == ["LABEL_0", "LABEL_1"]


def test_overwrite_replaces_only_what_the_web_export_wrote(web_dir, plain_classifier, tmp_path, capsys):
    out = tmp_path / "web"
    shutil.copytree(web_dir, out)
    (out / "vendor" / "my-notes.txt").write_text("mine")
    (out / "onnx" / "my-model.onnx").write_bytes(b"mine too")
    (out / "README.txt").write_text("also mine")
    owned = json.loads((out / WEB_INFO).read_text())["owned"]
    (out / "onnx" / "stale.onnx").write_bytes(b"written by an older export")  # listed as its own: removed
    record = json.loads((out / WEB_INFO).read_text())
    record["owned"] = [*owned, "onnx/stale.onnx", "../outside.txt"]  # a path out of the folder is never taken
    (out / WEB_INFO).write_text(json.dumps(record))
    (tmp_path / "outside.txt").write_text("not the export's")
    code, _, err = run_cli(["export", plain_classifier, "--web", "--overwrite", "--output", out], capsys)
    assert code == 0, err
    assert (out / "vendor" / "my-notes.txt").read_text() == "mine" and (out / "README.txt").read_text() == "also mine"
    assert (out / "onnx" / "my-model.onnx").read_bytes() == b"mine too" and (tmp_path / "outside.txt").exists()
    assert not (out / "onnx" / "stale.onnx").exists()
    assert sorted(json.loads((out / WEB_INFO).read_text())["owned"]) == sorted(owned)


def test_an_embedding_export_replacing_a_classifiers_web_folder_leaves_none_of_its_files(web_dir, tiny_bert, tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as m

    st = tmp_path / "st"
    t = m.Transformer(str(tiny_bert))
    SentenceTransformer(modules=[t, m.Pooling(t.get_embedding_dimension(), "mean")], device="cpu").save(str(st))
    out = tmp_path / "web"
    shutil.copytree(web_dir, out)
    export_web(st, out, overwrite=True)
    assert not (out / "labels.json").exists() and (out / "modules.json").is_file()
    assert json.loads((out / WEB_INFO).read_text())["task"] == "feature-extraction"


@pytest.mark.parametrize("where", ["model-folder", "under-a-file", "a-file", "proc"])
def test_outputs_that_cannot_take_a_web_export_are_one_line_errors(where, plain_classifier, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(plain_classifier, model)
    (tmp_path / "afile").write_text("x")
    out = {
        "model-folder": model,
        "under-a-file": tmp_path / "afile" / "web",
        "a-file": tmp_path / "afile",
        "proc": Path("/proc/alembert-web"),
    }[where]
    before = snapshot(tmp_path)
    code, _, err = run_cli(["export", model, "--web", "--overwrite", "--output", out], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert snapshot(tmp_path) == before  # the model's own tokenizer.json included


def test_a_full_disk_is_one_line_and_leaves_nothing(plain_classifier, tmp_path, capsys, request):
    disk = tmp_path / "small"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()}): needs root and mount permission")
    request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(disk)], capture_output=True))
    code, _, err = run_cli(["export", plain_classifier, "--web", "--output", disk / "web"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no space left" in err and str(disk) in err, err
    assert list(disk.iterdir()) == []


# ------------------------------------------------------------------ serve-web


@pytest.fixture()
def served(web_dir, tmp_path):
    folder = tmp_path / "served"
    shutil.copytree(web_dir, folder)
    (tmp_path / "secret.txt").write_text("outside the folder")
    (folder / "link.txt").symlink_to(tmp_path / "secret.txt")
    (folder / "etc").symlink_to("/etc")
    server = make_server(folder, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, page_url(server, folder)
    server.shutdown()
    server.server_close()


def _status(url: str, host: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_serve_web_follows_no_link_out_lists_nothing_and_checks_the_host(served):
    server, url = served
    assert _status(url) == 200 and _status(url + "demo.js") == 200
    assert _status(url + "link.txt") == 404  # a symbolic link out of the folder
    assert _status(url + "etc/passwd") == 404 and _status(url + "etc/") == 404  # a linked folder, its listing
    assert _status(url + "vendor/") == 404  # no listing of the folder's own sub-folders either
    for raw in ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/" + url.rsplit("/", 2)[-2] + "/..%2f..%2fetc"):
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1])
        conn.request("GET", raw)
        response = conn.getresponse()
        body, location = response.read(), response.getheader("Location") or ""
        assert response.status in (301, 400, 404) and b"root:" not in body, (raw, response.status)
        assert not location or location.startswith("/" + url.rsplit("/", 2)[-2] + "/")  # a redirect stays inside
        conn.close()
    assert _status(url, host="attacker.example:80") == 421  # DNS rebinding: a foreign name for this address
    assert _status(url, host=f"localhost:{server.server_address[1]}") == 200


@pytest.mark.parametrize("port", ["-1", "70000"])
def test_serve_web_port_out_of_range_is_one_line(web_dir, port, capsys):
    code, _, err = run_cli(["serve-web", web_dir, "--port", port], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "1-65535" in err, err
