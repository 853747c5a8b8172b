"""The runtime seam (alembert/runtimes/): which runtime a folder goes to (its recorded format, else
the probes in order, else PyTorch), one-line errors, and a runtime defined in a new file
(tests/helpers/toy_runtime.py) reached by ``evaluate``, ``bench`` and ``predict`` through ``main()``
with no edit anywhere else."""

import importlib.util
import json
import pkgutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_export import DATA, make_tiny_model

import alembert.runtimes as runtimes_pkg
from alembert.cli.main import main
from alembert.errors import AlembertError
from alembert.runtimes import RUNTIMES, Runtime, get_runtime, load_any, probe_order, runtime_for

TOY = Path(__file__).parent / "helpers" / "toy_runtime.py"


@pytest.fixture
def registry():
    """RUNTIMES as it was before the test (runtimes a test defines are dropped afterwards)."""
    saved = dict(RUNTIMES)
    yield RUNTIMES
    RUNTIMES.clear()
    RUNTIMES.update(saved)


@pytest.fixture
def toy(registry):
    """Import tests/helpers/toy_runtime.py: defining its class registers it."""
    spec = importlib.util.spec_from_file_location("toy_runtime", TOY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert RUNTIMES["toy"] is module.ToyRuntime
    return module


def _folder(path: Path, *files: str, record: dict | None = None) -> Path:
    path.mkdir(parents=True)
    for f in files:
        (path / f).write_text("{}")
    if record is not None:
        (path / "alembert_export.json").write_text(json.dumps(record))
    return path


def test_every_module_of_the_package_registers_its_runtime():
    modules = {f"alembert.runtimes.{m.name}" for m in pkgutil.iter_modules(runtimes_pkg.__path__)} - {
        "alembert.runtimes.base"
    }
    assert modules == {cls.__module__ for cls in RUNTIMES.values() if cls.__module__.startswith("alembert.")}
    assert {"onnx", "pytorch"} <= set(RUNTIMES)
    assert [r.format for r in probe_order()][-1] == "pytorch"  # the catch-all is asked last


def test_the_recorded_format_decides_then_the_probes_then_pytorch(tmp_path):
    # a record wins over every probe: config.json alone would be PyTorch's, model.onnx alone ONNX's
    assert runtime_for(_folder(tmp_path / "rec", "config.json", record={"format": "onnx"})).format == "onnx"
    assert runtime_for(_folder(tmp_path / "rec-pt", "model.onnx", record={"format": "pytorch"})).format == "pytorch"
    # no record: ONNX's probe (model.onnx) is asked before PyTorch's (any config.json)
    assert runtime_for(_folder(tmp_path / "both", "config.json", "model.onnx")).format == "onnx"
    assert runtime_for(_folder(tmp_path / "hf", "config.json")).format == "pytorch"
    assert runtime_for(_folder(tmp_path / "old", "config.json", "model.onnx", record={"source": "x"})).format == "onnx"
    (tmp_path / "g.onnx").write_text("")
    assert runtime_for(tmp_path / "g.onnx").format == "onnx"  # a bare graph (export --quantize auto's candidates)
    # nothing claims it: read as PyTorch, whose loader says what is missing
    assert runtime_for(_folder(tmp_path / "empty")).format == "pytorch"


def test_probe_order_is_probe_order_then_registration(registry, tmp_path):
    class Late(Runtime):
        format = "late-test"
        probe_order = 50

        def probe(self, path):
            return (path / "marker").is_file()

    class Early(Runtime):
        format = "early-test"
        probe_order = 10

        def probe(self, path):
            return (path / "marker").is_file()

    class EarlyToo(Runtime):  # same order as Early, registered after it
        format = "early-too-test"
        probe_order = 10

        def probe(self, path):
            return (path / "marker").is_file()

    folder = _folder(tmp_path / "m", "marker", "config.json")
    order = [r.format for r in probe_order()]
    assert order.index("early-test") < order.index("early-too-test") < order.index("late-test") < order.index("pytorch")
    assert runtime_for(folder).format == "early-test"
    assert runtime_for(_folder(tmp_path / "plain", "config.json")).format == "pytorch"


def test_a_format_defined_twice_is_refused(registry):
    with pytest.raises(TypeError, match="defined twice"):

        class Other(Runtime):
            format = "onnx"


def test_an_unknown_format_is_one_line_naming_the_known_ones(tmp_path):
    folder = _folder(tmp_path / "tfl", "config.json", record={"format": "tflite"})
    with pytest.raises(AlembertError) as err:
        runtime_for(folder)
    msg = str(err.value)
    assert "\n" not in msg and "'tflite'" in msg and "alembert_export.json" in msg
    assert all(f in msg for f in RUNTIMES)  # every known format, named
    with pytest.raises(AlembertError, match=f"known formats: {', '.join(RUNTIMES)}"):
        get_runtime("tflite")
    (folder / "alembert_export.json").write_text("{not json")
    with pytest.raises(AlembertError, match="unreadable"):
        runtime_for(folder)


@pytest.mark.cli
def test_an_unknown_format_through_evaluate_is_one_line(tmp_path, capsys):
    folder = make_tiny_model(tmp_path / "tiny")
    (folder / "alembert_export.json").write_text(json.dumps({"format": "tflite"}))
    capsys.readouterr()
    assert main(["evaluate", str(folder), "--task", "sst2", "--data-dir", str(DATA), "--max-eval-samples", "8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "tflite" in err and ", ".join(RUNTIMES) in err


def test_the_pytorch_runtime_runs_the_module_it_wraps(tmp_path):
    tiny = make_tiny_model(tmp_path / "tiny")
    model = load_any(tiny)
    assert model.runtime.format == "pytorch" and model.runtime.label() == f"torch {torch.__version__}"
    assert model.describe()["kind"] == "pytorch" and model.config.id2label[1] == "positive"
    batch = {"input_ids": torch.tensor([[101, 2204, 102]]), "attention_mask": torch.ones(1, 3, dtype=torch.long)}
    with torch.inference_mode():
        direct = model.module(**batch).logits
    assert torch.equal(model.run(model.prepare({**batch, "labels": torch.tensor([1])})), direct)  # extra keys dropped
    assert torch.equal(model(**batch).logits, direct)  # the evaluations' calling convention


@pytest.mark.cli
def test_a_new_runtime_is_one_new_file(toy, tmp_path, capsys):
    """The toy runtime (tests/helpers/toy_runtime.py) reached by evaluate, bench and predict through main()."""
    tiny = make_tiny_model(tmp_path / "tiny")
    folder = toy.write_toy(tiny, tmp_path / "tiny-toy")
    assert runtime_for(folder).format == "toy"
    common = ["--task", "sst2", "--data-dir", str(DATA), "--max-eval-samples", "24"]

    calls = toy.CALLS["run"]
    assert main(["evaluate", str(folder), *common, "--output", str(tmp_path / "ev-toy")]) == 0
    assert toy.CALLS["run"] > calls  # the toy runtime ran the batches
    assert main(["evaluate", str(tiny), *common, "--output", str(tmp_path / "ev-torch")]) == 0
    by_toy, by_torch = (json.loads((tmp_path / d / "eval_results.json").read_text()) for d in ("ev-toy", "ev-torch"))
    assert by_toy["examples"] == 24 and by_toy["accuracy"] == pytest.approx(by_torch["accuracy"])  # same weights

    out = tmp_path / "bench"
    argv = ["bench", str(tiny), str(folder), *common, "--repeats", "1", "--threads", "1", "--output", str(out)]
    calls = toy.CALLS["run"]
    assert main(argv) == 0
    result = json.loads((out / "bench.json").read_text())
    ref, row = result["models"]
    assert [ref["kind"], row["kind"]] == ["pytorch", "toy"] and row["runtime"] == "toy 0.1"
    assert row["dev_metric"] == pytest.approx(ref["dev_metric"]) and row["latency_ms_median"] > 0
    assert row["serving"]["arrival_b1"]["calls"] == 24
    assert row["disk_mb"] > 0  # its own weight file, which only the toy runtime names
    # scoring (1 batch), fixed-length timing (10 batch-1 calls at least) and serving (24 singles) ran on it
    assert toy.CALLS["run"] - calls >= 1 + 10 + 24
    capsys.readouterr()

    assert main(["predict", str(folder), "a gripping, beautifully acted film."]) == 0
    printed = capsys.readouterr().out
    label = load_any(tiny)(**_encode(tiny, "a gripping, beautifully acted film.")).logits.argmax(-1).item()
    assert f"label: {['negative', 'positive'][label]}" in printed


def _encode(folder: Path, text: str) -> dict:
    from transformers import AutoTokenizer

    enc = AutoTokenizer.from_pretrained(folder)(text, return_tensors="pt")
    return {k: v for k, v in enc.items() if isinstance(v, torch.Tensor | np.ndarray)}


def test_the_short_bench_kind_is_each_runtimes_label(registry):
    """The bench's short tables abbreviate a row's kind by its runtime's ``bench_label``, the format
    when it declares none: no list of runtimes kept in the report."""
    from alembert.runtimes.base import short_kind

    assert [short_kind(k) for k in ("pytorch", "onnx-int8", "openvino-int8", "openvino-bf16")] == [
        "torch",
        "int8",
        "ov-int8",
        "ov-bf16",
    ]

    class Tflite(Runtime):
        format = "tflite"

    assert short_kind("tflite-int8") == "tflite-int8" and short_kind("unknown") == "unknown"
