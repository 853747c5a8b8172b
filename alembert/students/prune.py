"""A student cut from the teacher's own weights: fewer layers, a narrower FFN, fewer heads with a
narrower residual stream (:mod:`alembert.models.prune`), the units kept being those the model
needs most on the run's own training batches (:mod:`alembert.models.importance`: Fisher scores of
per-unit gates under the model's own outputs, so no labels are read).

``--student-prune heads=6,ffn=1536,layers=0,2,4,6,8,10`` (``student.prune``) cuts the teacher, or
``student.path`` when given (prune a distilled student further, one round of iterative pruning).
Unlike a random-init student of the same shape, the result starts from the teacher's weights, and a
hidden-pruned one keeps the record of its residual dimensions, from which a recipe's projection to
the teacher's width starts as a selection instead of a random matrix (:func:`~alembert.models.prune.selection`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch

from alembert.errors import AlembertError
from alembert.models.importance import INPUTS, keep_top, model_outputs, score_units
from alembert.models.prune import KEY, Shape, check_request, heads_for, layout_of, prune
from alembert.students.base import Builder, BuiltStudent, Offer, Request


def _sentence_outputs(embedder):
    """An embedding run's importance: the sentence embedding its recipes compare."""

    def outputs(model, batch):
        kw = {k: batch[k] for k in INPUTS if k in batch}
        return {"embedding": embedder(**kw).embeddings}

    return outputs


@dataclass(frozen=True)
class Cut:
    """One round's cut of the model it is applied to: heads kept per layer, FFN neurons kept per layer
    (None: that width is not cut) and the layers kept (None: all)."""

    heads: int | None
    ffn: int | None
    layers: list[int] | None


def round_cut(shape: Shape, p, r: int) -> Cut:
    """Round ``r`` (1-based) of ``p.rounds`` applied to a model of ``shape``: the layers in the first round,
    heads and FFN neurons by the same factor every round (geometric, as iterative magnitude pruning
    schedules its sparsity): a model with ``n`` units and ``left`` rounds to go keeps
    ``n x (target / n) ** (1 / left)``, the target itself in the last round. One round is the one-shot cut."""
    left = p.rounds - r + 1
    target = heads_for(shape, p.heads, p.hidden, "--student-prune")

    def keep(n: int, goal: int | None) -> int | None:
        if goal is None or left == 1:
            return goal
        return max(goal, min(n, round(n * (goal / n) ** (1 / left))))

    return Cut(keep(shape.heads, target), keep(shape.ffn, p.ffn), p.layers if r == 1 else None)


def cut(source, c: Cut, data, batches: int, seed: int, outputs=None):
    """``source`` cut as ``c`` says, the units ranked by their Fisher importance on up to ``batches`` of
    ``data`` (dicts of tensors); ``outputs``: what the importance probes (default the model's own
    outputs). (the pruned model, the :class:`~alembert.models.importance.Scores`)."""
    with torch.enable_grad():
        scores = score_units(source, data, batches, seed=seed, outputs=outputs or model_outputs)
    if scores.batches == 0:
        raise AlembertError("--student-prune: the training data gave no batch to measure importance on")
    record = {
        "importance": "fisher" + (" (sentence embedding)" if outputs else ""),
        "batches": scores.batches,
        "examples": scores.examples,
        "seconds": round(scores.seconds, 2),
    }
    shape = Shape.of(source)
    heads = c.heads if c.heads != shape.heads else None  # a width already at its round's size is not cut again
    ffn = c.ffn if c.ffn != shape.ffn else None
    return prune(source, keep_top(scores, source, heads, ffn, c.layers, record)), scores


def describe(name: str, shape: Shape, model, layers, scores, sentence: bool, rounds: str = "") -> str:
    """The words plans, ``metrics.json`` and the card show for ``model``, cut from ``name`` of ``shape``
    (``layers``: the layers of ``name`` it kept)."""
    c = model.config
    parts = []
    if c.num_hidden_layers != shape.layers:
        parts.append(f"layers {','.join(map(str, layers))} of {shape.layers}")
    if c.num_attention_heads != shape.heads:
        parts.append(f"{c.num_attention_heads}/{shape.heads} heads, hidden {c.hidden_size}/{shape.hidden}")
    ffn = getattr(c, layout_of(model).ffn_key)
    if ffn != shape.ffn:
        parts.append(f"FFN {ffn}/{shape.ffn}")
    return (
        f"pruned from {name}{rounds}: {', '.join(parts) or 'nothing cut'}; units ranked by Fisher importance of gates"
        f"{' on the sentence embedding' if sentence else ''} over {scores.batches} training batches "
        f"({scores.examples} texts, {scores.seconds:.1f} s{' each round' if rounds else ''})"
    )


