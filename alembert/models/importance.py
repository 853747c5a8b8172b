"""How much a model needs each attention head, FFN neuron and residual dimension, measured on real
batches: the scores :mod:`alembert.models.prune` keeps the top of.

Every unit gets a *gate*, a multiplier fixed at 1 on its output: a head's slice of the context
vector before the attention-output projection (the head mask of Michel et al. 2019, "Are Sixteen
Heads Really Better than One?"), an FFN neuron's activation before the down projection, a residual
dimension at the output of every LayerNorm (CoFi's hidden mask, Xia et al. 2022). The derivative of
the loss by a gate is the sum over tokens of activation x gradient, which is the first-order Taylor
importance (Molchanov et al. 2017), so one backward pass scores every unit.

Which loss: the student starts as the teacher (or as the model it is cut from), so any distillation
loss against the teacher (KL on logits, MSE on states) is at its minimum and its gradient is exactly
zero; the first non-zero term of its Taylor expansion in the gates is the second, the *Fisher
information* of the gates under the model's own outputs (Kwon et al. 2022, "A Fast Post-Training
Pruning Framework for Transformers"). It is estimated without labels: per example, sample a class
from the model's own softmax for each ``*logits`` output (the Fisher of the KL term; a label per
token for token-level logits), and draw a Gaussian direction for every other output (the Fisher of
the MSE term: hidden states, sentence embeddings, a regression score); the gates are per example, so
the squared gate gradient summed over examples is the unbiased estimate of the increase in the
distillation loss when the unit is removed.

Shapes: ``heads`` (layers, heads), ``ffn`` (layers, FFN width), ``hidden`` (layers + 1, hidden):
site 0 is the embeddings, site ``l + 1`` layer ``l``'s LayerNorms, so a cut that drops layers scores
the residual stream on the layers it keeps. Sums over examples; larger is more important.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from alembert.models.prune import Keep, Shape, layers_of, layout_of, submodule

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class Scores:
    heads: torch.Tensor
    ffn: torch.Tensor
    hidden: torch.Tensor
    batches: int
    examples: int
    seconds: float


def _wide(model) -> bool:
    return next(model.parameters()).dtype == torch.float64


class Gates:
    """Per-example gates on ``model``'s heads, FFN neurons and residual dimensions, installed as hooks
    for one batch of ``batch`` examples (``with Gates(model, b) as g: ...``; ``g.heads`` etc. are the
    leaf tensors to differentiate by, all ones, and ``g.set(...)`` may change their values)."""

    def __init__(self, model, batch: int):
        self.model, self.layout, self.shape = model, layout_of(model), Shape.of(model)
        s = self.shape
        dtype = torch.float64 if _wide(model) else torch.float32
        kw = {"requires_grad": True, "dtype": dtype, "device": next(model.parameters()).device}
        self.heads = torch.ones(batch, s.layers, s.heads, **kw)
        self.ffn = torch.ones(batch, s.layers, s.ffn, **kw)
        self.hidden = torch.ones(batch, s.layers + 1, s.hidden, **kw)
        self._hooks: list = []

    def _site(self) -> dict[torch.nn.Module, int]:
        """Each LayerNorm of the residual width -> its site (0: outside the layers, l + 1: in layer l)."""
        sites = {}
        layer_of = {id(m): i + 1 for i, layer in enumerate(layers_of(self.model)) for m in layer.modules()}
        for mod in self.model.modules():
            if isinstance(mod, torch.nn.LayerNorm) and tuple(mod.normalized_shape) == (self.shape.hidden,):
                sites[mod] = layer_of.get(id(mod), 0)
        return sites

    def __enter__(self) -> Gates:
        s, lay = self.shape, self.layout
        for i, layer in enumerate(layers_of(self.model)):

            def head_gate(_m, args, i=i):
                x = args[0]
                b, t = x.shape[:2]
                g = self.heads[:, i].to(x.dtype)[:, None, :, None]
                return ((x.view(b, t, s.heads, s.head_dim) * g).view(b, t, -1),) + tuple(args[1:])

            def ffn_gate(_m, args, i=i):
                return (args[0] * self.ffn[:, i].to(args[0].dtype)[:, None, :],) + tuple(args[1:])

            self._hooks.append(submodule(layer, lay.out).register_forward_pre_hook(head_gate))
            self._hooks.append(submodule(layer, lay.ffn_out).register_forward_pre_hook(ffn_gate))
        for mod, site in self._site().items():

            def hidden_gate(_m, _args, out, site=site):
                return out * self.hidden[:, site].to(out.dtype)[:, None, :]

            self._hooks.append(mod.register_forward_hook(hidden_gate))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()


def model_outputs(model, batch: dict) -> dict[str, torch.Tensor]:
    """The outputs a distillation compares: every ``*logits`` the model returns, else its last hidden state."""
    out = model(**{k: batch[k] for k in INPUTS if k in batch})
    found = {k: v for k, v in out.items() if k.endswith("logits") and torch.is_tensor(v)}
    return found or {"last_hidden_state": out["last_hidden_state"]}


def probe_loss(outputs: dict[str, torch.Tensor], mask: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    """The label-free loss whose gate gradients estimate the Fisher information (see the module's
    docstring): the log-likelihood of a class sampled from each ``*logits`` output's own softmax,
    or the projection of any other output on a Gaussian direction; token positions outside
    ``mask`` (batch, tokens) count for nothing. A scalar, summed over examples."""
    total = 0.0
    for name, y in outputs.items():
        y = y if y.dtype == torch.float64 else y.float()  # float64 kept: the finite-difference check
        token_mask = mask.to(y.dtype) if mask is not None and y.dim() == 3 and y.shape[1] == mask.shape[1] else None
        if name.endswith("logits") and y.shape[-1] > 1:
            probs = F.softmax(y.detach(), dim=-1).reshape(-1, y.shape[-1]).cpu()
            labels = torch.multinomial(probs, 1, generator=generator).view(y.shape[:-1]).to(y.device)
            per = -F.log_softmax(y, dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        else:
            direction = torch.randn(y.shape, generator=generator).to(y.device)
            per = (y * direction).sum(-1)
        if token_mask is not None:
            per = per * token_mask
        total = total + per.sum()
    return total


def gate_gradients(model, batch: dict, generator: torch.Generator, outputs: Callable = model_outputs):
    """One batch's per-example gate gradients ``(heads, ffn, hidden)`` under :func:`probe_loss`."""
    b = batch["input_ids"].shape[0]
    with Gates(model, b) as gates:
        loss = probe_loss(outputs(model, batch), batch.get("attention_mask"), generator)
        return torch.autograd.grad(loss, (gates.heads, gates.ffn, gates.hidden))


