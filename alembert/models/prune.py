"""Structured pruning that stays a standard transformers model: fewer layers, a narrower FFN, and
fewer heads together with a narrower residual stream.

transformers 5 has no ``prune_heads`` and derives every layer's head width as ``hidden_size /
num_attention_heads``, so a model ``from_pretrained`` can load has the same head count in every
layer and ``heads x head_dim = hidden``. What can be cut and still load is therefore: layers; FFN
neurons (the same count in every layer); and heads *with* the hidden width, CoFi-style (Xia et
al. 2022): K heads of the teacher's head width in each layer and the K x head_dim residual
dimensions kept, one shared selection applied to the embeddings, every LayerNorm and every matrix
that reads or writes the residual stream (pooler and task head included).

The surgery is read off the model rather than a table of checkpoints: a :class:`Layout` names, inside
one transformer layer, the query/key/value and attention-output projections and the FFN's two
matrices (BERT, RoBERTa, ELECTRA and their kin share one; DistilBERT and MPNet have their own).
Every other Embedding, Linear and LayerNorm is cut wherever one of its dimensions is the residual
width. A family whose layer matches no layout, or with a parameter the rules leave at the wrong
shape, is a one-line error before any weight is copied.

Heads, FFN neurons and residual dimensions are removed exactly: the pruned model computes what the
unpruned one computes with those units masked (an attention head's output zeroed, an FFN neuron's
output zeroed, a residual dimension dropped from every LayerNorm's statistics), which
``tests/test_prune.py`` checks to fp32 precision.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from alembert.errors import AlembertError
from alembert.models.student import layer_list_name, student_from_teacher

#: the config record a pruned model carries (kept by transformers through save/load, like the
#: preprocessing record): what was kept, of what widths, by which importance, on what data.
KEY = "alembert_pruned"


@dataclass(frozen=True)
class Layout:
    """Where the prunable matrices of one transformer layer are, relative to the layer module.
    ``shared_heads``: a per-head parameter shared by every layer (MPNet's relative position bias,
    one column per head), which forces one set of kept heads for the whole model."""

    family: str
    query: str
    key: str
    value: str
    out: str
    ffn_in: str
    ffn_out: str
    ffn_key: str = "intermediate_size"  # the config attribute of the FFN width
    shared_heads: str | None = None  # dotted path from the model root, matched by suffix

    def parts(self) -> tuple[str, ...]:
        return (self.query, self.key, self.value, self.out, self.ffn_in, self.ffn_out)


LAYOUTS = (
    Layout(
        "bert",
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "intermediate.dense",
        "output.dense",
    ),
    Layout(
        "distilbert",
        "attention.q_lin",
        "attention.k_lin",
        "attention.v_lin",
        "attention.out_lin",
        "ffn.lin1",
        "ffn.lin2",
        "hidden_dim",
    ),
    Layout(
        "mpnet",
        "attention.attn.q",
        "attention.attn.k",
        "attention.attn.v",
        "attention.attn.o",
        "intermediate.dense",
        "output.dense",
        shared_heads="encoder.relative_attention_bias",
    ),
)


def submodule(module: torch.nn.Module, dotted: str):
    for part in dotted.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def layers_of(model) -> list[torch.nn.Module]:
    return list(submodule(model, layer_list_name(model)))


def layout_of(model) -> Layout:
    """The layout of ``model``'s transformer layers; a family none fits is one line naming it."""
    try:
        layer = layers_of(model)[0]
    except AlembertError:
        layer = None
    for layout in LAYOUTS:
        if layer is not None and all(isinstance(submodule(layer, p), torch.nn.Linear) for p in layout.parts()):
            return layout
    kind = getattr(model.config, "model_type", type(model).__name__)
    raise AlembertError(
        f"{type(model).__name__} ({kind}): alembert cannot prune this family (its layers match none of "
        f"{', '.join(lay.family for lay in LAYOUTS)}); use --student-layers or --student-config instead"
    )


