"""``alembert adapt-mlm``: make an encoder without a masked-LM head into a masked LM.

Two stages on the stage runner (:mod:`alembert.training.runner`), on raw text packed into
sequences of whole sentences (:func:`~alembert.data.corpus.pack_sentences`) with dynamic masking
(:class:`~alembert.data.masking.MLMCollator`, new masks every batch):

1. ``head``: the head the checkpoint lacks (tied to the input embeddings) learns alone for
   ``--head-steps`` steps at ``--head-lr``, the encoder frozen. Refitting a head only is what
   earlier attempts did, and it is not enough: a sentence-embedding model's last layer has been
   pulled towards its pooled output, so its token states no longer say which word is hidden.
2. ``encoder``: the whole model, at the usual fine-tuning rate, for ``--epochs`` / ``--max-steps``.

At every evaluation the model is scored on every held-out set: the corpus's first ``--heldout``
sequences (never trained on) and each ``--eval-text`` (``squad``: the paragraphs of the held-out
SQuAD articles; or text files never trained on), masked-token top-1/top-5 accuracy with fixed
masks and pseudo-perplexity on the first ``--pppl-sequences`` of each (:mod:`alembert.mlm.metrics`).
The best model by ``heldout_top1`` is saved; it loads with ``AutoModelForMaskedLM`` and
answers a ``fill-mask`` pipeline (examples in ``metrics.json``'s ``details.fill_mask``).
"""

from __future__ import annotations

import json
from math import nan
from pathlib import Path

import datasets

from alembert.config.schema import AdaptMLMConfig
from alembert.data.batching import batched_loader
from alembert.data.corpus import load_corpus, pack_sentences, packed_corpus
from alembert.data.masking import MLMCollator
from alembert.data.squad import squad_paragraphs
from alembert.errors import AlembertError
from alembert.files import save_model_atomic, write_text_atomic
from alembert.mlm.metrics import masked_accuracy, pseudo_perplexity
from alembert.mlm.model import load_masked_lm
from alembert.mlm.module import MaskedLMModule
from alembert.models.load import check_max_length, load_config, load_tokenizer, n_params
from alembert.training.loop import Callbacks, FitSpec, total_steps
from alembert.training.plan import PlannedStage
from alembert.training.runner import Run

COLUMNS = ["input_ids", "attention_mask", "token_type_ids"]
MAIN_METRIC = "heldout_top1"
#: sentences the saved model completes in ``details.fill_mask`` (``{mask}``: the tokenizer's mask token)
FILL_MASK = (
    "The capital of France is {mask}.",
    "She opened the door and walked into the {mask}.",
    "The river flows into the {mask} near the city.",
)


def eval_sets(cfg: AdaptMLMConfig, tokenizer, heldout) -> dict[str, datasets.Dataset]:
    """``{name: packed sequences}``: ``heldout`` (the corpus's) and the first ``--heldout``
    sequences of each ``--eval-text`` source."""
    sets = {"heldout": heldout}
    for source in cfg.data.eval_text:
        name = "squad" if source == "squad" else Path(source).stem
        if name in sets:
            raise AlembertError(f"--eval-text {source}: a second held-out set named {name}; rename the file")
        text = (
            datasets.Dataset.from_dict({"text": squad_paragraphs("test")}) if source == "squad" else load_corpus(source)
        )
        packed = pack_sentences(text, tokenizer, cfg.data.max_length)
        sets[name] = packed.select(range(min(cfg.data.heldout, len(packed))))
    return sets


def chunks(rows, size: int):
    """Lists of at most ``size`` consecutive rows (dicts) of a dataset."""
    for start in range(0, len(rows), size):
        yield [rows[j] for j in range(start, min(start + size, len(rows)))]


def text_files(path: Path) -> set[Path]:
    """A file, or the .txt files below a folder, resolved."""
    return {p.resolve() for p in path.rglob("*.txt")} if path.is_dir() else {path.resolve()}