def recut(model, p, r: int, data, seed: int, name: str) -> BuiltStudent:
    """Round ``r`` (2, 3, ...) of ``p`` (the ``student.prune`` section) in a run: ``model``, the student
    after the previous round's distillation, re-scored on ``data`` (a :class:`StudentData`) and cut by
    :func:`round_cut`. The config record composes, so the kept units stay in the first model's indices
    and the description reads against that model's shape (``name``: the first model)."""
    model.eval()
    student, _ = cut(model, round_cut(Shape.of(model), p, r), data.batches, p.batches, seed)
    return BuiltStudent(student.train(), round_description(student, p, r, name), "model")


def round_description(model, p, r: int, name: str) -> str:
    """The description of ``model`` after round ``r`` of ``p.rounds``, read from its config record (the
    first model's shape and the last cut's scoring), so a resumed run says what an uninterrupted one says."""
    rec = getattr(model.config, KEY)
    first = rec["from"]
    shape = Shape(first["layers"], first["heads"], first["hidden"] // first["heads"], first["hidden"], first["ffn"])
    scores = SimpleNamespace(batches=rec["batches"], examples=rec["examples"], seconds=rec["seconds"])
    rounds = f" in {p.rounds} rounds of cut-then-distil" if r == p.rounds else f" (round {r} of {p.rounds})"
    return describe(name, shape, model, rec["layers"], scores, False, rounds)


class Prune(Builder):
    name = "prune"
    needs_data = True
    section = "prune"

    def check(self, request: Request) -> None:
        p = request.spec.prune
        if p is None:
            raise AlembertError(
                "student builder 'prune' needs what to cut: --student-prune heads=K,ffn=N[,layers=0,2,...]"
            )
        if p.heads is None and p.hidden is None and p.ffn is None and p.layers is None:
            raise AlembertError("--student-prune cuts nothing: give heads=K (or hidden=N), ffn=N and/or layers=0,2,...")
        if p.rounds > 1 and not request.rounds:
            raise AlembertError(
                f"student.prune.rounds {p.rounds}: the later rounds are cut between the stages of a run (distill, "
                "distill-general on raw text); here the student is cut once: leave rounds at 1"
            )
        if p.rounds > 1 and p.heads is None and p.hidden is None and p.ffn is None:
            raise AlembertError(
                f"--prune-rounds {p.rounds}: layers are cut at once, rounds shrink widths: give heads=K (or hidden=N) "
                "and/or ffn=N, or leave --prune-rounds at 1"
            )
        if request.spec.path:
            return  # the other model is read by build; its shape is checked there, still before any compute
        layout_of(request.teacher)
        check_request(Shape.of(request.teacher), p.heads, p.ffn, p.layers, "--student-prune", p.hidden)

    def build(self, request: Request) -> BuiltStudent:
        p = request.spec.prune
        if request.spec.path:
            source, origin, name = request.load(request.spec.path), "model", request.spec.path
            layout_of(source)
            check_request(Shape.of(source), p.heads, p.ffn, p.layers, "--student-prune", p.hidden)
        else:
            source, origin, name = request.teacher, "teacher", request.teacher_name
        shape = Shape.of(source)
        outputs = _sentence_outputs(request.embedder) if request.embedder is not None and origin == "teacher" else None
        student, scores = cut(source, round_cut(shape, p, 1), request.data.batches, p.batches, request.seed, outputs)
        rounds = f" (round 1 of {p.rounds})" if p.rounds > 1 else ""
        layers = p.layers or list(range(shape.layers))
        description = describe(name, shape, student, layers, scores, outputs is not None, rounds)
        return BuiltStudent(student, description, origin)

    @classmethod
    def offers(cls, config, sentence: bool) -> list[Offer]:
        """Half the depth (every other layer) with half the FFN, at full width and with half the heads
        (and so half the residual width): issue 36's two cuts that paid, on any teacher."""
        from alembert.students.layers import spread

        n, heads, hidden = config.num_hidden_layers, config.num_attention_heads, config.hidden_size
        ffn = getattr(config, "intermediate_size", None)
        if n < 2 or not ffn or ffn < 2:
            return []
        layers, depth = spread(n, n // 2), {"num_hidden_layers": n // 2, "intermediate_size": ffn // 2}
        found = [Offer(f"prune-{n // 2}l-ffn{ffn // 2}", {"prune": {"ffn": ffn // 2, "layers": layers}}, depth)]
        if heads >= 2:
            h = heads // 2
            found.append(
                Offer(
                    f"prune-{n // 2}l-{h}h-ffn{ffn // 2}",
                    {"prune": {"heads": h, "ffn": ffn // 2, "layers": layers}},
                    {**depth, "num_attention_heads": h, "hidden_size": h * (hidden // heads)},
                )
            )
        return found
