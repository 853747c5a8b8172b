"""``--quantize auto``: build each graph variant, measure it on this machine, keep the fastest
that keeps the dev metric.

Which variant is fastest depends on the CPU, not on the model: onnxruntime's dynamic int8 MatMul
uses VNNI/AMX dot products where the CPU has them and int16 pair sums on AVX2-only CPUs; its
static int8 (fixed activation scales from calibration, :mod:`alembert.export.static_int8`) saves
the per-batch range computation; OpenVINO's NNCF int8 and bf16 use AMX where it exists; and
on some CPUs fp32 with fused kernels is competitive at batch 1. So nothing is assumed from the
CPU's flags: every candidate is timed here, interleaved with the others (batch 32 and batch 1 at
the model's training length, on real dev texts), and scored on the dev set.

Rules, in order:
1. a variant whose dev metric is more than :data:`MAX_DROP` (1 point of accuracy/F1, 0.01 of a
   correlation) below its PyTorch source's is refused;
2. a variant slower than the fp32 graph at batch 32 or at batch 1 is refused (so the export is
   never slower than plain fp32 ONNX on this machine);
3. of the rest, the highest batch-32 throughput wins. fp32 always meets rule 2; if it breaks
   rule 1 the export itself is wrong and is refused;
4. where the winner's outputs depend on the batch (dynamic int8: one activation scale per tensor,
   padding included) and a batch-invariant variant is within :data:`INVARIANT_COST` of it at batch
   32, the batch-invariant one is kept (``--batch-invariant``: only those are candidates).

Candidates span runtimes: ONNX Runtime's graphs and, with the ``openvino`` extra, OpenVINO's IR of
the same graph (fp32, NNCF int8 on the same calibration texts, bf16 where the CPU computes it);
the folder gets the winner's format. A variant that cannot run here (no OpenVINO, no bf16) is
recorded as skipped, with why.

The choice, its one-line reason and every candidate's figures go into ``alembert_export.json``.
Candidates are :class:`Variant` entries of :data:`VARIANTS`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from alembert.errors import AlembertError
from alembert.export.graph import INT8_DYNAMIC, quantize_int8

MAX_DROP = 0.01  # dev metric, absolute: 1 point of accuracy/F1, 0.01 of Pearson/Spearman/MCC
CALIBRATION_TEXTS = 256  # training texts for static quantisation's activation ranges
SPEED_REPEATS = 3


@dataclass
class Calibration:
    """Tokenised training batches for static quantisation (None where the task has no training texts)."""

    batches: list[dict[str, np.ndarray]] | None
    texts: int = 0


def build_fp32(src: Path, dst: Path, calibration: Calibration) -> dict:
    shutil.copyfile(src, dst)
    return {"quantization": None, "int8": None}


def build_int8_dynamic(src: Path, dst: Path, calibration: Calibration) -> dict:
    quantize_int8(src, dst)
    return {"quantization": "int8", "int8": INT8_DYNAMIC}


def build_int8_dynamic_7bit(src: Path, dst: Path, calibration: Calibration) -> dict:
    """Dynamic int8 with 7-bit weights ([-63, 63]): on x86 CPUs without VNNI/AMX onnxruntime adds
    pairs of u8 x s8 products in int16 (VPMADDUBSW), which saturates with full-range weights."""
    quantize_int8(src, dst, reduce_range=True)
    return {"quantization": "int8", "int8": INT8_DYNAMIC + "; 7-bit weights"}


def build_int8_static(src: Path, dst: Path, calibration: Calibration) -> dict:
    """Calibrated int8 run as integer MatMuls at fixed scales (:mod:`alembert.export.static_int8`)."""
    from alembert.export.static_int8 import DESCRIPTION, quantize_static_int8

    if not calibration.batches:
        raise AlembertError("no training texts to calibrate static quantisation with")
    quantize_static_int8(src, dst, calibration.batches)
    return {"quantization": "int8", "int8": DESCRIPTION.format(texts=calibration.texts)}


def _openvino(quantize: str | None):
    """A builder of the OpenVINO IR of the fp32 graph (:func:`alembert.export.openvino.write_ir`)."""

    def build(src: Path, dst: Path, calibration: Calibration) -> dict:
        from alembert.export.openvino import write_ir

        if quantize == "int8" and not calibration.batches:
            raise AlembertError("no training texts to calibrate NNCF's int8 with")
        return write_ir(src, dst.parent, quantize, calibration.batches)

    return build


def _needs_openvino(facts: dict) -> str | None:
    import importlib.util

    if importlib.util.find_spec("openvino") is None or importlib.util.find_spec("nncf") is None:
        return "OpenVINO is not installed (pip install 'alembert[openvino]')"
    return None


def _needs_bf16(facts: dict) -> str | None:
    from alembert.machine import has_bf16

    return _needs_openvino(facts) or (
        None if has_bf16(facts) else "this CPU has neither AVX512-BF16 nor AMX (OpenVINO would emulate bf16)"
    )


def _needs_no_int8_dot(facts: dict) -> str | None:
    """The 7-bit variant only where the CPU has no int8 dot product (no VNNI/AMX detected, or nothing
    detected at all: the safe side), the only CPUs where it can help."""
    from alembert.machine import has_int8_dot

    return "this CPU has an int8 dot product (VNNI/AMX): 7-bit weights cannot help" if has_int8_dot(facts) else None


@dataclass(frozen=True)
class Variant:
    """One candidate of ``--quantize auto``: how it is built from the fp32 ONNX graph
    (``build(fp32_graph, dst, calibration) -> graph record``), the export format its folder gets
    (``runtime``: ``onnx`` or ``openvino``), whether a sentence's output is independent of its batch
    (fixed scales: no per-batch activation range), and why it cannot run on this machine, if so."""

    build: Callable[[Path, Path, Calibration], dict]
    runtime: str = "onnx"
    batch_invariant: bool = True
    unavailable: Callable[[dict], str | None] = lambda facts: None
    precision: str | None = None  # OpenVINO's inference precision hint

    @property
    def weights(self) -> str:
        """The file ``build`` writes into the variant's folder: its runtime's weights file."""
        from alembert.runtimes import get_runtime

        return get_runtime(self.runtime).weights[0]

    def load(self, folder: Path, threads: int, embedding: dict | None = None):
        """The built variant, run as ``bench`` runs it (``prepare``/``run``; ``.logits``, or ``.embeddings``
        for an embedding model, whose export record ``embedding`` gives its pooling, dim and length)."""
        from alembert.runtimes import get_runtime

        return get_runtime(self.runtime).load_file(folder / self.weights, threads, self.precision, embedding)


VARIANTS: dict[str, Variant] = {
    "fp32": Variant(build_fp32),
    "int8-dynamic": Variant(build_int8_dynamic, batch_invariant=False),
    "int8-static": Variant(build_int8_static),
    "int8-dynamic-7bit": Variant(build_int8_dynamic_7bit, batch_invariant=False, unavailable=_needs_no_int8_dot),
    "openvino-fp32": Variant(_openvino(None), "openvino", unavailable=_needs_openvino, precision="f32"),
    "openvino-int8": Variant(_openvino("int8"), "openvino", unavailable=_needs_openvino, precision="f32"),
    "openvino-bf16": Variant(_openvino("bf16"), "openvino", unavailable=_needs_bf16, precision="bf16"),
    # NNCF's int8 MatMuls, the rest (attention, GELU, norms) in bf16 on AMX/AVX512-BF16
    "openvino-int8-bf16": Variant(_openvino("int8"), "openvino", unavailable=_needs_bf16, precision="bf16"),
}
INVARIANT_COST = 0.10  # a batch-invariant variant within 10% of the fastest at batch 32 is taken instead


def default_candidates(facts: dict) -> list[str]:
    """Every variant that can run on this machine (the rest are listed by :func:`skipped`)."""
    return [n for n, v in VARIANTS.items() if v.unavailable(facts) is None]


def candidates_for(runtime: str | None, facts: dict) -> list[str] | None:
    """The variants of one runtime (``onnx``, ``openvino``) that run here; None (``runtime`` None):
    every runtime's, :func:`choose`'s default. None of them running here is a one-line error saying why."""
    if runtime is None:
        return None
    names = [n for n in default_candidates(facts) if VARIANTS[n].runtime == runtime]
    if not names:
        why = sorted({why for n, why in skipped(facts).items() if VARIANTS[n].runtime == runtime})
        raise AlembertError(f"--quantize auto: no {runtime} variant runs here ({'; '.join(why)})")
    return names


def skipped(facts: dict) -> dict[str, str]:
    """The variants that cannot run here, and why (recorded beside the measured ones)."""
    return {n: why for n, v in VARIANTS.items() if (why := v.unavailable(facts)) is not None}


@dataclass
class EvalData:
    """What the choice is measured on: the task, its tokenised dev set, real texts for timing.
    For a sentence-embedding model ``embedding`` holds its export record (pooling, dim, ...) and the
    score is STS-B dev Spearman of the variant's vectors (``dev`` is then None)."""

    task: object
    dev: object  # tokenised dev dataset (labels included)
    timing_inputs: dict[str, torch.Tensor]  # real dev texts padded to the timed length
    calibration: Calibration
    about: str  # e.g. "sst2 dev (872 examples)"
    embedding: dict | None = None
    data_dir: str | None = None
    max_pairs: int | None = None  # an embedding model's STS-B dev pairs (None: all)