def check_eval_text(cfg: AdaptMLMConfig) -> None:
    """Each --eval-text file exists and is not trained on (a held-out file in --corpus would not be held out)."""
    seen = set().union(*(text_files(Path(item).expanduser()) for item in cfg.data.corpus))
    for source in cfg.data.eval_text:
        if source == "squad":
            continue
        path = Path(source).expanduser()
        if not path.exists():
            raise AlembertError(f"--eval-text {source}: no such file or folder; pass .txt files or squad")
        files = text_files(path)
        if files & seen:
            raise AlembertError(
                f"--eval-text {source} is also in --corpus ({sorted(files & seen)[0].name}): held-out text must never "
                "be trained on; leave it out of --corpus"
            )


def fill_mask_examples(model, tokenizer, device) -> list[dict]:
    """The top 3 completions of each :data:`FILL_MASK` sentence by a ``fill-mask`` pipeline."""
    from transformers import pipeline

    fill = pipeline("fill-mask", model=model, tokenizer=tokenizer, device=device, top_k=3)
    out = []
    for template in FILL_MASK:
        text = template.format(mask=tokenizer.mask_token)
        out.append(
            {"text": text, "top3": [{"token": p["token_str"].strip(), "p": round(p["score"], 3)} for p in fill(text)]}
        )
    return out


def stage_evals(out: Path, stage: int) -> list[dict]:
    """The evaluations ``log.jsonl`` recorded for ``stage``, in order (a resumed run appends to the log)."""
    path = out / "log.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return [r["eval"] for r in records if "eval" in r and r.get("stage") == stage]


def write_card(out: Path, summary: dict) -> None:
    d = summary["details"]
    dev = summary["dev"]
    rows = "\n".join(
        f"| {name} | {dev.get(f'{name}_top1', nan):.4f} | {dev.get(f'{name}_top5', nan):.4f} | "
        f"{dev.get(f'{name}_pppl', nan):.2f} |"
        for name in d["eval_sets"]
    )
    examples = "\n".join(
        f"- `{e['text']}` → " + ", ".join(f"{p['token']} ({p['p']})" for p in e["top3"]) for e in d["fill_mask"]
    )
    write_text_atomic(
        out / "README.md",
        f"""---
library_name: transformers
pipeline_tag: fill-mask
---
# {summary["model"]}, adapted to masked-LM

`alembert adapt-mlm`: a masked-LM head tied to the input embeddings, trained alone for
{d["head_steps"]} steps, then the whole model for {d["encoder_steps"]} steps on
{summary["train_examples"]} sequences of {d["max_length"]} tokens ({", ".join(d["corpus"])}).

| held-out set | masked top-1 | masked top-5 | pseudo-perplexity |
|---|---:|---:|---:|
{rows}

Fill-mask:
{examples}
""",
    )


