"""A sentence encoder with no transformer at all: one vector and one weight per vocabulary token,
a weighted mean of the sentence's tokens, L2-normalised (model2vec's and sentence-transformers'
``StaticEmbedding`` model, trainable here).

Why a weight per token beside its vector: the teacher's sentence embedding leans on content words,
and a plain mean of token vectors drowns them in "the", "of" and punctuation. model2vec divides the
weights out by Zipf's law or corpus frequencies (SIF: ``a / (a + p(token))``, Arora et al. 2017);
here they start there and are trained with the vectors against the teacher's embeddings.

The forward pass is an :class:`torch.nn.EmbeddingBag` (a sum of looked-up rows with per-token
weights, no (batch, length, dim) tensor) divided by the weights' sum: with ``w_i`` the weight of
token ``i`` of a sentence and ``e_i`` its vector, ``embedding = normalize(sum w_i e_i / sum w_i)``.
Special tokens ([CLS], [SEP], [PAD], [UNK], ...) never count: model2vec tokenises without them.

Saved, the weights are baked into the vectors (``w_i e_i``), which is exactly what model2vec's
``StaticModel`` and sentence-transformers' ``StaticEmbedding`` compute (a plain mean, then
normalisation: the scale ``1 / sum w_i`` does not survive the normalisation). One folder holds
both: model2vec's files at its root (``config.json``, ``model.safetensors`` with ``embeddings``,
``tokenizer.json``) and a sentence-transformers
pipeline model2vec writes beside them (``modules.json``: ``StaticEmbedding`` reading those files, then
``Normalize``).

Example::

    model = StaticEmbeddingModel(vectors, weights, special_ids=[0, 100, 101, 102, 103])
    out = model(input_ids, attention_mask).embeddings   # (batch, dim), unit length
    model.save("runs/static", tokenizer)                 # model2vec + sentence-transformers folder
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from alembert.errors import AlembertError

#: the PCA (mean, components) that made a static student's vectors from its teacher's, saved beside model2vec's
#: files: with it, the teacher's embeddings map into the student's space (asymmetric search, issue 29)
TEACHER_MAP = "alembert_teacher_map.safetensors"


class StaticOutput:
    """What a static model returns: the sentence embeddings (there are no token states)."""

    def __init__(self, embeddings: torch.Tensor):
        self.embeddings = embeddings
        self.hidden_states = None
        self.attentions = None
        self.logits = None


class StaticConfig:
    """The few ``config`` fields alembert's code reads of a model (widths, depth, attention), for a
    model with no transformer: ``hidden_size`` is the vectors' width, there are no layers."""

    model_type = "static"
    num_hidden_layers = 0
    _attn_implementation = "none"

    def __init__(self, hidden_size: int, vocab_size: int):
        self.hidden_size, self.vocab_size = hidden_size, vocab_size
        self.name_or_path = ""


class StaticEmbeddingModel(torch.nn.Module):
    """Token vectors (vocab, dim) and token weights (vocab,) -> weighted mean -> L2 normalisation.

    ``teacher_map`` (optional): the (mean, components) of the PCA that made the vectors from a
    teacher's token outputs; :meth:`teacher_space` maps that teacher's embeddings into the
    vectors' space with it, so a narrower student compares with its teacher in its own space."""

    sentence_encoder = True  # its output is the sentence embedding: no pooling or Dense to wrap it in

    def __init__(
        self,
        vectors: torch.Tensor,
        weights: torch.Tensor | None = None,
        special_ids: list[int] | tuple[int, ...] = (),
        normalize: bool = True,
        max_seq_length: int | None = None,
    ):
        super().__init__()
        vectors = torch.as_tensor(vectors, dtype=torch.float32)
        vocab = vectors.shape[0]
        self.bag = torch.nn.EmbeddingBag.from_pretrained(vectors.clone(), freeze=False, mode="sum")
        w = torch.ones(vocab) if weights is None else torch.as_tensor(weights, dtype=torch.float32).clone()
        if w.shape != (vocab,):
            raise AlembertError(f"static model: {tuple(w.shape)} token weights for {vocab} token vectors")
        self.token_weights = torch.nn.Parameter(w)
        keep = torch.ones(vocab)
        keep[[i for i in special_ids if 0 <= i < vocab]] = 0.0
        self.register_buffer("keep", keep)  # 0 for the special tokens: they never count
        self.normalize = normalize
        self.max_seq_length = max_seq_length
        self.pooling = "mean"
        self.dense = torch.nn.ModuleList()  # none: the vectors are the output space
        self.fresh_dense = False
        self.teacher_map: tuple[torch.Tensor, torch.Tensor] | None = None  # (mean (width,), components (dim, width))
        self.config = StaticConfig(vectors.shape[1], vocab)

    @property
    def dim(self) -> int:
        return self.bag.embedding_dim

    @property
    def vocab_size(self) -> int:
        return self.bag.num_embeddings

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **_) -> StaticOutput:
        w = self.token_weights[input_ids] * self.keep[input_ids]
        if attention_mask is not None:
            w = w * attention_mask.to(w.dtype)
        summed = self.bag(input_ids, per_sample_weights=w)  # (batch, dim): sum of w_i e_i
        emb = summed / w.sum(dim=1, keepdim=True).clamp(min=1e-9)
        if self.normalize:
            emb = F.normalize(emb, p=2, dim=-1)
        return StaticOutput(emb)

    def teacher_space(self, embeddings):
        """(N, width) teacher embeddings -> (N, dim): centred and projected by :attr:`teacher_map`, then
        L2-normalised when the model normalises (the teacher's are, when its vectors came from them).
        Numpy in, numpy out (a cache of embeddings) or torch in, torch out."""
        if self.teacher_map is None:
            raise AlembertError("static model: no teacher_map (the PCA its vectors came from) to project with")
        mean, components = self.teacher_map
        as_numpy = not isinstance(embeddings, torch.Tensor)
        t = torch.tensor(np.asarray(embeddings), dtype=torch.float32) if as_numpy else embeddings.float()
        out = (t - mean.to(t.device)) @ components.to(t.device).T
        if self.normalize:
            out = F.normalize(out, p=2, dim=-1)
        return out.numpy() if as_numpy else out

    @torch.no_grad()
    def baked(self) -> torch.Tensor:
        """(vocab, dim) vectors with the weights multiplied in (special tokens zero): what the saved
        folder holds and model2vec / sentence-transformers average."""
        return self.bag.weight * (self.token_weights * self.keep)[:, None]

    # ------------------------------------------------------------------ saving
    def save(self, folder: str | Path, tokenizer) -> None:
        """Write one folder that ``model2vec.StaticModel.from_pretrained`` and ``SentenceTransformer``
        both load and that alembert reads back (:func:`load_static_model`); ``tokenizer``: a fast
        transformers tokenizer (its ``tokenizer.json`` is the one both libraries read)."""
        from model2vec import StaticModel

        from alembert.files import usual_permissions

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        vectors = self.baked().cpu().numpy()
        # model2vec writes its own files and the sentence-transformers pipeline beside them (modules.json:
        # StaticEmbedding at the root, then Normalize), which sentence-transformers reads from model2vec's files
        StaticModel(
            vectors, tokenizer.backend_tokenizer, normalize=self.normalize, max_length=self.max_seq_length
        ).save_pretrained(folder)
        tokenizer.save_pretrained(folder)  # tokenizer_config.json and specials for alembert's own pipeline
        meta = json.loads((folder / "config.json").read_text())
        meta["alembert"] = {"special_ids": [int(i) for i in torch.nonzero(self.keep == 0).flatten()]}
        if self.teacher_map is not None:  # the teacher's documents can then be searched with this model's queries
            from safetensors.torch import save_file

            mean, components = (t.detach().float().contiguous().cpu() for t in self.teacher_map)
            save_file({"mean": mean, "components": components}, str(folder / TEACHER_MAP))
            meta["alembert"]["teacher_map"] = TEACHER_MAP
        (folder / "config.json").write_text(json.dumps(meta, indent=2))
        usual_permissions(folder)  # model2vec leaves its weights readable by the owner alone