EMBEDDING_LENGTH = 128  # an embedding model's variants are scored and timed at this length (at most its own)


def embedding_calibration(tokenizer, names: list[str], max_length: int, data: dict | None, n_texts: int) -> Calibration:
    """``data['train_file']``'s texts (``text_column``), else STS-B's training sentences: real sentences of
    the kind an embedding model embeds, tokenised in batches of 16 (what static int8 is calibrated on)."""
    from alembert.embedding.data import load_texts

    data = data or {}
    if data.get("train_file"):
        texts = load_texts([data["train_file"]], None, None, data.get("text_column"), n_texts)
    else:
        try:
            texts = load_texts([], ["stsb"], data.get("data_dir"), None, n_texts)
        except (AlembertError, OSError):
            raise AlembertError(
                "int8 calibrates an embedding model on STS-B's training sentences, which are not here; "
                "pass --train-file (your texts) or --data-dir (a GLUE folder)"
            ) from None
    if not texts:
        raise AlembertError("no texts to calibrate int8 with; pass a --train-file with some")
    batches = []
    for i in range(0, len(texts), 16):
        enc = tokenizer(texts[i : i + 16], padding=True, truncation=True, max_length=max_length)
        ids = np.asarray(enc["input_ids"], dtype=np.int64)
        batches.append({n: np.asarray(enc[n], dtype=np.int64) if n in enc else np.zeros_like(ids) for n in names})
    return Calibration(batches, len(texts))