@dataclass(frozen=True)
class Shape:
    """The sizes pruning reads and writes: layers, heads, head width, hidden, FFN."""

    layers: int
    heads: int
    head_dim: int
    hidden: int
    ffn: int

    @classmethod
    def of(cls, model) -> Shape:
        c = model.config
        layout = layout_of(model)
        heads = c.num_attention_heads
        return cls(c.num_hidden_layers, heads, c.hidden_size // heads, c.hidden_size, getattr(c, layout.ffn_key))


@dataclass
class Keep:
    """What a pruned model keeps, in the source model's indices: ``layers`` (0-based, in order),
    per kept layer the ``heads`` and ``ffn`` neurons (None: all), and the ``hidden`` residual
    dimensions (None: all; given exactly when heads are cut)."""

    layers: list[int]
    heads: list[list[int]] | None = None
    ffn: list[list[int]] | None = None
    hidden: list[int] | None = None
    record: dict = field(default_factory=dict)  # extra words for the config record (importance, data)


def heads_for(shape: Shape, heads: int | None, hidden: int | None, where: str) -> int | None:
    """The heads kept per layer, from ``heads=K`` or from the width ``hidden=N`` (N / head width); one
    line when ``hidden`` is no multiple of the head width or disagrees with ``heads``."""
    if hidden is None:
        return heads
    d = shape.head_dim
    if hidden % d or not d <= hidden <= shape.hidden:
        lo, hi = max(d, hidden // d * d), min(shape.hidden, (hidden // d + 1) * d)
        raise AlembertError(
            f"{where} hidden={hidden}: the hidden width is heads x the head width {d}, up to {shape.hidden}; "
            f"use hidden={lo} or hidden={hi} (heads={lo // d} or {hi // d})"
        )
    if heads is not None and heads * d != hidden:
        raise AlembertError(
            f"{where} heads={heads} and hidden={hidden} disagree: {heads} heads of width {d} are hidden={heads * d}"
        )
    return hidden // d


def check_request(
    shape: Shape, heads: int | None, ffn: int | None, layers: list[int] | None, where: str, hidden: int | None = None
) -> None:
    """Refuse, in one line and before any compute, a cut ``shape`` cannot take."""
    heads = heads_for(shape, heads, hidden, where)
    if heads is not None and not 1 <= heads <= shape.heads:
        raise AlembertError(
            f"{where} heads={heads}: each layer has {shape.heads} heads; keep between 1 and {shape.heads}"
        )
    if ffn is not None and not 1 <= ffn <= shape.ffn:
        raise AlembertError(f"{where} ffn={ffn}: the FFN has {shape.ffn} neurons; keep between 1 and {shape.ffn}")
    if layers is not None:
        if not layers:
            raise AlembertError(f"{where} layers=: keep at least one layer, e.g. layers=0,2,4")
        bad = [x for x in layers if not 0 <= x < shape.layers]
        if bad:
            raise AlembertError(
                f"{where} layers: layer {bad[0]} is out of range 0..{shape.layers - 1} (the model has {shape.layers})"
            )
        if len(set(layers)) != len(layers):
            raise AlembertError(f"{where} layers={','.join(map(str, layers))} repeats a layer; give each once")


def _head_dims(heads: list[int], head_dim: int) -> torch.Tensor:
    return torch.tensor([h * head_dim + i for h in heads for i in range(head_dim)], dtype=torch.long)


def _selections(model, keep: Keep, shape: Shape, layout: Layout) -> dict[str, list[tuple[int, torch.Tensor]]]:
    """parameter name (in the layer-sliced model) -> [(dim, kept indices), ...]."""
    hid = torch.tensor(keep.hidden, dtype=torch.long) if keep.hidden is not None else None
    sel: dict[str, list[tuple[int, torch.Tensor]]] = {}

    def add(name: str, dim: int, idx: torch.Tensor | None) -> None:
        if idx is not None:
            sel.setdefault(name, []).append((dim, idx))

    prefix = layer_list_name(model)
    structural = set()
    for pos in range(len(keep.layers)):
        base = f"{prefix}.{pos}"
        heads = _head_dims(keep.heads[pos], shape.head_dim) if keep.heads is not None else None
        ffn = torch.tensor(keep.ffn[pos], dtype=torch.long) if keep.ffn is not None else None

        def linear(part: str, rows: torch.Tensor | None, cols: torch.Tensor | None, base: str = base) -> None:
            add(f"{base}.{part}.weight", 0, rows)
            add(f"{base}.{part}.weight", 1, cols)
            add(f"{base}.{part}.bias", 0, rows)

        for part in (layout.query, layout.key, layout.value):  # residual in, heads out
            linear(part, heads, hid)
        linear(layout.out, hid, heads)
        linear(layout.ffn_in, ffn, hid)
        linear(layout.ffn_out, hid, ffn)
        structural.update(f"{base}.{p}" for p in layout.parts())
    if layout.shared_heads and keep.heads is not None:
        for name, _ in model.named_modules():
            if name == layout.shared_heads or name.endswith("." + layout.shared_heads):
                add(f"{name}.weight", 1, torch.tensor(keep.heads[0], dtype=torch.long))
                structural.add(name)
    if hid is None:
        return sel
    for name, mod in model.named_modules():  # the rest of the residual stream: embeddings, LayerNorms, heads
        if name in structural:
            continue
        if isinstance(mod, torch.nn.Embedding) and mod.embedding_dim == shape.hidden:
            add(f"{name}.weight", 1, hid)
        elif isinstance(mod, torch.nn.Linear):
            if mod.out_features == shape.hidden:
                add(f"{name}.weight", 0, hid)
                if mod.bias is not None:
                    add(f"{name}.bias", 0, hid)
            if mod.in_features == shape.hidden:
                add(f"{name}.weight", 1, hid)
        elif isinstance(mod, torch.nn.LayerNorm) and tuple(mod.normalized_shape) == (shape.hidden,):
            for p in ("weight", "bias"):
                if getattr(mod, p, None) is not None:
                    add(f"{name}.{p}", 0, hid)
    return sel


def pruned_config(model, keep: Keep, shape: Shape, layout: Layout):
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = len(keep.layers)
    if keep.ffn is not None:
        setattr(config, layout.ffn_key, len(keep.ffn[0]))
    if keep.heads is not None:
        hidden = len(keep.heads[0]) * shape.head_dim
        if getattr(config, "embedding_size", None) == shape.hidden:  # ELECTRA with embeddings as wide as the stream
            config.embedding_size = hidden
        config.hidden_size = hidden
        config.num_attention_heads = len(keep.heads[0])
    return config


def prune(model, keep: Keep):
    """A new model of ``model``'s class keeping the units ``keep`` names, weights copied; its config
    describes the new shape and carries the :data:`KEY` record. ``model`` is left as it was."""
    layout, shape = layout_of(model), Shape.of(model)
    check_request(shape, None, None, keep.layers, "prune")
    n = len(keep.layers)
    if keep.heads is not None:
        sizes = {len(h) for h in keep.heads}
        if len(keep.heads) != n or len(sizes) != 1:
            raise AlembertError("prune: keep the same number of heads in every kept layer")
        if keep.hidden is None or len(keep.hidden) != len(keep.heads[0]) * shape.head_dim:
            raise AlembertError(
                f"prune: {len(keep.heads[0])} heads of width {shape.head_dim} need "
                f"{len(keep.heads[0]) * shape.head_dim} hidden dimensions kept"
            )
        if layout.shared_heads and any(h != keep.heads[0] for h in keep.heads):
            raise AlembertError(f"prune: {layout.family} shares its per-head position bias; keep one set of heads")
    elif keep.hidden is not None:
        raise AlembertError("prune: the hidden width is cut only together with heads (heads x head width = hidden)")
    if keep.ffn is not None and (len(keep.ffn) != n or len({len(f) for f in keep.ffn}) != 1):
        raise AlembertError("prune: keep the same number of FFN neurons in every kept layer")
    sliced = student_from_teacher(model, keep.layers) if keep.layers != list(range(shape.layers)) else model
    sel = _selections(sliced, keep, shape, layout)
    config = pruned_config(model, keep, shape, layout)
    config.__dict__.pop(KEY, None)
    out = type(model)(config)
    source = sliced.state_dict()
    lost = sorted(set(source) - set(out.state_dict()))
    if lost:  # e.g. ELECTRA's embedding projection, which its class drops once the widths are equal
        raise AlembertError(
            f"prune: the cut {type(model).__name__} would have no {lost[0]} (hidden {config.hidden_size}); "
            "keep another number of heads"
        )
    state = {}
    for name, ref in out.state_dict().items():
        if name not in source:
            raise AlembertError(
                f"prune: {type(model).__name__} has no weight {name} to copy; this family cannot be pruned"
            )
        t = source[name]
        for dim, idx in sel.get(name, []):
            t = t.index_select(dim, idx.to(t.device))
        if tuple(t.shape) != tuple(ref.shape):
            raise AlembertError(
                f"prune: {type(model).__name__}'s {name} would be {tuple(t.shape)}, not {tuple(ref.shape)}; "
                "alembert cannot prune this family"
            )
        state[name] = t.clone()
    out.load_state_dict(state, strict=True)
    out.to(next(model.parameters()).device)
    record = {
        "from": {"layers": shape.layers, "heads": shape.heads, "hidden": shape.hidden, "ffn": shape.ffn},
        "layers": list(keep.layers),
        "heads": [list(h) for h in keep.heads] if keep.heads is not None else None,
        "ffn": len(keep.ffn[0]) if keep.ffn is not None else None,
        "hidden": list(keep.hidden) if keep.hidden is not None else None,
        **keep.record,
    }
    setattr(out.config, KEY, _compose(getattr(model.config, KEY, None), record))
    return out.eval() if not model.training else out


def _compose(before: dict | None, now: dict) -> dict:
    """The record of a model pruned twice (iterative pruning: cut, distil, cut again), in the indices
    of the first model: its kept layers, heads and residual dimensions are those of the original, so
    the projections and attention maps of the next distillation still find their teacher units."""
    if not before:
        return now
    layers = [before["layers"][i] for i in now["layers"]]
    old_heads = before.get("heads")
    if now["heads"] is None:
        heads = [old_heads[i] for i in now["layers"]] if old_heads else None
    else:
        pairs = zip(now["layers"], now["heads"], strict=True)
        heads = [[old_heads[i][h] if old_heads else h for h in hs] for i, hs in pairs]
    hidden = before.get("hidden")
    if now["hidden"] is not None:
        hidden = [hidden[i] for i in now["hidden"]] if hidden else now["hidden"]
    ffn = now["ffn"] if now["ffn"] is not None else before.get("ffn")
    rounds = before.get("rounds", 1) + 1
    return {
        **now,
        "from": before["from"],
        "layers": layers,
        "heads": heads,
        "hidden": hidden,
        "ffn": ffn,
        "rounds": rounds,
    }


def selection(config, width_from: int) -> torch.Tensor | None:
    """The (width_from, hidden) 0/1 matrix that puts a hidden-pruned model's residual dimensions back
    where they were in a model of width ``width_from`` (its teacher), or None when ``config`` is not
    a hidden-pruned model of that width: the start of a projection to the teacher's width that
    already agrees with it on the kept dimensions."""
    rec = getattr(config, KEY, None) or {}
    kept = rec.get("hidden")
    if not kept or rec.get("from", {}).get("hidden") != width_from or len(kept) != config.hidden_size:
        return None
    w = torch.zeros(width_from, len(kept))
    w[torch.tensor(kept), torch.arange(len(kept))] = 1.0
    return w


def kept_heads(config, heads_from: int) -> list[list[int]] | None:
    """Per layer, the heads of a model with ``heads_from`` heads that a head-pruned model kept, or None
    when ``config`` is not one: what an attention-map term compares a pruned student's maps with."""
    rec = getattr(config, KEY, None) or {}
    heads = rec.get("heads")
    if not heads or rec.get("from", {}).get("heads") != heads_from or len(heads) != config.num_hidden_layers:
        return None
    return [list(h) for h in heads]