def run_adapt_mlm(cfg: AdaptMLMConfig, callbacks: Callbacks | None = None) -> dict:
    """Adapt ``cfg.model`` to masked-LM on ``cfg.data.corpus``; the ``metrics.json`` dict (or, with
    ``cfg.dry_run``, the plan)."""
    if not cfg.data.corpus and not cfg.data.transfer_tasks:
        raise AlembertError("adapt-mlm needs raw text: pass --corpus PATH (files or folders of .txt, or squad)")
    check_eval_text(cfg)
    run = Run("adapt-mlm", cfg, callbacks)
    check_max_length(load_config(cfg.model), cfg.data.max_length, cfg.model)
    tokenizer = load_tokenizer(cfg.model)
    if tokenizer.mask_token is None:
        raise AlembertError(f"model {cfg.model}: its tokenizer has no mask token; adapt-mlm needs a BERT-style one")
    model, new_head = load_masked_lm(cfg.model)
    accelerator = run.make_accelerator(cfg.train)  # frozen parameters are not DDP's: every trained one gets a gradient
    with run.cache_guard():  # the packed corpus is cached by one process
        heldout, train = packed_corpus(cfg.data, tokenizer)
        sets = eval_sets(cfg, tokenizer, heldout)
    cols = [c for c in COLUMNS if c in train.column_names]
    seed = cfg.train.seed
    loader, sampler = batched_loader(
        train, cols, MLMCollator(tokenizer, cfg.data.mlm_probability, seed=seed), cfg.train.batch_size, seed
    )
    fixed = MLMCollator(tokenizer, cfg.data.mlm_probability, seed=seed + 1)
    model.to(accelerator.device)

    def evaluate_with(module):
        def evaluate() -> dict[str, float]:
            m = accelerator.unwrap_model(module)
            m.eval()
            metrics: dict[str, float] = {}
            for name, data in sets.items():
                fixed.set_epoch(0)  # the same masks at every evaluation
                batches = (
                    {k: v.to(accelerator.device) for k, v in fixed(chunk).items()}
                    for chunk in chunks(data.with_format("torch", columns=cols), cfg.train.eval_batch_size)
                )
                with accelerator.autocast():
                    acc = masked_accuracy(m, batches)
                    metrics |= {f"{name}_top1": acc["top1"], f"{name}_top5": acc["top5"], f"{name}_loss": acc["loss"]}
                    if cfg.data.pppl_sequences:
                        first = data.select(range(min(cfg.data.pppl_sequences, len(data))))
                        seqs = list(first.with_format("torch")["input_ids"])
                        metrics[f"{name}_pppl"] = pseudo_perplexity(
                            m, seqs, tokenizer.mask_token_id, tokenizer.all_special_ids, cfg.train.eval_batch_size
                        )
            m.train()
            return metrics

        return evaluate

    head_steps = cfg.head_steps if new_head else 0  # a checkpoint with its head needs no head-only stage
    epoch_steps = total_steps(len(loader), cfg.train.model_copy(update={"max_steps": None}))
    head_steps = min(head_steps, epoch_steps)  # --epochs may cap it below --head-steps
    stages = []
    if head_steps:
        head = MaskedLMModule(model, frozen_encoder=True)
        head_train = cfg.train.model_copy(update={"max_steps": head_steps, "lr": cfg.head_lr, "eval_every": head_steps})
        spec = FitSpec(head_train, MAIN_METRIC, evaluate_with(head), stage=0, resume=run.stage_resume(0))
        stages.append(("head", head, spec))
    whole = MaskedLMModule(model)
    spec = FitSpec(cfg.train, MAIN_METRIC, evaluate_with(whole), stage=1, resume=run.stage_resume(1))
    spec.start_batch = head_steps * cfg.train.grad_accum  # the encoder stage continues the data where the head stopped
    stages.append(("encoder", whole, spec))
    what = (
        f"masked-LM adaptation of {cfg.model} ({'a new head tied to the embeddings, ' if new_head else ''}"
        f"{head_steps} head-only steps, then the whole model) on {', '.join(cfg.data.corpus)}"
    )
    if run.dry_run:
        return run.plan(
            what=what,
            examples={"train_examples": len(train), "dev_examples": sum(len(s) for s in sets.values())},
            stages=[PlannedStage(name, module, loader, sampler, spec) for name, module, spec in stages],
            evaluations={"student": stages[-1][2].evaluate},
        )
    out = run.open("adapt_mlm_config.yaml", cfg)
    for name, module, spec in stages:
        if spec.resume == "done":
            continue  # finished before the interruption; its weights live in the checkpoint
        on_best = (lambda metrics, step: save_model_atomic(model, tokenizer, out)) if name == "encoder" else None
        run.fit(module, loader, sampler, spec, on_best, name=name)
    best = type(model).from_pretrained(out).to(accelerator.device).eval()  # the saved model, as a user loads it
    summary = run.summary(
        kind="masked-lm",
        task="corpus",
        model=cfg.model,
        main_metric=MAIN_METRIC,
        train_examples=len(train),
        dev_examples=sum(len(s) for s in sets.values()),
        parameters=n_params(model),
        details={
            "corpus": cfg.data.corpus,
            "max_length": cfg.data.max_length,
            "new_head_weights": new_head,
            "head_steps": head_steps,
            "encoder_steps": run.stages[-1]["steps"] if run.stages else 0,
            "head_only_dev": (stage_evals(out, 0) or [{}])[-1],  # from the log: there after a resume too
            "eval_sets": {name: len(s) for name, s in sets.items()},
            "fill_mask": fill_mask_examples(best, tokenizer, accelerator.device),
        },
    )
    return run.finish(summary, card=write_card if run.is_main else None)
