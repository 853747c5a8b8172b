"""Record a model's attention queries, keys and values with forward hooks.

transformers returns hidden states and (eager) attention probabilities, but not
the queries, keys and values that MiniLM's relation losses compare. Every
supported family computes them with one ``nn.Linear`` per kind inside each
layer's self-attention, so a forward hook on those modules records their
outputs, ``(batch, seq, width)`` with the heads concatenated, exactly what
:func:`alembert.losses.relation_loss` takes. Hooks do not depend on the
attention kernel: SDPA models are captured as well as eager ones.

Where the modules live is data, :data:`QKV_PATHS`, one row per ``model_type``,
relative to ``model.base_model`` so that a bare encoder (``AutoModel``) and a
task model (``AutoModelForSequenceClassification``, which nests the encoder
under ``bert.``, ``distilbert.``, ...) resolve the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch

from alembert.errors import AlembertError

QKV = ("q", "k", "v")  # the projections a relation term reads: queries, keys, values

_BERT_LIKE = {
    "q": "encoder.layer.{i}.attention.self.query",
    "k": "encoder.layer.{i}.attention.self.key",
    "v": "encoder.layer.{i}.attention.self.value",
}

QKV_PATHS: dict[str, dict[str, str]] = {
    "bert": _BERT_LIKE,
    "roberta": _BERT_LIKE,
    "electra": _BERT_LIKE,
    "distilbert": {
        "q": "transformer.layer.{i}.attention.q_lin",
        "k": "transformer.layer.{i}.attention.k_lin",
        "v": "transformer.layer.{i}.attention.v_lin",
    },
    "mpnet": {
        "q": "encoder.layer.{i}.attention.attn.q",
        "k": "encoder.layer.{i}.attention.attn.k",
        "v": "encoder.layer.{i}.attention.attn.v",
    },
}
"""Projection module paths under ``model.base_model``; ``{i}`` is the 0-based layer index."""


def qkv_modules(
    model: torch.nn.Module, layers: Sequence[int], which: Sequence[str] = QKV
) -> dict[tuple[int, str], torch.nn.Module]:
    """The projection modules ``{(layer, kind): nn.Module}`` for 1-based ``layers``.

    Layer L is the L-th transformer layer, the one that turns ``hidden_states[L - 1]``
    into ``hidden_states[L]`` (the convention of transformers' ``hidden_states`` and
    of alembert's layer mappings, where 0 is the embedding output, which has no
    attention). ``which`` is any of ``"q"``, ``"k"``, ``"v"``. Unknown families,
    layers out of range and unknown kinds are refused with a one-line error.
    """
    config = model.config
    family = getattr(config, "model_type", None)
    if family not in QKV_PATHS:
        raise AlembertError(
            f"cannot capture queries, keys and values of a {family!r} model; "
            f"known families: {', '.join(sorted(QKV_PATHS))}"
        )
    bad = [w for w in which if w not in QKV]
    if bad or not which:
        raise AlembertError(f"capture_qkv: which must be some of 'q', 'k', 'v', got {tuple(which)}")
    n = config.num_hidden_layers
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= n:
            raise AlembertError(
                f"capture_qkv: layer {layer!r} is out of range 1..{n} (layers are 1-based "
                f"like hidden_states; this {family} model has {n} layers)"
            )
    base = model.base_model
    return {
        (layer, kind): base.get_submodule(QKV_PATHS[family][kind].format(i=layer - 1))
        for layer in layers
        for kind in which
    }


@contextmanager
def capture_qkv(
    model: torch.nn.Module, layers: Sequence[int], which: Sequence[str] = QKV
) -> Iterator[dict[tuple[int, str], torch.Tensor]]:
    """Record the queries, keys and/or values of ``layers`` during forwards inside the block.

    Yields a dict that, after a forward, holds ``{(layer, kind): tensor}`` with
    ``tensor`` the projection's output ``(batch, seq, width)`` (heads concatenated,
    before the split into heads and before any scaling; bias included). Layers are
    1-based, see :func:`qkv_modules`. A later forward overwrites the entries.

    The tensors are the model's own: recorded under ``torch.no_grad()`` (a teacher)
    they carry no graph; recorded with grad enabled (a student) they are part of it,
    so a loss on them trains the projections and everything below. The hooks are
    removed when the block exits, also on an error.

    Example::

        with capture_qkv(student, layers=[6], which=("q", "k", "v")) as qkv:
            out = student(**inputs)
        q6 = qkv[(6, "q")]   # (batch, seq, hidden_size)
    """
    with _hooked(qkv_modules(model, layers, which)) as captured:
        yield captured


@contextmanager
def capture_keys(
    model: torch.nn.Module, keys: Iterable[tuple[int, str]]
) -> Iterator[dict[tuple[int, str], torch.Tensor]]:
    """:func:`capture_qkv` for exactly the ``(layer, kind)`` pairs in ``keys`` (not their product).

    No keys: no hooks and no family check, an empty dict (what the distillation module
    uses around every forward; only stages with relation terms ask for keys)."""
    by_layer: dict[int, list[str]] = {}
    for layer, kind in keys:
        by_layer.setdefault(layer, []).append(kind)
    modules = {}
    for layer, kinds in sorted(by_layer.items()):
        modules.update(qkv_modules(model, [layer], sorted(set(kinds))))
    with _hooked(modules) as captured:
        yield captured


@contextmanager
def _hooked(modules: dict[tuple[int, str], torch.nn.Module]) -> Iterator[dict[tuple[int, str], torch.Tensor]]:
    captured: dict[tuple[int, str], torch.Tensor] = {}
    handles = []
    try:
        for key, module in modules.items():
            handles.append(module.register_forward_hook(_recorder(captured, key)))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def _recorder(store: dict, key: tuple[int, str]):
    def hook(_module, _inputs, output):
        store[key] = output

    return hook
