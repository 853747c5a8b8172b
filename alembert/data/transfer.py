"""Transfer sets: extra unlabelled text on which the teacher's outputs are the only targets.

Why by default: on a small labelled set the teacher's soft targets on the labelled rows add
little the gold labels do not already say (kd and the student alone end level), while its
outputs on *more text* carry what it knows beyond them (DistilBERT and Patient KD train on
task data plus transfer text; TinyBERT's task stage on a 20x augmented set). So ``distill``
fills a labelled set under ``data.transfer_fill`` rows (20,000) up to that many, from these sources in
order:

1. ``--transfer FILE``, the user's in-domain text, always taken whole (``.txt``: one text per
   line; CSV/TSV/JSONL: the task's text columns, labels ignored; ``FILE:COLUMN``: that column);
2. the other training texts: the rows ``--max-train-samples`` left out, labels dropped;
3. TinyBERT's augmentation of the labelled texts (:mod:`alembert.data.augment`: word
   replacement by embedding neighbours in the teacher's input embeddings, by masked-LM
   predictions with ``--augment-mlm``), at most :data:`MAX_FACTOR` copies per text, cached.

``--transfer none`` turns it off; ``--transfer train-rest`` takes all the other training rows
(also on a large set); ``--transfer-size N`` asks for N transfer rows whatever the set's size.
A transfer row that repeats a dev text is dropped (counted in the plan): the teacher's outputs
on the dev set must not leak into training. Transfer rows get the label -100 (regression: NaN),
which the hard-label loss ignores, so they contribute through the teacher only.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from datasets import Dataset, Value, concatenate_datasets

from alembert.config.schema import DataConfig
from alembert.data.glue import TaskSpec
from alembert.data.readers import default_data_dir, load_data_file, load_glue_split
from alembert.data.tokenize import data_fingerprint
from alembert.errors import AlembertError
from alembert.losses.ce import IGNORE_INDEX

MAX_FACTOR = 20  # TinyBERT's augmentation factor: at most this many augmented copies per labelled text
AUGMENT_P, AUGMENT_K = 0.4, 15  # TinyBERT's replacement probability and candidates per word
OFF = "none"


@dataclass
class TransferPlan:
    """How many transfer rows came from where, and why (printed by ``--dry-run``, kept in metrics.json)."""

    labelled: int
    wanted: int  # transfer rows asked for (0: none)
    sources: dict[str, int] = field(default_factory=dict)  # source -> rows taken from it
    dropped_dev: int = 0  # rows equal to a dev text, left out
    why: str = ""
    augment: dict | None = None  # what the augmenter did (AugmentStats), when it ran

    @property
    def rows(self) -> int:
        return sum(self.sources.values())

    def as_dict(self) -> dict:
        return {**asdict(self), "rows": self.rows}

    def line(self) -> str:
        if not self.rows:
            return f"transfer set: none ({self.why})"
        parts = ", ".join(f"{n:,} {src}" for src, n in self.sources.items() if n)
        dropped = f"; {self.dropped_dev} equal to dev texts left out" if self.dropped_dev else ""
        return f"transfer set: {self.rows:,} texts labelled by the teacher ({parts}){dropped}; {self.why}"


def wanted_rows(cfg: DataConfig, labelled: int) -> tuple[int, str]:
    """Transfer rows to build for ``labelled`` gold rows, and the reason."""
    if cfg.transfer == OFF:
        return 0, "--transfer none"
    if cfg.transfer_size is not None:
        return cfg.transfer_size, f"--transfer-size {cfg.transfer_size}"
    fill = cfg.transfer_fill
    if labelled >= fill:
        return 0, f"{labelled:,} labelled rows >= {fill:,}: the set is large enough (--transfer-size N to add some)"
    n = min(fill - labelled, MAX_FACTOR * labelled)
    return n, (
        f"{labelled:,} labelled rows < {fill:,}: filled up to {labelled + n:,} (at most {MAX_FACTOR}x) so the "
        "teacher's outputs on more text carry what the gold labels do not"
    )


def build_transfer(
    cfg: DataConfig, task: TaskSpec, train: Dataset, dev: Dataset, embeddings: str | Path, seed: int = 0
) -> tuple[Dataset | None, TransferPlan]:
    """The transfer set of a run (text columns only) and its plan. ``embeddings``: the model whose input
    embeddings give augmentation's word neighbours (the teacher)."""
    wanted, why = wanted_rows(cfg, len(train))
    plan = TransferPlan(labelled=len(train), wanted=wanted, why=why)
    parts: list[tuple[str, Dataset]] = []
    if cfg.transfer not in (None, OFF, "train-rest"):
        parts.append((f"from {cfg.transfer}", _read_file(cfg, task)))
    if cfg.transfer == "train-rest":
        rest = _train_rest(cfg, task, required=True)
        parts.append(("other training texts", rest))
    elif wanted and cfg.transfer != OFF:
        left = wanted - sum(len(p) for _, p in parts)
        rest = _train_rest(cfg, task, required=False)
        if rest is not None and left > 0:
            parts.append(("other training texts", rest.select(range(min(left, len(rest))))))
        left = wanted - sum(len(p) for _, p in parts)
        if left > 0:
            augmented, stats = _augmented(train, left, cfg, embeddings, seed)
            parts.append(("augmented copies of the labelled texts", augmented))
            plan.augment = stats
    if not parts:
        if cfg.max_transfer_samples is not None:
            raise AlembertError(
                "--max-transfer-samples needs a transfer set: pass --transfer FILE or --transfer train-rest"
            )
        return None, plan
    dev_texts = {_text_key(row) for row in _text_rows(dev)}
    kept_parts = []
    for name, ds in parts:
        keep = [i for i, row in enumerate(_text_rows(ds)) if _text_key(row) not in dev_texts]
        plan.dropped_dev += len(ds) - len(keep)
        kept_parts.append((name, ds.select(keep) if len(keep) < len(ds) else ds))
    if cfg.max_transfer_samples is not None:  # the first N transfer texts, in source order
        budget, capped = cfg.max_transfer_samples, []
        for name, ds in kept_parts:
            capped.append((name, ds.select(range(min(budget, len(ds))))))
            budget -= len(capped[-1][1])
        kept_parts = capped
    plan.sources = {name: len(ds) for name, ds in kept_parts}
    columns = [c for c in ("text_a", "text_b") if c in train.column_names]
    rows = [ds.select_columns(columns) for _, ds in kept_parts if len(ds)]
    return (concatenate_datasets(rows) if rows else None), plan


