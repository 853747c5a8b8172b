"""Sequence classification and regression: the GLUE tasks and your own CSV/TSV/JSONL files.

Data: :mod:`alembert.data` (readers, :class:`~alembert.data.glue.TaskSpec`, the tokenisation
cache); models: any runtime's classifier (:mod:`alembert.runtimes`: PyTorch, an ONNX export, ...);
evaluation and the runs: :mod:`alembert.classification`.
"""

from __future__ import annotations

from alembert.data.glue import MAX_LENGTH
from alembert.tasks.base import Evaluation, TaskKind, normalise

SMALL = "minilm-l6"  # the packaged small model a user would fine-tune instead of distilling


class Classification(TaskKind):
    name = "classification"
    description = "classification or regression"
    model_class = "AutoModelForSequenceClassification"
    pipeline_tag = "text-classification"
    max_length = MAX_LENGTH  # 128; a model trained at another length keeps its own (default_max_length)

    @property
    def task_names(self) -> tuple[str, ...]:
        from alembert.data.glue import task_names

        return (*task_names(), "custom")

    def handles(self, task: str | None) -> bool:
        """No task (your own files, else sst2), ``custom``, or any spelling of a GLUE task ("SST-2")."""
        from alembert.data.glue import get_task
        from alembert.errors import AlembertError

        if task is None or normalise(task) == "custom":
            return True
        try:
            get_task(task)
        except AlembertError:
            return False
        return True

    def main_metric(self, task: str | None) -> str:
        """A GLUE task's first official metric; your own data: accuracy (a regression file's
        resolved :class:`~alembert.data.glue.TaskSpec` says pearson)."""
        from alembert.data.glue import get_task

        return "accuracy" if task is None or normalise(task) == "custom" else get_task(task).main_metric

    # ------------------------------------------------------------ data and models
    def spec(self, data, model=None):
        """The :class:`~alembert.data.glue.TaskSpec` of ``data``; your own files take ``model``'s saved labels."""
        from alembert.data.load import resolve_task
        from alembert.models.load import load_config

        return resolve_task(data, (lambda: load_config(model)) if model is not None else None, f"model {model}")

    def load_split(self, data, split: str, task=None, **kw):
        from alembert.data.load import load_split

        return load_split(data, task or self.spec(data), split)

    def featurise(self, examples, tokenizer, data):
        from alembert.data.tokenize import tokenize_dataset

        return tokenize_dataset(examples, tokenizer, data.max_length)

    def load_model(self, name, task=None, threads: int | None = None, **kw):
        """A classifier from whichever runtime runs ``name`` (a PyTorch folder, an ONNX export, ...;
        ``task`` checks the label count; None: its own labels)."""
        from alembert.runtimes import load_any

        return load_any(name, task, threads)

    def evaluate_model(self, model, tokenizer, data, batch_size: int, task=None) -> dict[str, float]:
        from alembert.classification.evaluate import evaluate_model

        task = task or self.spec(data)
        dev = self.featurise(self.load_split(data, "dev", task), tokenizer, data)
        return evaluate_model(model, tokenizer, task, dev, batch_size)

    # ------------------------------------------------------------ the commands' entry points
    def finetune(self, cfg, callbacks=None) -> dict:
        from alembert.classification.finetune import run_finetune

        return run_finetune(self.resolve_max_length(cfg, cfg.model), callbacks)

    def distill(self, cfg, callbacks=None) -> dict:
        from alembert.classification.distill import run_distill

        return run_distill(self.resolve_max_length(cfg, cfg.teacher), self, callbacks)

    fallback_recipe = "kd"  # logits only: any student, one layer included (pkd-skip has no pairs for it)

    def distill_student(self, fc, student: dict, train: dict, output_dir, recipe: str | None = None, **run) -> dict:
        """The command's default recipe (``pkd-skip``; the README says why), or ``recipe``, on ``fc.data``, its
        transfer text included."""
        from alembert.config.schema import DistillConfig

        cfg = DistillConfig(
            teacher=fc.teacher,
            **({"recipe": recipe} if recipe else {}),
            student=student,
            data=fc.data,
            train=fc.train.model_copy(update=train),
            output_dir=output_dir,
            **run,
        )
        return self.distill(cfg)

    def peers(self, fc) -> list:
        """all-MiniLM-L6-v2 as it ships, fine-tuned on the same data with the same settings: what a user does
        instead of distilling (the packaged small model; the README's comparisons)."""
        from alembert.config.schema import FinetuneConfig
        from alembert.tasks.base import Peer

        def cfg(folder, **run):
            return FinetuneConfig(model=SMALL, data=fc.data, train=fc.train, output_dir=folder, **run)

        def make(folder, resume):
            return self.finetune(cfg(folder, resume=resume, overwrite=folder.exists() and not resume))

        def estimate(folder):
            return float(self.finetune(cfg(folder, dry_run=True))["estimated_seconds"])

        why = "all-MiniLM-L6-v2 fine-tuned on the same data: the small model without distillation"
        return [Peer(f"{SMALL}-finetuned", why, make=make, estimate=estimate)]

    def teacher_labeller(self, cfg, teacher, rows, tokenizer, layers, dry_run: bool = False, autocast=None):
        """Who computes a cached stage's teacher logits over ``rows``: the teacher's fastest export that
        keeps its dev metric, or PyTorch (:mod:`alembert.export.teacher_labels`)."""
        from alembert.export.auto import DATA_FIELDS
        from alembert.export.teacher_labels import choose_labeller

        data = {k: v for k, v in cfg.data.model_dump(mode="json").items() if k in DATA_FIELDS and v is not None}
        return choose_labeller(
            teacher,
            cfg.teacher,
            data,
            rows,
            tokenizer,
            layers,
            dry_run=dry_run,
            enabled=cfg.fast_teacher,
            autocast=autocast,
        )

    def evaluate(self, cfg, args) -> Evaluation:
        """The dev set of a GLUE task or your own file, at the length the model was trained with unless --max-length."""
        from alembert.classification.evaluate import evaluate_model
        from alembert.models.load import check_max_length, load_config, load_tokenizer

        task = self.spec(cfg.data, cfg.model)  # your own data: the model's labels
        cfg = self.resolve_max_length(cfg, cfg.model)  # the length the model was trained with
        check_max_length(load_config(cfg.model), cfg.data.max_length, cfg.model)
        tokenizer = load_tokenizer(cfg.model)
        dev = self.featurise(self.load_split(cfg.data, "dev", task), tokenizer, cfg.data)
        model = self.load_model(cfg.model, task)  # any runtime's: a PyTorch folder, an ONNX export, ...
        metrics = evaluate_model(model, tokenizer, task, dev, cfg.batch_size)
        title = f"{cfg.model} on {task.name} dev ({len(dev)} examples)"
        return Evaluation(task.name, len(dev), title, metrics, cfg.data.max_length)

    def bench(self, task, data_dir, max_eval_samples, n_texts, eval_batch_size, data=None, reference=None):
        from alembert.classification.bench import glue_task

        data = dict(data or {})
        if data.get("max_length") is None:  # scored at the length the reference was trained with
            data["max_length"] = self.default_max_length(reference) if reference else self.max_length
        return glue_task(task, data_dir, max_eval_samples, n_texts, eval_batch_size, data, reference)
