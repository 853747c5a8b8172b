"""``alembert augment``: write a TinyBERT-augmented training file (see alembert.data.augment).

The file has the columns ``text``, ``text_pair`` (pair tasks) and ``label`` (class names,
or scores for regression), which ``load_data_file(path, task)`` and ``--train-file``
read back. It is written to a temporary name and moved into place (atomic).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from alembert.errors import AlembertError
from alembert.files import check_output_file

FORMATS = (".tsv", ".jsonl")


def register(sub) -> None:
    p = sub.add_parser("augment", help="write an augmented training file (TinyBERT word replacement)")
    p.add_argument("--task", help="GLUE task (sst2, mrpc, rte, ...); omit for your own --train-file")
    p.add_argument(
        "--data-dir", help="GLUE folder holding SST-2/ etc. (default: $ALEMBERT_DATA or ../shared/data/glue_data)"
    )
    p.add_argument("--train-file", help="input file (.csv, .tsv, .jsonl) instead of the GLUE training file")
    p.add_argument("--text-column")
    p.add_argument("--text-pair-column")
    p.add_argument("--label-column")
    p.add_argument("--max-train-samples", type=int, help="augment the first N examples only")
    p.add_argument("--n", type=int, default=20, help="augmented copies per example (default 20)")
    p.add_argument("--p", type=float, default=0.4, help="replacement probability per word (default 0.4)")
    p.add_argument("--k", type=int, default=15, help="candidates per word (default 15)")
    p.add_argument("--mlm", help="model folder with a masked-LM head for single-piece words")
    p.add_argument(
        "--embeddings", default="minilm-l6", help="model whose input embeddings give the neighbours (default minilm-l6)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64, help="masked sentences per MLM forward")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--output", required=True, help="output file, .tsv or .jsonl")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    p.set_defaults(run=run)


def _check_output(path: Path, overwrite: bool) -> None:
    if path.suffix.lower() not in FORMATS:
        raise AlembertError(f"--output {path}: unsupported extension {path.suffix!r}; use .tsv or .jsonl")
    if path.is_dir():
        raise AlembertError(f"--output {path} is a directory; pass a file name ending in .tsv or .jsonl")
    check_output_file(path)
    if path.exists() and not overwrite:
        raise AlembertError(
            f"output file {path} already exists; pass --overwrite to replace it or choose another --output"
        )


def _load_input(args):
    from alembert.data.glue import get_task
    from alembert.data.readers import default_data_dir, load_data_file, load_glue_split

    task = get_task(args.task) if args.task else None
    if args.train_file:
        ds = load_data_file(
            args.train_file,
            task,
            text_column=args.text_column,
            text_pair_column=args.text_pair_column,
            label_column=args.label_column,
        )
    elif task is not None:
        ds = load_glue_split(task, args.data_dir or default_data_dir(), "train")
    else:
        raise AlembertError("no input: pass --task (GLUE training file) or --train-file")
    if args.max_train_samples is not None and args.max_train_samples < len(ds):
        ds = ds.select(range(args.max_train_samples))
    return ds


def _rows(ds):
    """Output rows: dicts with text, text_pair and label (a class name or a score)."""
    names = getattr(ds.features.get("label"), "names", None)
    for ex in ds:
        row = {"text": ex["text_a"]}
        if "text_b" in ex:
            row["text_pair"] = ex["text_b"]
        if "label" in ex:
            row["label"] = names[ex["label"]] if names else ex["label"]
        yield row


def write_augmented(ds, path: str | Path) -> int:
    """Write ``ds`` as .tsv (GLUE-style, no quoting; tabs and line breaks in texts become
    spaces) or .jsonl, atomically. Returns the number of rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            if path.suffix.lower() == ".jsonl":
                for row in _rows(ds):
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                    count += 1
            else:
                header = [c for c in ("text", "text_pair", "label") if c in _columns(ds)]
                fh.write("\t".join(header) + "\n")
                for row in _rows(ds):
                    fh.write("\t".join(" ".join(str(row[c]).split()) for c in header) + "\n")
                    count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def _columns(ds) -> set[str]:
    names = {"text_a": "text", "text_b": "text_pair", "label": "label"}
    return {names[c] for c in ds.column_names if c in names}


def run(args) -> int:
    import torch

    from alembert.data.augment import Augmenter, augment_dataset

    output = Path(args.output)
    _check_output(output, args.overwrite)
    if args.n < 0 or not 0.0 <= args.p <= 1.0 or args.k < 1:
        raise AlembertError(f"--n {args.n} --p {args.p} --k {args.k}: need n >= 0, 0 <= p <= 1 and k >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = _load_input(args)
    start = time.perf_counter()
    aug = Augmenter(embeddings=args.embeddings, mlm=args.mlm, k=args.k, mlm_batch_size=args.batch_size)
    load_s = time.perf_counter() - start
    out, stats = augment_dataset(ds, aug, n=args.n, p=args.p, seed=args.seed)
    rows = write_augmented(out, output)
    source = "MLM " + args.mlm + " + " if args.mlm else ""
    print(
        f"augment {args.task or args.train_file}: n={args.n} p={args.p} k={args.k} "
        f"({source}embeddings {args.embeddings})"
    )
    print(
        f"{stats.examples_in} examples -> {rows} output rows; {stats.sentences} sentences in "
        f"{stats.seconds:.2f} s = {stats.sentences_per_s:.1f} sentences/s (model load "
        f"{load_s:.2f} s); {stats.replaced_fraction:.1%} of replaceable words replaced"
    )
    print(f"wrote {output}")
    return 0
