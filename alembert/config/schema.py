"""Typed, validated configuration for every command (pydantic).

Each command has one config model. Sections are shared so that ``finetune``,
``distill`` and ``distill-general`` read the same ``data:`` and ``train:`` blocks.
Unknown fields are rejected (``extra="forbid"``) so a typo never passes silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Strict):
    """Where the examples come from and how they are tokenised."""

    task: str | None = Field(
        None,
        description="a GLUE task; none (or 'custom') with --train-file/--dev-file: your own labels; "
        "none without files: sst2",
    )
    labels: list[str] | None = Field(
        None,
        description="your own data: the class names in id order (default: "
        "the model's saved labels, else inferred from the training file)",
    )
    data_dir: Path | None = Field(None, description="GLUE folder (holds SST-2/, MRPC/, ...)")
    train_file: Path | None = Field(None, description="CSV/TSV/JSONL training file")
    dev_file: Path | None = Field(None, description="CSV/TSV/JSONL dev file")
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    max_length: int | None = Field(
        None, ge=8, le=4096, description="tokens per input; default: the model's own, else the task kind's"
    )
    max_train_samples: int | None = Field(None, ge=1)
    max_eval_samples: int | None = Field(None, ge=1)
    transfer: str | None = Field(
        None,
        description="distill: unlabelled text the teacher labels: a file (FILE or FILE:COLUMN), 'train-rest', "
        "or 'none'; default: a small labelled set is filled up to transfer_fill rows (data/transfer.py)",
    )
    transfer_size: int | None = Field(
        None, ge=0, description="distill: transfer rows to build, whatever the labelled set's size"
    )
    transfer_fill: int = Field(
        20_000, ge=0, description="distill: a labelled set under this many rows is filled up to it with transfer text"
    )
    augment_mlm: str | None = Field(
        None, description="distill: a masked-LM model whose predictions give augmentation's word replacements"
    )
    max_transfer_samples: int | None = Field(None, ge=1, description="distill: use the first N transfer texts")


class TrainConfig(Strict):
    """Optimisation and schedule, shared by every training command."""

    epochs: float = Field(3.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimiser steps")
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(128, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(5e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    max_grad_norm: float = Field(1.0, ge=0)
    seed: int = 42
    eval_every: int | None = Field(None, ge=1, description="steps between evaluations; default: each epoch")
    log_every: int = Field(50, ge=1)
    group_by_length: bool = True
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    threads: int | None = Field(None, ge=1, description="torch CPU threads")
    report_to: list[str] = Field(
        default_factory=list, description="Accelerate trackers for the same scalars: tensorboard, wandb, mlflow, ..."
    )
    save_every: int | None = Field(None, ge=1, description="steps between checkpoints (for --resume)")
    keep_checkpoints: int = Field(2, ge=1, description="how many recent checkpoints to keep")


class RunConfig(Strict):
    """What every training command's run takes beside its own fields: where its output goes is the
    command's ``output_dir``; these say how to treat a folder already there, and what else to do."""

    overwrite: bool = False
    resume: bool = Field(False, description="continue from the newest checkpoint in output_dir")
    resume_force: bool = Field(
        False, description="with --resume: continue although the config or data differ (recorded in metrics.json)"
    )
    dry_run: bool = Field(
        False, description="validate, time a few real steps and print the plan and its cost; write nothing"
    )
    push_to_hub: str | None = Field(
        None, description="after the run, push the output folder to this Hub repository (checked before training)"
    )


class FinetuneConfig(RunConfig):
    """``alembert finetune``: train a model (normally the teacher) on a task."""

    model: str = "minilm-l6"
    output_dir: Path = Path("runs/finetune")
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()


class EvaluateConfig(Strict):
    """``alembert evaluate``: official metrics of a saved model on a task's dev set."""

    model: str
    output_dir: Path | None = None
    data: DataConfig = DataConfig()
    batch_size: int = Field(128, ge=1)