def embedding_eval_data(tokenizer, names: list[str], record: dict, data: dict | None = None) -> EvalData:
    """STS-B dev (Spearman of the vectors' cosines) for an embedding model's variants, its sentences
    for timing, STS-B's training sentences (or ``--train-file``'s) for calibration."""
    from types import SimpleNamespace

    from alembert.embedding.evaluate import stsb_pairs

    data = {k: v for k, v in (data or {}).items() if v is not None}
    if data.get("dev_file") or data.get("task") not in (None, "stsb", "stsb-zeroshot"):
        raise AlembertError(
            "--quantize auto scores an embedding model on STS-B dev (Spearman); drop --dev-file/--task, "
            "or pass --data-dir (a GLUE folder)"
        )
    length = min(record.get("max_seq_length") or EMBEDDING_LENGTH, EMBEDDING_LENGTH)
    try:
        a, b, _ = stsb_pairs(data.get("data_dir"), data.get("max_eval_samples"))
    except (AlembertError, OSError):
        raise AlembertError(
            "--quantize auto scores an embedding model on STS-B dev, which is not here; pass --data-dir (a GLUE folder)"
        ) from None
    texts = [(a + b)[i % len(a + b)] for i in range(32)]
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=length, return_tensors="pt")
    return EvalData(
        SimpleNamespace(name="stsb-zeroshot", main_metric="spearman"),
        None,
        {n: enc[n] if n in enc else torch.zeros_like(enc["input_ids"]) for n in names},
        embedding_calibration(tokenizer, names, length, data, CALIBRATION_TEXTS),
        f"STS-B dev ({len(a)} pairs, Spearman)",
        embedding={**record, "max_seq_length": length},
        data_dir=data.get("data_dir"),
        max_pairs=data.get("max_eval_samples"),
    )