def _train_rest(cfg: DataConfig, task: TaskSpec, required: bool) -> Dataset | None:
    if cfg.max_train_samples is None:
        if required:
            raise AlembertError(
                "--transfer train-rest uses the training examples beyond --max-train-samples; "
                "pass --max-train-samples N"
            )
        return None
    full = (
        load_data_file(cfg.train_file, task)
        if cfg.train_file
        else load_glue_split(task, cfg.data_dir or default_data_dir(), "train")
    )
    rest = full.select(range(min(cfg.max_train_samples, len(full)), len(full)))
    return rest.remove_columns("label") if "label" in rest.column_names else rest


def _read_file(cfg: DataConfig, task: TaskSpec) -> Dataset:
    spec = str(cfg.transfer)
    path, column = Path(spec), None
    if not path.exists() and ":" in spec:  # FILE:COLUMN
        head, _, column = spec.rpartition(":")
        path = Path(head)
    if not path.is_file():
        raise AlembertError(
            f"transfer file {path} not found; pass an existing file (FILE or FILE:COLUMN), "
            "'train-rest' or 'none' to --transfer"
        )
    if path.suffix == ".txt":
        if column is not None:
            raise AlembertError(f"--transfer {spec}: a .txt file has no columns; pass {path} alone")
        lines = [
            line.strip() for line in path.read_text(encoding="utf-8", errors="strict").splitlines() if line.strip()
        ]
        if not lines:
            raise AlembertError(f"transfer file {path} is empty; give one text per line")
        if task.is_pair:
            raise AlembertError(
                f"task {task.name} takes text pairs; "
                "a .txt transfer file has single texts: use a TSV/CSV/JSONL with both columns"
            )
        return Dataset.from_dict({"text_a": lines})
    if column is not None and task.is_pair:
        raise AlembertError(
            f"--transfer {spec}: task {task.name} takes text pairs; name the file alone and "
            "--text-column/--text-pair-column for its two columns"
        )
    ds = load_data_file(
        path, task, column or cfg.text_column, None if column else cfg.text_pair_column, allow_unlabelled=True
    )
    if len(ds) == 0:
        raise AlembertError(f"transfer file {path} has no rows; give some texts or drop --transfer")
    return ds.remove_columns("label") if "label" in ds.column_names else ds