class PruneConfig(Strict):
    """A student cut from the teacher's (or ``student.path``'s) own weights: the units kept are the
    most important on the run's own training batches (:mod:`alembert.models.importance`)."""

    heads: int | None = Field(
        None, ge=1, description="heads kept per layer; the hidden width becomes heads x the head width (CoFi-style)"
    )
    hidden: int | None = Field(
        None, ge=1, description="the hidden width kept, instead of heads: a multiple of the head width"
    )
    ffn: int | None = Field(None, ge=1, description="FFN neurons kept per layer")
    layers: list[int] | None = Field(None, description="0-based layers kept, e.g. [0, 2, 4]; default all")
    batches: int = Field(8, ge=1, description="training batches the importance scores are measured on")
    rounds: int = Field(
        1,
        ge=1,
        description="iterative pruning inside the run: reach the cut in this many rounds, each cutting the same "
        "fraction of what is left and then distilling, the last recipe stage's steps shared among them",
    )


class StudentConfig(Strict):
    """How the student is made: an existing checkpoint, kept teacher layers, or a new shape."""

    path: str | None = Field(None, description="existing student (e.g. from distill-general)")
    layers: list[int] | None = Field(None, description="0-based teacher layers to keep; default every other")
    num_layers: int | None = Field(None, ge=1, description="random init with this depth")
    hidden_size: int | None = Field(None, ge=8)
    intermediate_size: int | None = Field(None, ge=8)
    num_heads: int | None = Field(None, ge=1)
    projection: bool = Field(
        True, description="embedding students narrower than the teacher: a Dense layer to the teacher's width"
    )
    projection_init: Literal["random", "lstsq", "procrustes"] = Field(
        "random",
        description="embedding students: a new Dense layer starts at random, or is fitted on up to 4,096 training "
        "texts as the rotation that best aligns the student's pooled embeddings with the teacher's (procrustes: "
        "keeps the student's own cosines) or as the least-squares map (lstsq, experimental)",
    )
    builder: str | None = Field(
        None,
        description="the student builder by name (alembert/students/: checkpoint, layers, config, static, or one of "
        "your own); default: chosen from path, layers and the shape fields",
    )
    prune: PruneConfig | None = Field(
        None,
        description="structured pruning (student.builder=prune): heads with the hidden width, FFN neurons, layers",
    )
    dim: int | None = Field(
        None,
        ge=2,
        description="static students (student.builder=static): the width of the token vectors, a PCA of the "
        "teacher's token outputs; default the teacher's width",
    )

    @property
    def from_config(self) -> bool:
        return any(v is not None for v in (self.num_layers, self.hidden_size, self.intermediate_size, self.num_heads))


class DistillConfig(RunConfig):
    """``alembert distill``: task-specific distillation of a fine-tuned teacher."""

    teacher: str
    recipe: str | dict[str, Any] = Field("pkd-skip", description="recipe name, YAML path, or the recipe itself")
    cross_tokenizer: Literal["off", "strict", "cls"] = Field(
        "off", description="teacher and student tokenise separately: strict aligns every token, cls only [CLS]"
    )
    cache_teacher: bool = Field(
        True,
        description="compute logit/[CLS] teacher outputs once and read "
        "them back (stages without hidden or attention losses)",
    )
    fast_teacher: bool = Field(
        True,
        description="cached teacher logits on many rows come from the teacher's fastest export that keeps its "
        "dev metric (export/teacher_labels.py); false: always PyTorch",
    )
    student: StudentConfig = StudentConfig()
    output_dir: Path = Path("runs/distill")
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()


class TextConfig(Strict):
    """Raw text packed into sequences, the first ``heldout`` of them never trained on."""

    corpus: list[str] = Field(default_factory=list, description=".txt files or folders, or a saved datasets folder")
    max_length: int | None = Field(
        None, ge=16, le=4096, description="tokens per sequence; default: the teacher's (embeddings), else 128"
    )
    max_sequences: int | None = Field(None, ge=1, description="use the first N packed sequences")
    heldout: int = Field(256, ge=1, description="packed sequences held out to track the distillation loss")
    mlm_probability: float = Field(0.15, gt=0, lt=1)
    transfer_tasks: list[str] = Field(
        default_factory=list, description="also the texts of these GLUE training sets (both sides of pairs)"
    )


