"""A static student: no transformer at all, one vector and one weight per vocabulary token
(:class:`~alembert.models.static.StaticEmbeddingModel`), started from the teacher as model2vec
starts one and then trained on the teacher's sentence embeddings of the run's texts.

The start (model2vec's idea, computed here with alembert's teacher and scikit-learn):

- every vocabulary token, alone between the tokenizer's own [CLS]/[SEP] (``<s>``/``</s>``), goes
  through the teacher as a sentence (its pooling, Dense and normalisation: the space the
  training targets live in), in batches: 30,527 three-token sentences for MPNet;
- PCA to ``student.dim`` (``--student static:dim=256``) over the non-special tokens' vectors:
  the directions in which the teacher tells tokens apart, and the space the student lives in;
- SIF weights ``a / (a + p(token))`` (Arora et al. 2017, ``a = 1e-4`` as model2vec), ``p`` the
  token's frequency in the run's own texts (why this builder needs data: the tokens the student
  will see, not a guess); a token never seen gets a Zipf estimate by rank, ranked after every
  seen token (model2vec's fallback for a vocabulary in frequency order). The weights stay
  trainable beside the vectors.

Why the student is compared with the teacher in its own space (tokenlearn's way) rather than
through a Dense layer to the teacher's width: the terms that compare vectors (``embed_mse``,
``embed_cosine``) read the teacher's embeddings mapped by the same PCA (centred, projected,
re-normalised: :meth:`~alembert.models.static.StaticEmbeddingModel.teacher_space`, applied once
to the cached embeddings). What is trained is then exactly what is saved, at ``dim`` wide. A Dense
``dim -> width`` (started as the PCA's inverse) must either be baked into the vectors, which
saves a table as wide as the teacher's (3x the bytes and the encode time at 256 of 768), or be
dropped, leaving a table trained only through a map it no longer has. Measured (STS-B dev Spearman;
all-MiniLM-L6-v2 teacher, width 384, which scores 0.867; 6,000 SST-2/MRPC sentences; embed-mse, 400
steps of 32, Adam at lr 3e-3, the best for both of 3e-4, 1e-3, 3e-3 and 1e-2 at dim 64 and of 1e-3
and 3e-3 at dim 128; one run each, seed 0, so differences under ~0.005 are noise):

    dim   start   projected targets   Dense, dropped   Dense, baked (384 wide)
    64    0.769   0.789               0.787            0.797
    128   0.785   0.805               0.802            0.808
    384   0.796   0.812               0.807            0.814

At the width saved, the projected targets keep as much or more, and the Dense's gain when baked
is the teacher's width bought back (a 384-wide projected student scores 0.812). The table wants a
far higher learning rate than a transformer (1e-2 overshoots, 3e-4 is slow): ``--lr 3e-3``. Terms
that compare similarities only (``embed_sim``, ``embed_rkd``) read the teacher's own embeddings:
they need no common space.
"""

from __future__ import annotations

import numpy as np
import torch

from alembert.errors import AlembertError
from alembert.students.base import Builder, BuiltStudent, Offer, Request

SIF_A = 1e-4  # model2vec's SIF coefficient
TOKEN_BATCH = 512  # vocabulary tokens per teacher forward (three tokens each)
STATIC_DIM = 256  # the width a frontier tries: model2vec's default
STATIC_LR = 3e-3  # a table of vectors moves little at a transformer's rate (issue 35's runs)


def special_ids(tokenizer, vocab: int) -> list[int]:
    """The ids that never count: the tokenizer's special tokens (within the vocabulary)."""
    return sorted(i for i in set(tokenizer.all_special_ids) if 0 <= i < vocab)


def special_frame(tokenizer) -> tuple[list[int], list[int]]:
    """The special ids the tokenizer puts before and after a text ([CLS] / [SEP], <s> / </s>, ...)."""
    bare = tokenizer("hello", add_special_tokens=False)["input_ids"]
    framed = tokenizer("hello")["input_ids"]
    for start in range(len(framed) - len(bare) + 1):
        if framed[start : start + len(bare)] == bare:
            return framed[:start], framed[start + len(bare) :]
    return [], []


@torch.inference_mode()
def token_vectors(embedder, tokenizer, batch_size: int = TOKEN_BATCH) -> np.ndarray:
    """(vocab, width) float32: each token id, framed by the tokenizer's special tokens as a one-token
    sentence, through ``embedder`` (a sentence encoder returning ``.embeddings``); the special
    tokens' rows are zero (they never count)."""
    vocab = len(tokenizer)
    specials = set(special_ids(tokenizer, vocab))
    ids = [i for i in range(vocab) if i not in specials]
    width = embedder.dim
    out = np.zeros((vocab, width), np.float32)
    device = next(embedder.parameters()).device
    embedder.eval()
    prefix, suffix = special_frame(tokenizer)
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        rows = torch.tensor([[*prefix, i, *suffix] for i in chunk], device=device)
        emb = embedder(input_ids=rows, attention_mask=torch.ones_like(rows)).embeddings
        out[chunk] = emb.float().cpu().numpy()
    return out


