"""Zero-shot sentence-embedding evaluations: STS-B cosine similarity (``stsb-zeroshot``) and
SQuAD question -> paragraph retrieval (``squad-retrieval``).

The models are sentence-transformers folders (or an encoder pooled with ``--pooling``, or an
ONNX export); they are trained by ``alembert distill-general`` with an embedding recipe
(:mod:`alembert.embedding.run`), so ``finetune`` and ``distill`` refuse these tasks.
"""

from __future__ import annotations

from alembert.tasks.base import Evaluation, TaskKind, normalise

SMALL = "minilm-l6"  # all-MiniLM-L6-v2: the packaged small sentence encoder a user takes as it ships
PEER_DIM = 256  # model2vec's default width


class Embedding(TaskKind):
    name = "embedding"
    description = "zero-shot sentence embeddings"
    model_class = "SentenceTransformer"
    pipeline_tag = "sentence-similarity"  # embedding/card.py's PIPELINE_TAG (kept literal: no import of torch here)
    evaluate_flags = ("pooling", "documents_by")
    max_length = 256  # sentence-transformers' own default for a folder that declares no max_seq_length
    sentence_encoder = True
    recipe = "embed-mse"  # the frontier's: MSE to the teacher's embeddings, every student kind's best (docs/results.md)
    student_train = {"lr": 5e-4, "batch_size": 64}  # the embedding runs' settings (docs/results.md, issue 16)

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

    def distill_student(self, fc, student: dict, train: dict, output_dir, recipe: str | None = None, **run) -> dict:
        """:data:`recipe` on ``fc.corpus``'s texts (at ``--max-length`` when the corpus sets no length of its own),
        scored on ``fc.data.task`` first, then the other zero-shot task."""
        from alembert.config.schema import DistillGeneralConfig
        from alembert.distill.recipe import load_recipe
        from alembert.embedding.run import run_embedding_distill

        first = normalise(fc.data.task)
        cfg = DistillGeneralConfig(
            teacher=fc.teacher,
            recipe=recipe or self.recipe,
            student=student,
            data=fc.corpus if fc.corpus.max_length else fc.corpus.model_copy(update={"max_length": fc.data.max_length}),
            train=fc.train.model_copy(update=train),
            eval_tasks=[first, *(t for t in self.task_names if t != first)],
            output_dir=output_dir,
            **run,
        )
        return run_embedding_distill(self.resolve_max_length(cfg, cfg.teacher), load_recipe(cfg.recipe))

    def peers(self, fc) -> list:
        """model2vec's distillation of the same teacher (its defaults, 256 dimensions; when model2vec is
        installed) and all-MiniLM-L6-v2 as it ships (unless it is the teacher)."""
        import importlib.util

        from alembert.models.resolve import resolve_model
        from alembert.tasks.base import Peer

        found = []
        if importlib.util.find_spec("model2vec") is not None:

            def make(folder, resume):
                from model2vec.distill import distill

                from alembert.files import save_folder_atomic

                model = distill(str(resolve_model(fc.teacher)), pca_dims=PEER_DIM, device="cpu")
                folder.mkdir(parents=True, exist_ok=True)
                save_folder_atomic(folder, lambda tmp: model.save_pretrained(str(tmp)))

            found.append(Peer(f"model2vec-{PEER_DIM}", "model2vec.distill of the teacher (its defaults)", make=make))
        if resolve_model(SMALL) != resolve_model(fc.teacher):
            found.append(Peer(SMALL, "all-MiniLM-L6-v2 as it ships", path=SMALL))
        return found

    def export_data(self, data) -> dict:
        """An embedding export is scored on STS-B dev whatever the task: only where GLUE lives, and the texts
        to calibrate on."""
        return {k: v for k, v in data.model_dump().items() if k in ("data_dir", "train_file", "text_column") and v}

    def bench(self, task, data_dir, max_eval_samples, n_texts, eval_batch_size, data=None, reference=None):
        from alembert.embedding.bench import embedding_task

        documents_by = (data or {}).get("documents_by")
        return embedding_task(normalise(task), data_dir, max_eval_samples, eval_batch_size, documents_by)
