"""A task kind that lives outside alembert: ``--task vocab-coverage`` scores how many words of a
plain-text file a model's tokenizer keeps whole (one token, not [UNK]). It exists to show that a
kind is one new file: importing this module registers it, and the commands reach it unchanged."""

from __future__ import annotations

import json
from pathlib import Path

from alembert.tasks import Evaluation, TaskKind


class VocabCoverage(TaskKind):
    name = "vocab-coverage"
    description = "toy: words kept whole by the tokenizer"
    task_names = ("vocab-coverage",)
    model_class = "AutoTokenizer"
    pipeline_tag = "feature-extraction"

    def main_metric(self, task):
        return "coverage"

    def load_split(self, data, split: str, **kw) -> list[str]:
        """The whitespace-separated words of the split's text file."""
        return Path(data.train_file if split == "train" else data.dev_file).read_text().split()

    def featurise(self, examples, tokenizer, data) -> list[list[str]]:
        return [tokenizer.tokenize(word) for word in examples]

    def evaluate_model(self, model, tokenizer, data, batch_size: int) -> dict[str, float]:
        pieces = self.featurise(self.load_split(data, "dev"), tokenizer, data)
        whole = sum(len(p) == 1 and p[0] != tokenizer.unk_token for p in pieces)
        return {"coverage": whole / len(pieces), "words": float(len(pieces))}

    def evaluate(self, cfg, args) -> Evaluation:
        from alembert.models.load import load_tokenizer

        metrics = self.evaluate_model(None, load_tokenizer(cfg.model), cfg.data, cfg.batch_size)
        title = f"{cfg.model} on vocab-coverage"
        return Evaluation("vocab-coverage", int(metrics["words"]), title, metrics, cfg.data.max_length)

    def finetune(self, cfg, callbacks=None) -> dict:
        """No weights to train: the summary of the dev coverage, written as metrics.json."""
        from alembert.models.load import load_tokenizer

        dev = self.evaluate_model(None, load_tokenizer(cfg.model), cfg.data, cfg.train.eval_batch_size)
        summary = {
            "model": cfg.model,
            "task": "vocab-coverage",
            "dev": dev,
            "best_step": 0,
            "train_seconds": 0.0,
            "train_examples": len(self.load_split(cfg.data, "train")),
        }
        Path(cfg.output_dir).mkdir(parents=True)
        (Path(cfg.output_dir) / "metrics.json").write_text(json.dumps(summary))
        return summary