SAVED_CONFIGS = ("finetune_config.yaml", "distill_config.yaml")
DATA_FIELDS = (
    "task",
    "labels",
    "data_dir",
    "train_file",
    "dev_file",
    "text_column",
    "text_pair_column",
    "label_column",
    "max_length",
)


def saved_data(src: Path) -> dict:
    """The data section saved with a model by ``alembert finetune`` / ``distill`` (its task, files, max length)."""
    import yaml

    for name in SAVED_CONFIGS:
        path = src / name
        if path.is_file():
            section = (yaml.safe_load(path.read_text()) or {}).get("data") or {}
            return {k: section[k] for k in DATA_FIELDS if section.get(k) is not None}
    return {}


def training_calibration(cfg, task, tokenizer, names: list[str], n_texts: int = CALIBRATION_TEXTS) -> Calibration:
    """The first ``n_texts`` training texts of ``cfg``'s task (a DataConfig), tokenised in batches of 16
    with the graph's ``names`` (token_type_ids zeros where the tokenizer gives none): the activation
    ranges a static int8 graph (ONNX Runtime's QDQ, OpenVINO's NNCF) is calibrated on. Empty
    (``batches=None``) where the task has no training texts (your own dev file only)."""
    from alembert.data.load import load_split

    try:
        train = load_split(cfg.model_copy(update={"max_train_samples": None}), task, "train")
    except (AlembertError, OSError):
        return Calibration(None)  # no training texts: static quantisation is skipped
    if train is None or not len(train):
        return Calibration(None)
    n = min(n_texts, len(train))
    a = train["text_a"][:n]
    b = train["text_b"][:n] if "text_b" in train.column_names else None
    batches = []
    for i in range(0, n, 16):
        e = tokenizer(
            a[i : i + 16],
            b[i : i + 16] if b else None,
            padding=True,
            truncation=True,
            max_length=cfg.max_length,
            return_tensors="np",
        )
        batches.append(
            {k: e[k].astype(np.int64) if k in e else np.zeros_like(e["input_ids"], dtype=np.int64) for k in names}
        )
    return Calibration(batches, n)


def eval_data(src: Path, model_config, tokenizer, names: list[str], data: dict | None = None) -> EvalData:
    """The dev set (``data``: DataConfig fields over the ones saved with the model), real dev texts
    for timing and :data:`CALIBRATION_TEXTS` training texts for static quantisation."""
    from alembert.config.schema import DataConfig
    from alembert.data.glue import MAX_LENGTH
    from alembert.data.load import load_split, resolve_task
    from alembert.data.tokenize import tokenize_dataset
    from alembert.models.preprocessing import max_length_for

    given = {k: v for k, v in (data or {}).items() if v is not None}
    saved = saved_data(src)
    if given.get("dev_file") or given.get("train_file"):  # your own files: the saved GLUE task does not apply
        saved.pop("task", None)
    fields = {**saved, **given}
    if not fields.get("task") and not fields.get("dev_file"):
        raise AlembertError(
            f"--quantize auto scores every variant on a dev set, and model {src} has no saved task: "
            "pass --task (and --data-dir) or --dev-file"
        )
    if fields.get("max_length") is None:  # the length it was trained with, as every command reads it
        fields["max_length"] = max_length_for(src, None, MAX_LENGTH)
    cfg = DataConfig(**fields)
    task = resolve_task(cfg, model_config, f"model {src}")
    dev = load_split(cfg, task, "dev")
    if len(dev) == 0:
        raise AlembertError(
            f"the dev set of {task.name} is empty; --quantize auto needs dev examples to score the variants"
        )
    pair = "text_b" in dev.column_names
    rows = [i % len(dev) for i in range(32)]
    enc = tokenizer(
        [dev["text_a"][i] for i in rows],
        [dev["text_b"][i] for i in rows] if pair else None,
        padding="max_length",
        truncation=True,
        max_length=cfg.max_length,
        return_tensors="pt",
    )
    calibration = training_calibration(cfg, task, tokenizer, names)
    return EvalData(
        task,
        tokenize_dataset(dev, tokenizer, cfg.max_length),
        dict(enc),
        calibration,
        f"{task.name} dev ({len(dev)} examples)",
    )