class CorpusConfig(TextConfig):
    """Raw text for general (task-agnostic) distillation."""

    text_column: str | None = Field(None, description="embedding recipes: the text column of CSV/TSV/JSONL sources")
    max_texts: int | None = Field(None, ge=1, description="embedding recipes: use the first N distinct texts")
    queries: list[str] = Field(
        default_factory=list,
        description="ranking recipes: query texts (files as for corpus; squad: the SQuAD training questions)",
    )
    pseudo_queries: int = Field(
        0, ge=0, description="ranking recipes: this many inverse-cloze queries (a sentence of a passage), seeded"
    )


class DistillGeneralConfig(RunConfig):
    """``alembert distill-general``: task-agnostic distillation on raw text."""

    teacher: str = "minilm-l6"
    recipe: str | dict[str, Any] = "tinybert-general"
    student: StudentConfig = StudentConfig()
    output_dir: Path = Path("runs/general")
    data: CorpusConfig = CorpusConfig()
    train: TrainConfig = TrainConfig(epochs=1.0, lr=1e-4, eval_every=200)
    pooling: Literal["mean", "cls", "max"] | None = Field(
        None, description="embedding recipes: pooling of a teacher that is not a sentence-transformers folder"
    )
    cache_teacher: bool = Field(True, description="embedding recipes: compute the teacher's embeddings once")
    eval_tasks: list[Literal["stsb-zeroshot", "squad-retrieval"]] = Field(
        default_factory=lambda: ["stsb-zeroshot", "squad-retrieval"],
        description="embedding recipes: zero-shot evaluations; "
        "the first is tracked at every eval step, all of them at the end",
    )


class MaskedTextConfig(TextConfig):
    """Raw text for masked-LM adaptation, and the held-out text it is judged on."""

    eval_text: list[str] = Field(
        default_factory=list,
        description="more held-out text, scored beside the corpus's held-out sequences: .txt files or folders "
        "never trained on, or squad (the paragraphs of the held-out SQuAD articles)",
    )
    pppl_sequences: int = Field(
        4, ge=0, description="held-out sequences per set scored by pseudo-perplexity at each evaluation (0: none)"
    )


class AdaptMLMConfig(RunConfig):
    """``alembert adapt-mlm``: a masked-LM head for an encoder that has none, then the whole model on raw text."""

    model: str = "mpnet-base"
    output_dir: Path = Path("runs/adapt-mlm")
    head_steps: int = Field(
        200, ge=0, description="steps training the masked-LM head alone (the encoder frozen) before the whole model"
    )
    head_lr: float = Field(5e-4, gt=0, description="learning rate of the head-only steps")
    data: MaskedTextConfig = MaskedTextConfig(max_length=128, heldout=128)
    train: TrainConfig = TrainConfig(epochs=1.0, lr=5e-5, eval_every=200)


class FrontierConfig(RunConfig):
    """``alembert frontier``: candidate students of a teacher planned, trained within a time budget,
    measured in one bench run, and the best for a latency or speed budget chosen."""

    teacher: str
    output_dir: Path = Path("runs/frontier")
    data: DataConfig = DataConfig()
    corpus: CorpusConfig = Field(
        CorpusConfig(), description="embedding tasks: the texts the students learn the teacher's embeddings on"
    )
    train: TrainConfig = TrainConfig()
    time_budget: float = Field(
        3 * 3600.0, gt=0, description="seconds of training, all candidates together, as the dry-run estimates them"
    )
    budget_ms: float | None = Field(None, gt=0, description="batch-1 latency (ms) the chosen model must meet")
    speedup: float | None = Field(
        None, gt=0, description="batch-32 throughput the chosen model must reach, as a multiple of the fp32 teacher's"
    )
    min_retention: float | None = Field(
        None, gt=0, le=100, description="percent of the teacher's dev metric the chosen model must keep"
    )
    candidates: list[str] | None = Field(None, description="train only these candidates (names from the plan)")
    quantize: Literal["auto", "int8", "none"] = Field(
        "auto",
        description="the teacher's and each student's export: auto (the fastest variant on this CPU that keeps the "
        "dev metric), int8 (ONNX Runtime dynamic int8), none (PyTorch models only)",
    )
    threads: int | None = Field(None, ge=1, description="CPU threads of the speed predictions and the bench")
    peers: bool = Field(True, description="also measure what a user would pick instead (the task kind's peers)")
