"""Extractive question answering: SQuAD v1.1 (``--task squad``), span-extraction models.

Data, windows, post-processing and the official EM/F1 live in :mod:`alembert.qa`; the runs are
``qa/run.py``'s. Windows are 384 tokens (stride a third) unless ``--max-length`` or the model
was trained on other windows (its preprocessing record).
"""

from __future__ import annotations

from alembert.tasks.base import Evaluation, TaskKind


class ExtractiveQA(TaskKind):
    name = "extractive-qa"
    description = "extractive QA"
    task_names = ("squad",)
    model_class = "AutoModelForQuestionAnswering"
    pipeline_tag = "question-answering"
    max_length = 384  # SQuAD windows, the standard (qa/run.py's MAX_LENGTH; kept literal: no import of torch here)

    def main_metric(self, task: str | None) -> str:
        from alembert.qa.run import MAIN_METRIC

        return MAIN_METRIC

    # ------------------------------------------------------------ data and models
    def load_split(self, data, split: str, **kw):
        """The questions of ``split`` (a datasets.Dataset; see :func:`alembert.qa.run.qa_examples`)."""
        from alembert.qa.run import qa_examples

        return qa_examples(data, split)[0]

    def featurise(self, examples, tokenizer, data, train: bool = False):
        """Overlapping windows of ``data``'s max length (384 unless set), stride a third of it."""
        from alembert.qa.features import tokenize_squad
        from alembert.qa.run import qa_max_length, qa_stride

        length = qa_max_length(data)
        return tokenize_squad(examples, tokenizer, length, qa_stride(length), train=train)

    def load_model(self, name, attn: str | None = None, need_head: bool = True, **kw):
        from alembert.qa.run import load_qa_model

        return load_qa_model(name, attn, need_head=need_head)

    def evaluate_model(self, model, tokenizer, data, batch_size: int) -> dict[str, float]:
        from alembert.qa.run import score

        dev = self.load_split(data, "dev")
        return score(model, tokenizer, dev, self.featurise(dev, tokenizer, data), batch_size)

    # ------------------------------------------------------------ the commands' entry points
    def finetune(self, cfg, callbacks=None) -> dict:
        from alembert.qa.run import run_qa_finetune

        return run_qa_finetune(self.resolve_max_length(cfg, cfg.model), callbacks)

    def distill(self, cfg, callbacks=None) -> dict:
        from alembert.qa.run import run_qa_distill

        return run_qa_distill(self.resolve_max_length(cfg, cfg.teacher), self, callbacks)

    def evaluate(self, cfg, args) -> Evaluation:
        """The default test articles unless --dev-file."""
        from alembert.qa.run import run_qa_evaluate

        cfg = self.resolve_max_length(cfg, cfg.model)  # the windows the model was trained on, else 384
        metrics, n, about = run_qa_evaluate(cfg)
        return Evaluation("squad", n, f"{cfg.model} on squad ({about})", metrics, cfg.data.max_length)

    def bench(self, task, data_dir, max_eval_samples, n_texts, eval_batch_size, data=None, reference=None):
        from alembert.qa.bench import squad_task

        return squad_task(data_dir, max_eval_samples, n_texts, eval_batch_size)