def _score(model, tokenizer, data: EvalData) -> float:
    if data.embedding is not None:
        from alembert.embedding.evaluate import evaluate_embedding

        length = data.embedding["max_seq_length"]
        scores = evaluate_embedding(
            model, tokenizer, "stsb-zeroshot", length, 64, data_dir=data.data_dir, max_pairs=data.max_pairs
        )
        return scores["spearman"]
    from alembert.classification.evaluate import evaluate_model

    return evaluate_model(model, tokenizer, data.task, data.dev)[data.task.main_metric]


def chosen_outputs(folder: Path, graph: dict, reference, output: str, embedding: dict | None = None) -> list:
    """(the written model's output, PyTorch's) per check case of ``reference``, run as ``evaluate`` will
    run the export folder: its ONNX graph, or the OpenVINO IR ``--quantize auto`` chose."""
    from alembert.export.graph import graph_outputs

    if not graph["auto"]:
        return graph_outputs(folder / "model.onnx", reference, output)
    model = VARIANTS[graph["auto"]["variant"]].load(folder, torch.get_num_threads(), embedding)
    return [(model.run(model.prepare(feeds)), ref) for feeds, ref in reference]


def busy_note(load: float, cores: int | None) -> str:
    """What the choice is worth when other work shared the CPU while the variants were timed: runtimes
    suffer unequally from contention (a loaded run here timed OpenVINO's int8 at 0.6x ONNX Runtime's, a quiet
    one at 1.3x), so a choice made on a busy machine is worth making again on a quiet one."""
    from alembert.machine import busy

    state = busy(load, cores)
    return (
        f"; NOTE: timed while the machine was {state}: the choice may differ on a quiet machine, export again there"
        if state
        else ""
    )


