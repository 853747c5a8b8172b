"""Browser latency of web exports vs onnxruntime in Python, on the same machine and sentences.

    python benchmarks/web_latency.py runs/student-web runs/teacher-web [--sentences 50] [--repeats 5]
        [--accuracy] [--screenshot docs/web-demo.png] [--output runs/web-bench.json]

For every folder (``alembert export MODEL --web``) and thread count (1 and the most the page can
get: ``navigator.hardwareConcurrency`` in a cross-origin-isolated page; the same number in Python),
the int8 graph classifies the first N SST-2 dev sentences one at a time, in headless Chromium
(transformers.js + onnxruntime-web WASM) and in Python onnxruntime; per-sentence latency is the
median of ``--repeats`` runs after 5 warm-up runs, reported as the median and p90 over sentences.
Both sides time what a caller waits for: tokenisation, the ONNX run and the softmax. It also checks
that the labels agree and the probabilities within 1e-3, and lists what a visitor downloads (bytes
as served, and gzip-compressed for a server that compresses). ``--accuracy`` classifies the whole
dev set in the browser (max threads, one run each) and in Python. Prints the CPU (lscpu) and the
load average: other jobs on the machine show up as noise.

An embedding folder (``alembert export EMB_DIR --web``: task ``feature-extraction``) gets the first
N/2 STS-B dev pairs instead, N sentences embedded one at a time (tokenisation + ONNX run), and the
browser's cosine of each pair is compared with Python's; ``--accuracy`` does not apply to it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alembert.export import browser  # noqa: E402
from alembert.export.web import WEB_INFO, download_bytes  # noqa: E402


def cpu() -> dict:
    info = dict(
        line.split(":", 1)
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
        if ":" in line
    )
    flags = info.get("Flags", "").split()
    wanted = [f for f in flags if f.startswith(("avx", "sse4", "fma", "amx")) or "vnni" in f or f in ("f16c", "bmi2")]
    return {"model": info.get("Model name", "?").strip(), "cpus": os.cpu_count(), "flags": wanted}


def dev_set(n: int | None):
    from alembert.data.readers import default_data_dir, load_glue_split

    ds = load_glue_split("sst2", default_data_dir(), "dev")
    ds = ds if n is None else ds.select(range(n))
    return list(ds["text_a"]), list(ds["label"])


def sts_pairs(n_sentences: int) -> list[list[str]]:
    """The first ``n_sentences // 2`` STS-B dev pairs."""
    import csv

    from alembert.data.readers import default_data_dir

    with (Path(default_data_dir()) / "STS-B" / "dev.tsv").open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [[r["sentence1"], r["sentence2"]] for r in rows[: max(1, n_sentences // 2)]]


def cosine_agreement(web: dict, py: dict) -> dict:
    gaps = np.abs(np.array([r["cosine"] for r in web["rows"]]) - np.array([r["cosine"] for r in py["rows"]]))
    ids = sum(w["input_ids"] == p["input_ids"] for w, p in zip(web["sentences"], py["sentences"], strict=True))
    return {
        "pairs": len(gaps),
        "max_cosine_diff": float(gaps.max()),
        "median_cosine_diff": float(np.median(gaps)),
        "token_ids_equal": ids,
        "sentences": len(web["sentences"]),
    }


def agreement(web: list[dict], py: list[dict]) -> dict:
    """Labels and probabilities, browser vs Python. int8 runs differ where an activation lands on a
    rounding boundary of the dynamic quantisation in one runtime and not the other: most sentences
    agree to 1e-7, a few by more (so the median, the count over 1e-3 and the max are all shown)."""
    gaps = np.abs(np.array([w["probs"] for w in web]) - np.array([p["probs"] for p in py])).max(-1)
    same = sum(w["label"] == p["label"] for w, p in zip(web, py, strict=True))
    return {
        "labels_equal": same,
        "of": len(web),
        "max_prob_diff": float(gaps.max()),
        "median_prob_diff": float(np.median(gaps)),
        "over_1e-3": int((gaps > 1e-3).sum()),
    }


def downloads(folder: Path) -> dict:
    files = download_bytes(folder, "q8")
    gz = {f: len(gzip.compress((folder / f).read_bytes(), 6)) for f in files}
    return {"files": files, "total_bytes": sum(files.values()), "gzip_bytes": sum(gz.values()), "gzip_files": gz}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="web exports (alembert export MODEL --web)")
    ap.add_argument("--sentences", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--accuracy", action="store_true", help="also classify the whole SST-2 dev set in both runtimes")
    ap.add_argument("--screenshot", type=Path, help="PNG of the first folder's demo page (max threads)")
    ap.add_argument("--output", type=Path, help="JSON with every per-sentence row")
    args = ap.parse_args(argv)
    reason = browser.missing()
    if reason:
        print(f"cannot run the browser: {reason}", file=sys.stderr)
        return 2

    machine = {**cpu(), "load_average": os.getloadavg()}
    texts, _ = dev_set(args.sentences)
    maxt = None
    results = {"machine": machine, "models": {}}
    for i, folder in enumerate(args.folders):
        info = json.loads((folder / WEB_INFO).read_text())
        entry = results["models"][folder.name] = {
            "runs": [],
            "download": downloads(folder),
            "int8_bytes": info["files"]["q8"]["bytes"],
        }
        embedding = info["task"] == "feature-extraction"
        entry["task"] = info["task"]
        workload = sts_pairs(args.sentences) if embedding else texts
        with browser.serving(folder) as url:
            for threads in ("1", "max"):
                shot = args.screenshot if (i == 0 and threads == "max") else None
                page = browser.run_page(
                    f"{url}?threads={threads}&dtype=q8", workload, repeats=args.repeats, warmup=5, screenshot=shot
                )
                assert page["external"] == [], page["external"]
                n = page["ready"]["threads"]
                maxt = n if threads == "max" else maxt
                if embedding:  # per sentence: the sentences list; the rows are the pairs' cosines
                    py = browser.python_embeddings(
                        folder, workload, dtype="q8", threads=n, repeats=args.repeats, warmup=5
                    )
                    web_rows, py_rows, agree = (
                        page["bench"]["sentences"],
                        py["sentences"],
                        cosine_agreement(page["bench"], py),
                    )
                else:
                    py = browser.python_predictions(
                        folder, texts, dtype="q8", threads=n, repeats=args.repeats, warmup=5
                    )
                    web_rows, py_rows = page["bench"]["rows"], py["rows"]
                    agree = agreement(web_rows, py_rows)
                entry["runs"].append(
                    {
                        "threads": n,
                        "browser": browser.latency_summary(web_rows),
                        "python": browser.latency_summary(py_rows),
                        "browser_model": browser.latency_summary(web_rows, "model_ms"),
                        "python_model": browser.latency_summary(py_rows, "model_ms"),
                        "agreement": agree,
                        "load_ms": page["ready"]["loadMs"],
                        "rows": {"browser": page["bench"], "python": py},
                    }
                )
                entry["user_agent"] = page["bench"]["userAgent"]
            if args.accuracy and not embedding:
                all_texts, gold = dev_set(None)
                page = browser.run_page(f"{url}?threads=max&dtype=q8", all_texts, repeats=1, warmup=5, timeout_s=900)
                py = browser.python_predictions(folder, all_texts, dtype="q8", threads=maxt, repeats=1, warmup=0)
                labels = info["labels"]
                acc = {
                    side: float(np.mean([labels.index(r["label"]) == g for r, g in zip(rows, gold, strict=True)]))
                    for side, rows in (("browser", page["bench"]["rows"]), ("python", py["rows"]))
                }
                entry["accuracy"] = {**acc, **agreement(page["bench"]["rows"], py["rows"])}

    print(
        f"CPU: {machine['model']}, {machine['cpus']} cores; flags: {' '.join(machine['flags'])}; "
        f"load average at start {machine['load_average'][0]:.2f}"
    )
    print(f"browser: {entry['user_agent']}")
    classifiers = {k: v for k, v in results["models"].items() if v["task"] != "feature-extraction"}
    embedders = {k: v for k, v in results["models"].items() if v["task"] == "feature-extraction"}
    print(
        f"int8 graph; per-sentence latency = median of {args.repeats} runs after 5 warm-up calls; "
        "median / p90 over sentences; model: the ONNX run alone, median"
    )
    if classifiers:
        print(
            f"\n{args.sentences} SST-2 dev sentences, one at a time; "
            "ms: the whole call (tokenisation + ONNX run + softmax)\n"
        )
        print(
            "| model | int8 graph | threads | browser ms | browser model | Python ORT ms | "
            "Python model | browser / Python | labels equal | prob diff median / max (n > 1e-3) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
    for name, entry in classifiers.items():
        for run in entry["runs"]:
            b, p, a = run["browser"], run["python"], run["agreement"]
            print(
                f"| {name} | {entry['int8_bytes'] / 1e6:.1f} MB | {run['threads']} | {b['median_ms']:.2f} / "
                f"{b['p90_ms']:.2f} | {run['browser_model']['median_ms']:.2f} | {p['median_ms']:.2f} / "
                f"{p['p90_ms']:.2f} | {run['python_model']['median_ms']:.2f} | {b['median_ms'] / p['median_ms']:.1f}x "
                f"| {a['labels_equal']}/{a['of']} | {a['median_prob_diff']:.0e} / {a['max_prob_diff']:.1e} "
                f"({a['over_1e-3']}) |"
            )
    if embedders:
        print(
            f"\nembedding models: the first {args.sentences // 2} STS-B dev pairs ({args.sentences // 2 * 2} "
            "sentences), one sentence at a time; ms: tokenisation + ONNX run (pooling and normalisation are in the "
            "graph)\n"
        )
        print(
            "| model | int8 graph | threads | browser ms per sentence | browser model | Python ORT ms "
            "| Python model | browser / Python | token ids equal | cosine diff median / max |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
    for name, entry in embedders.items():
        for run in entry["runs"]:
            b, p, a = run["browser"], run["python"], run["agreement"]
            print(
                f"| {name} | {entry['int8_bytes'] / 1e6:.1f} MB | {run['threads']} | {b['median_ms']:.2f} / "
                f"{b['p90_ms']:.2f} | {run['browser_model']['median_ms']:.2f} | {p['median_ms']:.2f} / "
                f"{p['p90_ms']:.2f} | {run['python_model']['median_ms']:.2f} | {b['median_ms'] / p['median_ms']:.1f}x "
                f"| {a['token_ids_equal']}/{a['sentences']} | {a['median_cosine_diff']:.0e} / "
                f"{a['max_cosine_diff']:.1e} |"
            )
    print(
        "\n| model | a visitor downloads | gzip | of which WASM runtime "
        "| transformers.js | int8 graph | tokenizer.json |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, entry in results["models"].items():
        d, f = entry["download"], entry["download"]["files"]
        wasm = sum(v for k, v in f.items() if k.endswith(".wasm"))
        print(
            f"| {name} | {d['total_bytes'] / 1e6:.1f} MB | {d['gzip_bytes'] / 1e6:.1f} MB | {wasm / 1e6:.1f} MB | "
            f"{f['vendor/transformers.min.js'] / 1e6:.2f} MB | {entry['int8_bytes'] / 1e6:.1f} MB | "
            f"{f['tokenizer.json'] / 1e6:.2f} MB |"
        )
    if args.accuracy:
        print(
            "\n| model | SST-2 dev accuracy, browser | Python ORT | labels equal | prob diff median / max (n > 1e-3) |"
        )
        print("|---|---|---|---|---|")
        for name, entry in classifiers.items():
            a = entry["accuracy"]
            print(
                f"| {name} | {a['browser']:.4f} | {a['python']:.4f} | {a['labels_equal']}/{a['of']} | "
                f"{a['median_prob_diff']:.0e} / {a['max_prob_diff']:.1e} ({a['over_1e-3']}) |"
            )
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