def score_units(
    model,
    batches: Iterable[dict],
    max_batches: int,
    *,
    seed: int = 0,
    outputs: Callable = model_outputs,
) -> Scores:
    """Fisher scores of ``model``'s units on up to ``max_batches`` of ``batches`` (dicts of tensors with
    ``input_ids``, ``attention_mask``...); ``outputs(model, batch)``: the outputs the loss compares
    (default :func:`model_outputs`; an embedding run passes its sentence embedding)."""
    shape = Shape.of(model)
    heads = torch.zeros(shape.layers, shape.heads)
    ffn = torch.zeros(shape.layers, shape.ffn)
    hidden = torch.zeros(shape.layers + 1, shape.hidden)
    generator = torch.Generator().manual_seed(seed)
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    start, n, examples = time.perf_counter(), 0, 0
    try:
        for batch in itertools.islice(batches, max_batches):
            batch = {k: v.to(dev) for k, v in batch.items() if k in INPUTS}
            gh, gf, gd = gate_gradients(model, batch, generator, outputs)
            heads += gh.float().pow(2).sum(0).cpu()
            ffn += gf.float().pow(2).sum(0).cpu()
            hidden += gd.float().pow(2).sum(0).cpu()
            n, examples = n + 1, examples + batch["input_ids"].shape[0]
    finally:
        model.train(was_training)
    return Scores(heads, ffn, hidden, n, examples, time.perf_counter() - start)


def _top(scores: torch.Tensor, k: int) -> list[int]:
    """The ``k`` highest-scoring indices, in their original order (ties: the lower index)."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    return sorted(order[:k])


def keep_top(
    scores: Scores, model, heads: int | None, ffn: int | None, layers: list[int] | None, record: dict | None = None
) -> Keep:
    """The :class:`~alembert.models.prune.Keep` of the best-scored units: ``layers`` (None: all), in each
    the top ``heads`` heads (one shared set where the family shares a per-head parameter) and the
    residual dimensions best scored on the kept layers, the top ``ffn`` FFN neurons (None: no cut)."""
    shape, layout = Shape.of(model), layout_of(model)
    kept = list(layers) if layers is not None else list(range(shape.layers))
    keep = Keep(kept, record=dict(record or {}))
    if heads is not None:
        if layout.shared_heads:
            shared = _top(scores.heads[kept].sum(0), heads)
            keep.heads = [shared for _ in kept]
        else:
            keep.heads = [_top(scores.heads[i], heads) for i in kept]
        sites = [0, *(i + 1 for i in kept)]
        keep.hidden = _top(scores.hidden[sites].sum(0), heads * shape.head_dim)
    if ffn is not None:
        keep.ffn = [_top(scores.ffn[i], ffn) for i in kept]
    return keep