def choose(
    fp32: Path,
    work: Path,
    torch_model,
    tokenizer,
    data: EvalData,
    threads: int,
    candidates: list[str] | None = None,
    batch_invariant: bool = False,
) -> tuple[str, Path, dict]:
    """Build and measure every candidate from the fp32 graph ``fp32`` inside ``work``; returns
    (chosen name, the folder holding its weight files, the record for alembert_export.json).
    ``batch_invariant``: only variants whose outputs do not depend on the batch are candidates."""
    from alembert.machine import cpu_facts
    from alembert.measure.speed import batch_workload, measure

    facts = cpu_facts()
    names = list(candidates or default_candidates(facts))
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise AlembertError(f"unknown export variant {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if "fp32" not in names:
        names.insert(0, "fp32")  # the speed floor every pick is held to
    record = {name: {} for name in names}
    for name in names:
        why = VARIANTS[name].unavailable(facts)
        if why:
            record[name] = {"refused": f"not on this machine: {why}"}
        elif batch_invariant and not VARIANTS[name].batch_invariant:
            record[name] = {"refused": "not batch-invariant (--batch-invariant)"}
    record.update(
        {n: {"refused": f"not on this machine: {why}"} for n, why in skipped(facts).items() if n not in record}
    )
    metric = data.task.main_metric
    source = _score(torch_model, tokenizer, data)
    models, built = {}, {}
    for name in names:
        if "refused" in record[name]:
            continue
        variant = VARIANTS[name]
        folder = work / name
        folder.mkdir()
        try:
            built[name] = {
                **variant.build(fp32, folder / variant.weights, data.calibration),
                "format": variant.runtime,
                "precision": variant.precision,
            }
        except Exception as exc:  # a quantiser that fails on this graph is skipped, with why
            from alembert.files import is_disk_full

            if is_disk_full(exc):
                raise
            record[name] = {
                "refused": f"build failed: {str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}"
            }
            continue
        models[name] = variant.load(folder, threads, data.embedding)  # the bare graph, as bench runs it
        record[name]["dev"] = _score(models[name], tokenizer, data)
        record[name]["runtime"] = variant.runtime
        record[name]["batch_invariant"] = variant.batch_invariant
    if "dev" not in record["fp32"]:
        raise AlembertError(
            f"the fp32 graph could not be built ({record['fp32'].get('refused')}); export without --quantize"
        )
    workloads = {
        n: batch_workload(m, data.timing_inputs, min(32, len(data.timing_inputs["input_ids"])))
        for n, m in models.items()
    }
    load_before = os.getloadavg()[0]
    speeds = measure(workloads, repeats=SPEED_REPEATS, warmup=1, latency_iters=8)
    load = round(max(load_before, os.getloadavg()[0]), 2)
    floor = speeds["fp32"]
    for name, s in speeds.items():
        r = record[name]
        r["seq_s_b32"] = round(s["throughput_seq_s"], 2)
        r["ms_b1"] = round(s["latency_ms_median"], 3)
        drop = source - r["dev"]
        if drop > MAX_DROP:
            r["refused"] = (
                f"dev {metric} {r['dev']:.4f} is {drop:.4f} below the PyTorch source's {source:.4f} (limit {MAX_DROP})"
            )
        elif name != "fp32" and s["throughput_seq_s"] < floor["throughput_seq_s"]:
            r["refused"] = (
                f"slower than fp32 at batch 32 ({r['seq_s_b32']:.1f} vs {floor['throughput_seq_s']:.1f} seq/s)"
            )
        elif name != "fp32" and s["latency_ms_median"] > floor["latency_ms_median"]:
            r["refused"] = f"slower than fp32 at batch 1 ({r['ms_b1']:.2f} vs {floor['latency_ms_median']:.2f} ms)"
    if "refused" in record["fp32"]:
        raise AlembertError(
            f"the fp32 ONNX graph itself fails the accuracy check ({record['fp32']['refused']}); "
            "the export is wrong: report it, or export with --full-last-layer"
        )
    ok = [n for n in names if "refused" not in record[n] and "dev" in record[n]]
    fastest = max(ok, key=lambda n: record[n]["seq_s_b32"])
    pick, invariance = fastest, ""
    if not VARIANTS[fastest].batch_invariant:  # the same answer for the same input, when it costs < 10%
        steady = [n for n in ok if VARIANTS[n].batch_invariant]
        best = max(steady, key=lambda n: record[n]["seq_s_b32"])
        cost = 1 - record[best]["seq_s_b32"] / record[fastest]["seq_s_b32"]
        if cost < INVARIANT_COST:
            pick = best
            invariance = (
                f"; batch-invariant, preferred to {fastest} ({record[fastest]['seq_s_b32']:.0f} seq/s) at a cost of "
                f"{cost:.0%} (< {INVARIANT_COST:.0%})"
            )
    p = record[pick]
    others = "; ".join(
        f"{n} {record[n]['seq_s_b32']:.0f} seq/s" + (" (refused)" if "refused" in record[n] else "")
        for n in names
        if n != pick and "seq_s_b32" in record[n]
    )
    refused = [n for n in names if n != "fp32" and "refused" in record[n] and "dev" in record[n]]
    if pick == "fp32" and refused:  # the fallback: say so first
        first = refused[0]
        reason = f"fp32 (every int8 variant refused; {first}: {record[first]['refused']}): "
    else:
        reason = ""
    reason += (
        f"{pick}: fastest that keeps dev {metric} within {MAX_DROP} of PyTorch ({p['dev']:.4f} vs {source:.4f}) and is "
        f"not slower than fp32: {p['seq_s_b32']:.0f} seq/s at batch 32, {p['ms_b1']:.2f} ms at batch 1"
        + invariance
        + (f" (vs {others})" if others else "")
        + f", {threads} thread(s), on this CPU"
        + busy_note(load, facts.get("logical_cpus"))
    )
    return (
        pick,
        work / pick,
        {
            "variant": pick,
            "reason": reason,
            "graph": built[pick],
            "batch_invariant": VARIANTS[pick].batch_invariant,
            "metric": metric,
            "source_dev": source,
            "measured_on": data.about,
            "timed": f"batch 32 and batch 1 x {data.timing_inputs['input_ids'].shape[1]} tokens, real dev texts, "
            f"{SPEED_REPEATS} interleaved repeats",
            "threads": threads,
            "load_average": load,
            "cpu": {k: facts[k] for k in ("cpu_model", "isa", "torch_cpu_capability", "onnxruntime")},
            "candidates": record,
        },
    )
