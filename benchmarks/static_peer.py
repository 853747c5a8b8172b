#!/usr/bin/env python
"""Static students vs model2vec (and tokenlearn), the teacher and a layered student, side by side.

Every variant is a sentence-embedding folder, scored by the same code (alembert's STS-B dev zero-shot
and SQuAD v1.1 retrieval on the held-out articles, :mod:`alembert.embedding.evaluate`) and timed in
this one process, interleaved round-robin (:func:`alembert.measure.speed.measure`), one thread by default:

  teacher            ``--teacher`` (a sentence-transformers folder or alias), the reference
  static students    ``--students``: alembert's static student folders (model2vec layout)
  model2vec          ``model2vec.distill`` of the same teacher, ``pca_dims`` = the students' width (default
                     settings otherwise: Zipf/SIF weights, float16 table), made here once and reused
  tokenlearn         ``--tokenlearn``: model2vec's trained variant (tokenlearn's ``train_model``) on the same texts
                     as the students (``--corpus``/``--transfer-task``/``--max-texts``), targets the mean of the
                     teacher's token embeddings as tokenlearn's featurize computes them, at the students' training
                     length (``--train-max-length``, ``--bf16`` as their teacher cache). tokenlearn 0.2.1 needs
                     ``model2vec[distill]``, which pins transformers<5.4: it does not install beside this project's
                     transformers 5, so it runs only where tokenlearn is importable (installed ``--no-deps``)
  layered student    ``--layer-student``: e.g. the best 3-layer student, for the table

Speed is what a user's ``encode`` costs, tokenisation included: sentences/s over the first
``--speed-sentences`` distinct STS-B dev sentences in length-sorted batches of 32 (alembert's ``encode``,
the PyTorch model of each folder), and at batch 1 (one sentence per call, the median over calls). The static
folders are also timed in model2vec's own runtime (``StaticModel.encode``, batch 32, no multiprocessing),
the figure model2vec's users see. The table goes to stdout and ``static_peer.md``; every figure to
``static_peer.json`` in ``--output``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

TASKS = ("stsb-zeroshot", "squad-retrieval")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="mpnet-base", help="sentence-transformers folder or alias (the reference)")
    p.add_argument("--students", nargs="*", default=[], help="static student folders (alembert distill-general)")
    p.add_argument("--layer-student", help="a layered sentence-transformers student for the table (optional)")
    p.add_argument("--dim", type=int, help="model2vec's pca_dims (default: the first student's width, else 256)")
    p.add_argument("--tokenlearn", action="store_true", help="also tokenlearn's trained variant (needs tokenlearn)")
    p.add_argument("--corpus", nargs="+", default=["squad"], help="tokenlearn's texts: the students' --corpus")
    p.add_argument("--transfer-task", default="stsb", help="tokenlearn's texts: the students' --transfer-tasks")
    p.add_argument("--max-texts", type=int, help="tokenlearn's texts: the students' --max-texts")
    p.add_argument(
        "--train-max-length",
        type=int,
        default=128,
        help="tokenlearn's targets: the teacher's tokens per text, as the students' --max-length (default 128)",
    )
    p.add_argument(
        "--bf16", action="store_true", help="tokenlearn's targets under bf16 autocast, as the students' teacher cache"
    )
    p.add_argument("--max-length", type=int, default=256, help="tokens per text when scoring and timing")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5, help="interleaved timing repeats")
    p.add_argument("--speed-sentences", type=int, default=512, help="distinct STS-B dev sentences timed")
    p.add_argument("--max-pairs", type=int, help="score on the first N STS-B pairs only (a smoke run)")
    p.add_argument("--max-questions", type=int, help="score on the first N retrieval questions only (a smoke run)")
    p.add_argument("--output", default="runs/bench-static-peer")
    return p.parse_args(argv)


def load(folder: Path):
    """(model, tokenizer): a static folder as alembert's static model, anything else as a sentence-transformers one."""
    from alembert.models.sentence import load_embedding_model
    from alembert.models.static import is_static_folder, load_static_model

    model, tok = load_static_model(folder) if is_static_folder(folder) else load_embedding_model(folder)
    return model.eval(), tok


