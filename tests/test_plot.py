"""``alembert plot RUN_DIR`` draws every loss term and dev metric of a log.jsonl."""

import json

import pytest

from alembert.cli.main import main

pytestmark = pytest.mark.cli


@pytest.fixture(autouse=True)
def _caches(tmp_path, monkeypatch):
    monkeypatch.setenv("ALEMBERT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "cache" / "matplotlib"))


def write_log(run, records, tail=""):
    run.mkdir(parents=True, exist_ok=True)
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + tail)


def test_plot_writes_a_png_per_term_and_metric(tmp_path, capsys):
    run = tmp_path / "run"
    records = []
    for step in range(10, 110, 10):
        records.append(
            {
                "time": step / 10,
                "step": step,
                "epoch": step / 100,
                "lr": 1e-4,
                "samples_per_s": 50.0,
                "loss": 1 / step,
                "kd": 0.5 / step,
                "hidden_mse": 2 / step,
            }
        )
        if step % 50 == 0:
            records.append(
                {"time": step / 10, "step": step, "epoch": step / 100, "eval": {"accuracy": 0.5 + step / 1000}}
            )
    write_log(run, records, tail='{"time": 11, "step": 1')  # a torn last line (killed run) is ignored
    assert main(["plot", str(run)]) == 0
    names = sorted(p.name for p in (run / "plots").iterdir())
    assert names == ["eval_accuracy.png", "hidden_mse.png", "kd.png", "loss.png"]
    assert all((run / "plots" / n).stat().st_size > 1000 for n in names)
    assert "wrote 4 plots" in capsys.readouterr().out


@pytest.mark.parametrize(
    "case, needle",
    [
        ("missing", "log.jsonl not found"),
        ("empty", "no loss or eval records"),
        ("no_dir", "not found"),
        ("bad_json", "line 1 is not JSON"),
    ],
)
def test_plot_errors_are_one_line(case, needle, tmp_path, capsys):
    run = tmp_path / "run"
    if case == "missing":
        run.mkdir()
    elif case == "empty":
        write_log(run, [])
    elif case == "bad_json":
        write_log(run, [], tail='not json\n{"step": 1, "loss": 0.5}\n')
    assert main(["plot", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and err.count("\n") == 1
