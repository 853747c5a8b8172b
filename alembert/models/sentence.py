"""A sentence-embedding model as sentence-transformers defines one, without depending on it.

A sentence-transformers folder lists its modules in ``modules.json``: a Transformer (the
encoder, usually at the folder's root), a Pooling (``1_Pooling/config.json``: mean, cls or
max over the tokens), optional Dense layers (``N_Dense/``: a linear map, e.g. to another
width) and an optional Normalize (L2). alembert reads those files instead of guessing, runs
the same computation in plain PyTorch (so a student trains through it, and ONNX export sees
one graph), and writes the same layout back, so ``SentenceTransformer(folder)`` loads what
alembert saves and gives the same vectors.

A plain encoder folder (no ``modules.json``) is an embedding model only with an explicit
pooling (``--pooling mean|cls|max``): alembert never guesses how to pool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from alembert.errors import AlembertError
from alembert.models.load import load_tokenizer, quiet_from_pretrained
from alembert.models.resolve import resolve_model

POOLING_MODES = ("mean", "cls", "max")
_POOLING_FLAGS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}
_ST = "sentence_transformers.models."


@dataclass
class EmbeddingSpec:
    """What ``modules.json`` says, as data: where the encoder lies and what follows it."""

    encoder_path: Path
    pooling: str = "mean"
    dense: list[Path] = field(default_factory=list)  # Dense module folders, in order
    normalize: bool = False
    max_seq_length: int | None = None


def inside(root: Path, entry: str, where: str) -> Path:
    """``root / entry``, which must stay inside ``root`` once ``..`` and symbolic links are resolved:
    a model folder is untrusted input, and an absolute or ``../`` path in its ``modules.json`` would
    make an export read or write outside the folder. ``where`` names the entry for the error."""
    path = root / entry
    if not path.resolve().is_relative_to(root.resolve()):
        raise AlembertError(
            f"{where}: path {entry!r} leads outside the model folder {root}; a model's module paths must stay "
            "inside its folder (re-save it with sentence-transformers)"
        )
    return path


def read_spec(folder: str | Path, pooling: str | None = None) -> EmbeddingSpec:
    """The embedding spec of a model folder or alias; ``pooling`` overrides (or supplies) the pooling."""
    root = resolve_model(folder)
    if pooling is not None and pooling not in POOLING_MODES:
        raise AlembertError(f"--pooling {pooling!r}: use one of {', '.join(POOLING_MODES)}")
    modules_file = root / "modules.json"
    if not modules_file.is_file():
        if pooling is None:
            raise AlembertError(
                f"model {folder} is not a sentence-transformers folder (no modules.json) and no pooling was given; "
                "pass --pooling mean (or cls, max) to embed with its encoder"
            )
        return EmbeddingSpec(root, pooling)
    try:
        modules = json.loads(modules_file.read_text())
        spec = EmbeddingSpec(root)
        seen_pooling = False
        for m in sorted(modules, key=lambda m: m["idx"]):
            kind = m["type"].rsplit(".", 1)[-1]  # the class name: ST 5 and 6 differ in module paths
            path = inside(root, m.get("path", ""), f"model {folder}: modules.json entry {m['idx']}")
            if kind == "Transformer":
                spec.encoder_path = path
                bert_cfg = path / "sentence_bert_config.json"
                if bert_cfg.is_file():
                    spec.max_seq_length = json.loads(bert_cfg.read_text()).get("max_seq_length")
            elif kind == "Pooling":
                cfg = json.loads((path / "config.json").read_text())
                if "pooling_mode" in cfg:  # sentence-transformers 6: a mode name or a list of them
                    named = cfg["pooling_mode"] if isinstance(cfg["pooling_mode"], list) else [cfg["pooling_mode"]]
                    modes = [x for x in named if x in POOLING_MODES]
                    others = [x for x in named if x not in POOLING_MODES]
                else:  # sentence-transformers <= 5: one boolean flag per mode
                    modes = [mode for flag, mode in _POOLING_FLAGS.items() if cfg.get(flag)]
                    others = [
                        k for k, v in cfg.items() if k.startswith("pooling_mode") and v and k not in _POOLING_FLAGS
                    ]
                if len(modes) != 1 or others:
                    raise AlembertError(
                        f"model {folder}: pooling {modes + others} in {path / 'config.json'} is not supported; "
                        "alembert pools with exactly one of mean, cls, max"
                    )
                spec.pooling, seen_pooling = modes[0], True
            elif kind == "Dense":
                spec.dense.append(path)
            elif kind == "Normalize":
                spec.normalize = True
            else:
                raise AlembertError(
                    f"model {folder}: "
                    f"module {m['type']} in modules.json is not supported (Transformer, Pooling, Dense, Normalize are)"
                )
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise AlembertError(
            f"model {folder}: unreadable modules.json or module config ({exc.__class__.__name__}: {exc}); "
            "re-save it with sentence-transformers"
        ) from None
    if pooling is not None:
        spec.pooling = pooling
    elif not seen_pooling:
        raise AlembertError(f"model {folder}: modules.json has no Pooling module; pass --pooling mean (or cls, max)")
    return spec


def declared_max_seq_length(folder: str | Path) -> int | None:
    """The ``max_seq_length`` a sentence-transformers folder (or its export, which keeps the
    module files) declares; None for a plain encoder or a folder that cannot be read (the
    command that loads it then says why)."""
    try:
        return read_spec(folder, pooling="mean").max_seq_length  # the pooling is irrelevant here
    except AlembertError:
        return None


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """(batch, seq, dim) token states -> (batch, dim): mean or max over real tokens, or the first token."""
    if mode == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "max":
        return hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


class EmbeddingOutput:
    """The encoder's outputs plus the sentence embeddings, so token- and sentence-level terms share one forward."""

    def __init__(self, out, embeddings: torch.Tensor):
        self.hidden_states = getattr(out, "hidden_states", None)
        self.attentions = getattr(out, "attentions", None)
        self.last_hidden_state = out.last_hidden_state
        self.embeddings = embeddings
        self.logits = None