def is_static_folder(path: str | Path) -> bool:
    """A model2vec folder: ``config.json`` and a ``model.safetensors`` holding an ``embeddings`` tensor
    (model2vec 0.10 writes no model type; a transformers checkpoint has no such tensor)."""
    from safetensors import SafetensorError, safe_open

    weights = Path(path) / "model.safetensors"
    if not (Path(path) / "config.json").is_file() or not weights.is_file():
        return False
    try:
        with safe_open(str(weights), "pt") as f:
            return "embeddings" in f.keys()
    except (OSError, SafetensorError):
        return False


def static_config(path: str | Path) -> StaticConfig:
    """The :class:`StaticConfig` of a static folder (its width and vocabulary), read from the
    safetensors header without loading the tensor: what a command reads where it would read a
    transformers ``config.json`` (model2vec's has no ``model_type``)."""
    from safetensors import safe_open

    with safe_open(str(Path(path) / "model.safetensors"), "pt") as f:
        vocab, dim = f.get_slice("embeddings").get_shape()
    return StaticConfig(int(dim), int(vocab))


def static_param_count(path: str | Path) -> int:
    """The numbers in a static folder's ``embeddings`` tensor (its only parameters once saved)."""
    config = static_config(path)
    return config.vocab_size * config.hidden_size


def load_static_model(path: str | Path):
    """(StaticEmbeddingModel, tokenizer) of a model2vec folder (alembert's or model2vec's own): the
    saved vectors with unit weights (saved weights are baked into them)."""
    from safetensors.torch import load_file

    from alembert.models.load import load_tokenizer

    path = Path(path)
    if not is_static_folder(path):
        raise AlembertError(
            f"{path} is not a static (model2vec) folder: it needs config.json and a model.safetensors with an "
            "'embeddings' tensor"
        )
    meta = json.loads((path / "config.json").read_text())
    tensors = load_file(str(path / "model.safetensors"))
    if "embeddings" not in tensors:
        raise AlembertError(f"static model {path}: model.safetensors has no 'embeddings' tensor; re-save it")
    tokenizer = load_tokenizer(path)
    specials = meta.get("alembert", {}).get("special_ids")
    if specials is None:  # a folder model2vec wrote: its tokenizer's special tokens
        specials = sorted(set(tokenizer.all_special_ids))
    weights = tensors.get("weights")
    model = StaticEmbeddingModel(
        tensors["embeddings"].float(),
        None if weights is None else weights.float(),
        specials,
        normalize=bool(meta.get("normalize", True)),
        max_seq_length=meta.get("seq_length"),
    )
    teacher_map = meta.get("alembert", {}).get("teacher_map")
    if teacher_map is not None:
        if teacher_map != TEACHER_MAP:  # a model folder is untrusted input: only the file alembert writes is read
            raise AlembertError(
                f"static model {path}: config.json names teacher_map {teacher_map!r}; expected {TEACHER_MAP}"
            )
        mapped = load_file(str(path / TEACHER_MAP))
        model.teacher_map = (mapped["mean"], mapped["components"])
    return model, tokenizer
