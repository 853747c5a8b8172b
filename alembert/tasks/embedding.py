"""Zero-shot sentence-embedding evaluations: STS-B cosine similarity (``stsb-zeroshot``) and
SQuAD question -> paragraph retrieval (``squad-retrieval``).

The models are sentence-transformers folders (or an encoder pooled with ``--pooling``, or an
ONNX export); they are trained by ``alembert distill-general`` with an embedding recipe
(:mod:`alembert.embedding.run`), so ``finetune`` and ``distill`` refuse these tasks.
"""

from __future__ import annotations

from alembert.tasks.base import Evaluation, TaskKind, normalise


class Embedding(TaskKind):
    name = "embedding"
    description = "zero-shot sentence embeddings"
    model_class = "SentenceTransformer"
    pipeline_tag = "sentence-similarity"  # embedding/card.py's PIPELINE_TAG (kept literal: no import of torch here)
    evaluate_flags = ("pooling", "documents_by")
    max_length = 256  # sentence-transformers' own default for a folder that declares no max_seq_length

    @property
    def task_names(self) -> tuple[str, ...]:
        from alembert.embedding.evaluate import EMBEDDING_TASKS

        return EMBEDDING_TASKS

    def main_metric(self, task: str | None) -> str:
        from alembert.embedding.evaluate import MAIN_METRIC

        return MAIN_METRIC[normalise(task)]

    def unsupported_hint(self, command: str) -> str:
        return "train a sentence-embedding student with alembert distill-general --recipe <an embedding recipe>"

    def default_max_length(self, model) -> int:
        """The ``max_seq_length`` the model declares (a sentence-transformers folder or its export),
        else 256: the length its embeddings were made for, as sentence-transformers encodes."""
        from alembert.models.sentence import declared_max_seq_length

        return declared_max_seq_length(model) or self.max_length

    # ------------------------------------------------------------ data and models
    def load_split(self, data, split: str = "dev", **kw):
        """The texts scored (dev only): (first sentences, second sentences, gold scores) of STS-B,
        or (questions, paragraphs, gold paragraph index) of SQuAD retrieval."""
        from alembert.embedding.evaluate import squad_corpus, stsb_pairs
        from alembert.errors import AlembertError

        if split != "dev":
            raise AlembertError(f"--task {data.task} is a zero-shot evaluation: it has a dev set only, no {split} set")
        if normalise(data.task) == "stsb-zeroshot":
            return stsb_pairs(data.data_dir, data.max_eval_samples)
        return squad_corpus()

    def featurise(self, examples, tokenizer, data):
        """The distinct texts to encode; the encoder tokenises them batch by batch (dynamic padding)."""
        a, b, _ = examples
        return list(dict.fromkeys([*a, *b]))

    def load_model(self, name, pooling: str | None = None, threads: int | None = None, **kw):
        """A sentence-embedding model from whichever runtime runs ``name``: a PyTorch folder (or an encoder
        pooled with ``pooling``), an ONNX export, ..."""
        from alembert.runtimes import load_any_embedding

        return load_any_embedding(name, pooling, threads=threads)

    def evaluate_model(self, model, tokenizer, data, batch_size: int) -> dict[str, float]:
        from alembert.embedding.evaluate import evaluate_embedding

        return evaluate_embedding(model, tokenizer, normalise(data.task), data.max_length, batch_size)

    # ------------------------------------------------------------ the commands' entry points
    def evaluate(self, cfg, args) -> Evaluation:
        """At the model's own max sequence length (else 256) unless --max-length."""
        from alembert.embedding.evaluate import evaluate_embedding
        from alembert.errors import AlembertError

        task = normalise(cfg.data.task)
        documents_by = getattr(args, "documents_by", None)
        if documents_by and task != "squad-retrieval":
            raise AlembertError(f"--documents-by is for --task squad-retrieval (asymmetric search), not {task}")
        model, tokenizer = self.load_model(cfg.model, getattr(args, "pooling", None))  # any runtime's
        max_length = self.resolve_max_length(cfg, cfg.model).data.max_length
        kw, title = {}, f"{cfg.model} on {task} (zero-shot, max length {max_length})"
        if documents_by:  # the documents model's own pooling: it is a sentence-transformers folder or an export
            kw["documents"] = self.load_model(documents_by)
            title = f"{cfg.model} (queries) against {documents_by} (documents) on {task}, max length {max_length}"
        metrics = evaluate_embedding(model, tokenizer, task, max_length, cfg.batch_size, **kw)
        return Evaluation(task, None, title, metrics, max_length)

    def bench(self, task, data_dir, max_eval_samples, n_texts, eval_batch_size, data=None, reference=None):
        from alembert.embedding.bench import embedding_task

        documents_by = (data or {}).get("documents_by")
        return embedding_task(normalise(task), data_dir, max_eval_samples, eval_batch_size, documents_by)