class EmbeddingModel(torch.nn.Module):
    """Encoder -> pooling -> Dense layers -> optional L2 normalisation."""

    def __init__(
        self,
        encoder,
        pooling: str = "mean",
        dense: list[torch.nn.Linear] | None = None,
        normalize: bool = False,
        max_seq_length: int | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.dense = torch.nn.ModuleList(dense or [])
        self.normalize = normalize
        self.max_seq_length = max_seq_length
        self.fresh_dense = False  # the last Dense layer was just created (not trained, not loaded)

    @property
    def config(self):
        return self.encoder.config

    @property
    def dim(self) -> int:
        return self.dense[-1].out_features if len(self.dense) else self.encoder.config.hidden_size

    def forward(
        self,
        input_ids,
        attention_mask,
        token_type_ids=None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ):
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        out = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            **kwargs,
        )
        emb = pool(out.last_hidden_state, attention_mask, self.pooling)
        for layer in self.dense:
            emb = layer(emb)
        if self.normalize:
            emb = F.normalize(emb, p=2, dim=-1)
        return EmbeddingOutput(out, emb)

    # ------------------------------------------------------------------ saving
    def save(self, folder: str | Path, tokenizer) -> None:
        """Write a sentence-transformers folder: encoder and tokenizer at the root, then Pooling, Dense, Normalize."""
        folder = Path(folder)
        self.encoder.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        modules = [{"idx": 0, "name": "0", "path": "", "type": _ST + "Transformer"}]
        (folder / "sentence_bert_config.json").write_text(
            json.dumps({"max_seq_length": self.max_seq_length or 256, "do_lower_case": False}, indent=2)
        )
        pooling_dir = folder / "1_Pooling"
        pooling_dir.mkdir(exist_ok=True)
        flags = {flag: mode == self.pooling for flag, mode in _POOLING_FLAGS.items()}
        (pooling_dir / "config.json").write_text(
            json.dumps(
                {
                    "word_embedding_dimension": self.encoder.config.hidden_size,
                    **flags,
                    "pooling_mode_mean_sqrt_len_tokens": False,
                    "pooling_mode_weightedmean_tokens": False,
                    "pooling_mode_lasttoken": False,
                    "include_prompt": True,
                },
                indent=2,
            )
        )
        modules.append({"idx": 1, "name": "1", "path": "1_Pooling", "type": _ST + "Pooling"})
        for layer in self.dense:
            idx = len(modules)
            d = folder / f"{idx}_Dense"
            d.mkdir(exist_ok=True)
            (d / "config.json").write_text(
                json.dumps(
                    {
                        "in_features": layer.in_features,
                        "out_features": layer.out_features,
                        "bias": layer.bias is not None,
                        "activation_function": "torch.nn.modules.linear.Identity",
                    },
                    indent=2,
                )
            )
            save_file(
                {
                    "linear.weight": layer.weight.detach().contiguous(),
                    **({"linear.bias": layer.bias.detach().contiguous()} if layer.bias is not None else {}),
                },
                str(d / "model.safetensors"),
            )
            modules.append({"idx": idx, "name": str(idx), "path": d.name, "type": _ST + "Dense"})
        if self.normalize:
            idx = len(modules)
            (folder / f"{idx}_Normalize").mkdir(exist_ok=True)
            modules.append({"idx": idx, "name": str(idx), "path": f"{idx}_Normalize", "type": _ST + "Normalize"})
        (folder / "modules.json").write_text(json.dumps(modules, indent=2))
        (folder / "config_sentence_transformers.json").write_text(
            json.dumps(
                {
                    "model_type": "SentenceTransformer",
                    "similarity_fn_name": "cosine",
                    "prompts": {},
                    "default_prompt_name": None,
                },
                indent=2,
            )
        )


