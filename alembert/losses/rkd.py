"""Relational KD, distance-wise: the student keeps the teacher's pairwise distances.

Park et al. 2019, "Relational Knowledge Distillation" (RKD-D). Within a batch, every pair
of sentence embeddings has a distance; dividing by the batch's mean distance makes the
distances scale-free, so the student is asked for the teacher's *shape* of the batch, not
its coordinates or its scale. Nothing compares a student vector with a teacher vector, so
the two widths may differ and no projection is learnt: a 312-wide student can learn from
a 768-wide teacher directly, which is what "relations for students of any shape" means
for sentence embeddings. (``embed_sim`` transfers the same geometry through softmaxed
cosines; this one through distances, with a Huber penalty that is robust to outlier pairs.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alembert.errors import AlembertError


def _normalised_distances(x: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances ``(batch, batch)`` divided by their mean over pairs i != j."""
    d = torch.cdist(x.float(), x.float())
    off = ~torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
    return d / d[off].mean().clamp_min(1e-12)


def rkd_distance_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Huber loss between the student's and the teacher's mean-normalised pairwise distances.

    Shapes: ``student_emb`` ``(batch, d_s)``, ``teacher_emb`` ``(batch, d_t)``; the widths may
    differ. Reduction: mean over the ``batch * (batch - 1)`` ordered pairs i != j (the
    diagonal, zero on both sides, is left out). ``delta`` is the Huber threshold (Park et
    al.: 1). A batch of one text has no pair and gives a graph-connected 0. The teacher side
    is detached. Scaling either side by a constant leaves the value unchanged.

    Example::

        >>> t = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
        >>> float(rkd_distance_loss(3 * t, t))  # the same shape, three times larger
        0.0
    """
    if student_emb.dim() != 2 or teacher_emb.dim() != 2 or student_emb.shape[0] != teacher_emb.shape[0]:
        raise AlembertError(
            f"rkd distance loss: expected (batch, dim) embeddings of one batch, got "
            f"{tuple(student_emb.shape)} and {tuple(teacher_emb.shape)}"
        )
    n = student_emb.shape[0]
    if n < 2:
        return student_emb.sum() * 0.0
    off = ~torch.eye(n, dtype=torch.bool, device=student_emb.device)
    s = _normalised_distances(student_emb)[off]
    t = _normalised_distances(teacher_emb.detach())[off]
    return F.huber_loss(s, t, delta=delta)