def static_width(folder: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return int(f.get_slice("embeddings").get_shape()[1])


def make_model2vec(teacher: Path, dim: int, out: Path) -> dict:
    """``model2vec.distill`` of the teacher (its defaults but ``pca_dims``), saved once; reused when there."""
    from model2vec.distill import distill

    folder = out / f"model2vec-{dim}"
    record = folder / "alembert_peer.json"
    if record.is_file():
        return json.loads(record.read_text())
    start = time.perf_counter()
    distill(str(teacher), pca_dims=dim, device="cpu").save_pretrained(str(folder))
    made = {"folder": str(folder), "seconds": time.perf_counter() - start, "pca_dims": dim}
    record.write_text(json.dumps(made, indent=2))
    return made


def tokenlearn_status() -> str | None:
    """None when tokenlearn can run here, else why not (one line)."""
    if importlib.util.find_spec("tokenlearn") is not None:
        return None
    return (
        "not run: tokenlearn is not installed here; tokenlearn 0.2.1 requires model2vec[distill], which pins "
        f"transformers<5.4.0, and this project runs transformers {metadata.version('transformers')}; "
        "`pip install --no-deps tokenlearn more-itertools` installs it beside the pins and it runs"
    )


class PadIsZero:
    """A view of a ``tokenizers.Tokenizer`` whose "[PAD]" is id 0, for tokenlearn 0.2.1: it takes the pad
    id to mask as ``token_to_id("[PAD]")`` but pads its batches with id 0 (BERT's [PAD]). model2vec's
    distill of MPNet writes "<pad>" at 0 and "[PAD]" at 1, so tokenlearn masks id 1 and counts every
    padded position (id 0) as a token of the text: each text's mean is taken over the batch's longest
    length. (tokenlearn PR #15 is about this lookup; the maintainers moved it to model2vec, still open.)
    Id 0 as the masked pad is right for tokenlearn's padding when id 0 is a special token, which never
    occurs in its texts (encoded without special tokens)."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer

    @staticmethod
    def needed(tokenizer) -> bool:
        if tokenizer.token_to_id("[PAD]") == 0:
            return False
        first = tokenizer.id_to_token(0)
        specials = {t.content for t in tokenizer.get_added_tokens_decoder().values() if t.special}
        if first not in specials:
            raise SystemExit(f"tokenlearn pads with id 0, which is {first!r} here, not a special token: cannot run it")
        return True

    def token_to_id(self, token: str):
        return 0 if token == "[PAD]" else self._tokenizer.token_to_id(token)

    def __getattr__(self, name):
        if name == "_tokenizer":  # not set yet (copy and pickle build the object without __init__)
            raise AttributeError(name)
        return getattr(self._tokenizer, name)

    def __deepcopy__(self, memo):  # model2vec's StaticModel deep-copies the tokenizer it is given
        import copy

        return PadIsZero(copy.deepcopy(self._tokenizer, memo))


def make_tokenlearn(args, teacher: Path, dim: int, out: Path) -> dict:
    """tokenlearn's recipe (tokenlearn/train.py): distill at float32, then ``train_model`` on (text, the mean of
    the teacher's token embeddings without the first and last token) pairs, as its featurize step computes them."""
    import numpy as np
    import torch
    from model2vec.distill import distill
    from sentence_transformers import SentenceTransformer
    from tokenlearn.train import train_model

    from alembert.embedding.data import load_texts

    folder = out / f"tokenlearn-{dim}"
    record = folder / "alembert_peer.json"
    if record.is_file():
        return json.loads(record.read_text())
    texts = load_texts(args.corpus, [t for t in args.transfer_task.split(",") if t], None, None, args.max_texts)
    start = time.perf_counter()
    cached = out / f"tokenlearn-targets-{len(texts)}-{args.train_max_length}{'-bf16' if args.bf16 else ''}.npy"
    if cached.is_file():  # the teacher's pass is most of the cost: a rerun (another tokenlearn fix) reuses it
        targets = np.load(cached)
    else:
        st = SentenceTransformer(str(teacher), device="cpu")
        st.max_seq_length = args.train_max_length
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            tokens = st.encode(texts, output_value="token_embeddings", batch_size=32, convert_to_tensor=False)
        targets = np.stack([t[1:-1].float().mean(0).numpy() for t in tokens])
        np.save(cached, targets)
    model = distill(str(teacher), quantize_to="float32", pca_dims=dim, device="cpu")
    own, padded = model.tokenizer, PadIsZero.needed(model.tokenizer)
    if padded:
        model.tokenizer = PadIsZero(own)
    trained = train_model(model, texts, targets, device="cpu", pca_dims=dim)
    trained.tokenizer = own
    trained.save_pretrained(str(folder))
    made = {
        "folder": str(folder),
        "seconds": time.perf_counter() - start,
        "texts": len(texts),
        "pca_dims": dim,
        "max_length": args.train_max_length,
        "bf16": args.bf16,
        "pad_is_zero": padded,
    }
    record.write_text(json.dumps(made, indent=2))
    return made


def speed_texts(n: int) -> list[str]:
    from alembert.embedding.evaluate import stsb_pairs

    a, b, _ = stsb_pairs()
    return list(dict.fromkeys(a + b))[:n]


def workloads(variants: list[dict], texts: list[str], max_length: int) -> dict:
    """Per variant, alembert's encode (tokeniser + PyTorch model), batch 32 over all texts and one text
    per call; per static variant also model2vec's ``StaticModel.encode`` at batch 32."""
    from model2vec import StaticModel

    from alembert.embedding.cache import encode
    from alembert.measure.speed import Workload

    n = len(texts)
    out = {}
    for v in variants:
        model, tok = v["model"], v["tokenizer"]
        out[v["name"]] = Workload(
            lambda i, m=model, t=tok: encode(m, t, [texts[i % n]], max_length, 1),
            lambda m=model, t=tok: encode(m, t, texts, max_length, 32),
            32,
            sequences=n,
        )
        if v["static"]:
            m2v = StaticModel.from_pretrained(v["folder"])
            out[v["name"] + " [model2vec]"] = Workload(
                lambda i, m=m2v: m.encode([texts[i % n]], max_length=max_length, use_multiprocessing=False),
                lambda m=m2v: m.encode(texts, batch_size=32, max_length=max_length, use_multiprocessing=False),
                32,
                sequences=n,
            )
    return out


def cpu_description() -> str:
    flags, name = set(), platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8") if f in flags]
    return f"{name} ({', '.join(isa) or 'no AVX2'}), {os.cpu_count()} CPUs"


def table(rows: list[dict], notes: list[str]) -> str:
    lines = [
        "| variant | kind | dim | STS-B spearman | recall@1 | MRR@10 | sent/s b32 | sent/s b1 | x teacher b32 | "
        "model2vec encode sent/s b32 | MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        m2v = r.get("model2vec_sent_s_b32")
        lines.append(
            f"| {r['name']} | {r['kind']} | {r['dim']} | {r['stsb-zeroshot']['spearman']:.4f} | "
            f"{r['squad-retrieval']['recall@1']:.3f} | {r['squad-retrieval']['mrr@10']:.3f} | "
            f"{r['sent_s_b32']:.0f} | {r['sent_s_b1']:.0f} | {r['speedup_b32']:.1f}x | "
            f"{'-' if m2v is None else f'{m2v:.0f}'} | {r['disk_mb']:.1f} |"
        )
    return "\n".join(lines + [""] + [f"- {n}" for n in notes])


def main(argv=None) -> None:
    import torch

    from alembert.embedding.evaluate import cached_evaluation, evaluate_embedding
    from alembert.measure.size import disk_mb
    from alembert.measure.speed import measure
    from alembert.models.resolve import resolve_model
    from alembert.models.static import is_static_folder

    args = parse_args(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    teacher = resolve_model(args.teacher)
    students = [Path(s) for s in args.students]
    dim = args.dim or (static_width(students[0]) if students else 256)

    peers = {"model2vec": make_model2vec(teacher, dim, out)}
    status = tokenlearn_status()
    if args.tokenlearn:
        if status:
            raise SystemExit(f"--tokenlearn: {status}")
        peers["tokenlearn"] = make_tokenlearn(args, teacher, dim, out)
    folders = [("teacher", "teacher", teacher)]
    folders += [(s.name, "alembert static student", s) for s in students]
    folders += [(f"model2vec-{dim}", "model2vec.distill", Path(peers["model2vec"]["folder"]))]
    if "tokenlearn" in peers:
        folders += [(f"tokenlearn-{dim}", "model2vec + tokenlearn", Path(peers["tokenlearn"]["folder"]))]
    if args.layer_student:
        layered = Path(resolve_model(args.layer_student))  # an alias too: its folder's weights are its size
        folders += [(Path(args.layer_student).name, "layered student", layered)]

    taken: set[str] = set()
    for i, (name, kind, folder) in enumerate(folders):  # one name per row: the timings are keyed by it
        folders[i] = (name if name not in taken else f"{name} ({kind})", kind, folder)
        taken.add(folders[i][0])
    limits = {"stsb-zeroshot": {"max_pairs": args.max_pairs}, "squad-retrieval": {"max_questions": args.max_questions}}
    variants = []
    for name, kind, folder in folders:
        model, tok = load(folder)
        row = {"name": name, "kind": kind, "folder": str(folder), "model": model, "tokenizer": tok}
        row["static"] = is_static_folder(folder)
        row["dim"] = model.dim
        row["disk_mb"] = disk_mb(folder)
        for task in TASKS:
            print(f"static_peer: {name}: {task}", flush=True)
            if kind == "teacher" and not any(limits[task].values()):  # the teacher's figures: once per machine
                row[task] = cached_evaluation(model, tok, task, args.max_length, 128)
            else:
                row[task] = evaluate_embedding(model, tok, task, args.max_length, 128, **limits[task])
        variants.append(row)

    print(f"static_peer: timing {len(variants)} variants ({args.repeats} interleaved repeats)", flush=True)
    speeds = measure(workloads(variants, speed_texts(args.speed_sentences), args.max_length), repeats=args.repeats)
    rows = []
    for v in variants:
        s = speeds[v["name"]]
        row = {k: x for k, x in v.items() if k not in ("model", "tokenizer")}
        row["sent_s_b32"] = s["throughput_seq_s"]
        row["sent_s_b1"] = 1000 / s["latency_ms_median"]
        if v["name"] + " [model2vec]" in speeds:
            row["model2vec_sent_s_b32"] = speeds[v["name"] + " [model2vec]"]["throughput_seq_s"]
        rows.append(row)
    for row in rows:
        row["speedup_b32"] = row["sent_s_b32"] / rows[0]["sent_s_b32"]

    stsb = f"STS-B dev{f' (first {args.max_pairs} pairs)' if args.max_pairs else ''}"
    questions = f" (first {args.max_questions})" if args.max_questions else ""
    versions = ", ".join(
        f"{p} {metadata.version(p)}" for p in ("torch", "transformers", "model2vec", "sentence-transformers")
    )
    if "tokenlearn" in peers:
        tl = peers["tokenlearn"]
        tokenlearn = (
            f"trained on {tl['texts']} texts (targets at {tl.get('max_length', 'the teacher max')} tokens"
            f"{', bf16' if tl.get('bf16') else ''}) in {tl['seconds']:.0f} s, featurize + distill + train_model"
            f"{'; its [PAD] lookup given id 0 (class PadIsZero)' if tl.get('pad_is_zero') else ''}"
        )
    else:
        tokenlearn = status or "importable here; pass --tokenlearn to run it"
    notes = [
        f"model2vec.distill of `{args.teacher}`, pca_dims {dim}, its defaults otherwise (SIF 1e-4, float16): "
        f"{peers['model2vec']['seconds']:.0f} s",
        f"tokenlearn: {tokenlearn}",
        f"scored by alembert's evaluate_embedding: {stsb}, SQuAD v1.1 retrieval on the held-out articles' "
        f"questions{questions} against all paragraphs; max length {args.max_length}",
        f"speed: {args.speed_sentences} distinct STS-B dev sentences, tokenisation included, {args.threads} "
        f"thread(s), {args.repeats} repeats interleaved in one process; batch 1 = 1000 / median ms per sentence",
        f"CPU: {cpu_description()}; {versions}; python {sys.version.split()[0]}",
    ]
    text = table(rows, notes)
    print("\n" + text)
    (out / "static_peer.md").write_text(f"# Static students vs model2vec\n\n{text}\n")
    (out / "static_peer.json").write_text(
        json.dumps({"config": vars(args), "peers": peers, "tokenlearn": status, "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
