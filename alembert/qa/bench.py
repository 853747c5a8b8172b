"""``alembert bench --task squad``: question-answering models (PyTorch) scored with the official
EM/F1 on the held-out articles, timed on real question-paragraph pairs at a fixed length."""

from __future__ import annotations

from pathlib import Path

from alembert.errors import AlembertError
from alembert.measure.bench_task import BenchTask, cycle


def squad_task(data_dir, max_eval_samples: int | None, n_texts: int, eval_batch_size: int) -> BenchTask:
    from alembert.config.schema import DataConfig
    from alembert.models.load import load_tokenizer
    from alembert.qa.run import MAIN_METRIC, MAX_LENGTH, evaluate_qa, load_qa_model, qa_examples
    from alembert.runtimes import PYTORCH_FORMAT, runtime_for
    from alembert.runtimes.pytorch import TorchModel

    dev, _ = qa_examples(DataConfig(task="squad", data_dir=data_dir, max_eval_samples=max_eval_samples), "dev")

    def load(path: Path, threads: int):
        runtime = runtime_for(path)
        if runtime.format != PYTORCH_FORMAT:
            raise AlembertError(
                f"model {path} is an {runtime.title or runtime.format} export; "
                "exports cover classifiers and sentence embeddings, so bench the question-answering PyTorch folder"
            )
        return TorchModel(load_qa_model(path, need_head=True), "start_logits"), load_tokenizer(path)

    def score(model, tokenizer, max_length: int):  # windows of the timed length (384 unless a model allows less)
        return evaluate_qa(model, tokenizer, dev, max_length, None, eval_batch_size)

    return BenchTask(
        "squad",
        MAIN_METRIC,
        len(dev),
        cycle(dev["question"], n_texts),
        cycle(dev["context"], n_texts),
        MAX_LENGTH,
        load,
        score,
    )