def _augmented(train: Dataset, rows: int, cfg: DataConfig, embeddings: str | Path, seed: int):
    """``rows`` augmented copies of the labelled texts: copy 1 of every text, then copy 2, ...
    (so a cut-off leaves every text about equally many), read back from the cache when built before."""
    from alembert.data.augment import augment_dataset
    from alembert.paths import cache_dir

    columns = [c for c in ("text_a", "text_b") if c in train.column_names]
    texts = train.select_columns(columns)
    copies = min(MAX_FACTOR, math.ceil(rows / len(texts)))
    source = cfg.augment_mlm or embeddings
    key = hashlib.sha256(
        "|".join(
            [data_fingerprint(texts), str(copies), str(AUGMENT_P), str(AUGMENT_K), str(seed), str(source)]
        ).encode()
    ).hexdigest()[:24]
    folder = cache_dir() / "transfer"
    path, meta = folder / f"{key}.jsonl", folder / f"{key}.json"
    if path.is_file() and meta.is_file():
        with path.open(encoding="utf-8") as fh:
            cached = [json.loads(line) for line in fh]
        ds = Dataset.from_dict({c: [r[c] for r in cached] for c in columns})
        stats = json.loads(meta.read_text())
    else:
        out, made = augment_dataset(
            texts,
            n=copies,
            p=AUGMENT_P,
            k=AUGMENT_K,
            seed=seed,
            embeddings=embeddings,
            mlm=cfg.augment_mlm,
        )
        order = [i * (copies + 1) + 1 + c for c in range(copies) for i in range(len(texts))]  # copy-major
        ds = out.select(order)
        stats = made.as_dict()
        from alembert.files import write_json_atomic, write_text_atomic

        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, "".join(json.dumps({c: ds[c][i] for c in columns}) + "\n" for i in range(len(ds))))
        write_json_atomic(meta, stats)
    return ds.select(range(min(rows, len(ds)))), stats


def _text_rows(ds: Dataset):
    columns = [c for c in ("text_a", "text_b") if c in ds.column_names]
    return zip(*(ds[c] for c in columns), strict=True)


def _text_key(row) -> tuple:
    return tuple(" ".join(str(t).split()).lower() for t in row)


def with_transfer(train: Dataset, transfer: Dataset | None, label_column: str = "label") -> Dataset:
    """Labelled training rows followed by transfer rows labelled -100 (regression: NaN). The transfer
    rows need every column of ``train`` but the label (tokenised rows: the same tokenizer's columns)."""
    if transfer is None:
        return train
    if label_column not in train.column_names:
        raise AlembertError(
            f"the training rows have no {label_column!r} column (columns: {', '.join(train.column_names)}); "
            "transfer rows are added to labelled rows"
        )
    missing = [c for c in train.column_names if c != label_column and c not in transfer.column_names]
    if missing:
        raise AlembertError(
            f"the transfer rows lack column(s) {', '.join(missing)} of the training rows; "
            "prepare them as the training rows (same tokenizer), labels left out"
        )
    regression = train.features[label_column].dtype.startswith("float")
    dtype = "float32" if regression else "int64"
    filler = math.nan if regression else IGNORE_INDEX
    train = train.cast_column(label_column, Value(dtype))
    columns = [c for c in train.column_names if c != label_column]
    transfer = transfer.select_columns(columns).add_column(label_column, [filler] * len(transfer))
    transfer = transfer.cast(train.features)
    return concatenate_datasets([train, transfer.select_columns(train.column_names)])