def pca_vectors(vectors: np.ndarray, keep: np.ndarray, dim: int, seed: int = 0):
    """(projected (vocab, dim), mean (width,), components (dim, width), variance kept): a PCA fitted
    on the rows ``keep`` marks (the non-special tokens) and applied to them; other rows stay zero."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=dim, svd_solver="full", random_state=seed).fit(vectors[keep])
    projected = np.zeros((len(vectors), dim), np.float32)
    projected[keep] = pca.transform(vectors[keep])
    kept = float(pca.explained_variance_ratio_.sum())
    return projected, pca.mean_.astype(np.float32), pca.components_.astype(np.float32), kept


def token_counts(batches, vocab: int) -> np.ndarray:
    """(vocab,) int64: how often each token id occurs in the real (unpadded) tokens of ``batches``."""
    counts = torch.zeros(vocab, dtype=torch.long)
    for batch in batches:
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        ids = ids[mask.bool()] if mask is not None else ids.flatten()
        counts += torch.bincount(ids.cpu().flatten(), minlength=vocab)[:vocab]
    return counts.numpy()


def sif_weights(counts: np.ndarray, specials: list[int], a: float = SIF_A) -> np.ndarray:
    """(vocab,) float32 ``a / (a + p)``: ``p`` a token's share of the counted (non-special) tokens; a
    token never seen gets the Zipf probability of its rank (``1 / (rank + 2)``, normalised over the
    vocabulary, as model2vec's ``compute_weights``), ranking every seen token first (most frequent
    first), then the unseen in vocabulary order. Special tokens get weight 0."""
    counts = np.asarray(counts, dtype=np.float64).copy()
    counts[specials] = 0
    regular = np.ones(len(counts), bool)
    regular[specials] = False
    total = counts.sum()
    seen = regular & (counts > 0)
    order = np.concatenate(
        [np.flatnonzero(seen)[np.argsort(-counts[seen], kind="stable")], np.flatnonzero(regular & ~seen)]
    )
    zipf = 1.0 / (np.arange(len(order)) + 2)
    zipf /= zipf.sum()
    p = np.zeros(len(counts))
    p[order] = zipf
    if total > 0:
        p[seen] = counts[seen] / total
    w = a / (a + p)
    w[specials] = 0.0
    return w.astype(np.float32)


class Static(Builder):
    name = "static"
    needs_data = True

    @classmethod
    def selects(cls, spec) -> bool:
        return spec.dim is not None

    def check(self, request: Request) -> None:
        spec, embedder, tok = request.spec, request.embedder, request.tokenizer
        if embedder is None:
            raise AlembertError(
                "student builder 'static' makes a sentence encoder: use it with distill-general and an embedding "
                "recipe (embed-mse, embed-cosine, embed-sim, embed-rkd)"
            )
        if spec.path:
            raise AlembertError(
                f"student builder 'static' starts from the teacher, not from --student {spec.path}; drop one of them"
            )
        if tok is None or not getattr(tok, "is_fast", False):
            raise AlembertError(
                f"teacher {request.teacher_name}: a static student needs the teacher's fast tokenizer "
                "(tokenizer.json: model2vec and sentence-transformers read it); save it beside the weights"
            )
        rows = getattr(request.teacher.config, "vocab_size", None)
        if rows is not None and len(tok) > rows:
            raise AlembertError(
                f"teacher {request.teacher_name}: its tokenizer has {len(tok):,} tokens and its embedding table "
                f"{rows:,} rows; save the teacher's own tokenizer beside its weights"
            )
        width = embedder.dim
        if spec.dim is not None and spec.dim > width:
            raise AlembertError(
                f"student dim {spec.dim} is wider than the teacher's embeddings ({width}): a PCA keeps at most "
                f"{width} dimensions; use --student static:dim=N with N <= {width}"
            )

    def build(self, request: Request) -> BuiltStudent:
        from alembert.models.static import StaticEmbeddingModel

        embedder, tok = request.embedder, request.tokenizer
        vocab, width = len(tok), embedder.dim
        specials = special_ids(tok, vocab)
        counts = token_counts(request.data.batches, vocab)
        n_tokens = int(counts.sum() - counts[specials].sum())
        if n_tokens == 0:
            raise AlembertError("the training texts hold no tokens: a static student's token weights need some text")
        dim = request.spec.dim or width
        keep = np.ones(vocab, bool)
        keep[specials] = False
        if dim > int(keep.sum()):
            raise AlembertError(f"student dim {dim} exceeds the {int(keep.sum())} non-special tokens of the vocabulary")
        vectors = token_vectors(embedder, tok)
        projected, mean, components, kept = pca_vectors(vectors, keep, dim, request.seed)
        weights = sif_weights(counts, specials)
        model = StaticEmbeddingModel(
            torch.from_numpy(projected),
            torch.from_numpy(weights),
            specials,
            normalize=embedder.normalize,
            max_seq_length=embedder.max_seq_length,
        )
        model.teacher_map = (torch.from_numpy(mean), torch.from_numpy(components))
        seen = int(((counts > 0) & keep).sum())
        return BuiltStudent(
            model,
            f"static: {vocab:,} token vectors of dim {dim} (PCA of {request.teacher_name}'s output for each token, "
            f"{kept:.1%} of its variance) and SIF weights from {n_tokens:,} tokens of the training texts "
            f"({seen:,} of {int(keep.sum()):,} token types seen, the rest by Zipf rank)",
            "teacher",
        )

    @classmethod
    def random_model(cls, config, shape: dict):
        """A random token table ``shape["static_dim"]`` wide over the teacher's vocabulary."""
        from alembert.models.static import StaticEmbeddingModel

        return StaticEmbeddingModel(torch.randn(config.vocab_size, shape["static_dim"])).eval()

    @classmethod
    def offers(cls, config, sentence: bool) -> list[Offer]:
        """For sentence embeddings only: a table of dim 256 (model2vec's default width, or the teacher's when
        narrower), trained at the learning rate a table of vectors needs (issue 35: 3e-3)."""
        if not sentence:
            return []
        dim = min(STATIC_DIM, config.hidden_size)
        return [
            Offer(
                f"static-{dim}",
                {"dim": dim, "builder": "static"},
                {"static_dim": dim},
                {"lr": STATIC_LR},
                quantize=None,
            )
        ]