def _load_dense(path: Path) -> torch.nn.Linear:
    cfg = json.loads((path / "config.json").read_text())
    act = cfg.get("activation_function", "torch.nn.modules.linear.Identity")
    if not act.endswith("Identity"):
        raise AlembertError(
            f"Dense module {path}: activation {act} is not supported (only a linear Dense, Identity activation)"
        )
    layer = torch.nn.Linear(cfg["in_features"], cfg["out_features"], bias=cfg.get("bias", True))
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise AlembertError(
            f"Dense module {path}: no model.safetensors (pickled pytorch_model.bin is not read); "
            "re-save it with a current sentence-transformers"
        )
    state = {k.removeprefix("linear."): v for k, v in load_file(str(weights)).items()}
    layer.load_state_dict(state)
    return layer


def load_embedding_model(name: str | Path, pooling: str | None = None, attn: str | None = None):
    """(EmbeddingModel, tokenizer) for a sentence-transformers folder, an alias, or an encoder with ``pooling``;
    (StaticEmbeddingModel, tokenizer) for a static (model2vec) folder, which pools by its own weighted mean."""
    from transformers import AutoModel

    from alembert.models.static import is_static_folder, load_static_model

    if is_static_folder(resolve_model(name)):
        if pooling not in (None, "mean"):
            raise AlembertError(
                f"model {name} is a static model: it embeds by a weighted mean of its token vectors; drop --pooling"
            )
        return load_static_model(resolve_model(name))
    spec = read_spec(name, pooling)
    encoder = quiet_from_pretrained(
        AutoModel, spec.encoder_path, f"model {name}", **({"attn_implementation": attn} if attn else {})
    )
    model = EmbeddingModel(
        encoder, spec.pooling, [_load_dense(p) for p in spec.dense], spec.normalize, spec.max_seq_length
    )
    return model, load_tokenizer(spec.encoder_path)
