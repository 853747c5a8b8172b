"""MiniLM's attention KL and MiniLM/MiniLMv2 relation losses, against direct python loops."""

import math

import numpy as np
import pytest
import torch

from alembert.errors import AlembertError
from alembert.losses import attention_kl_loss, relation_loss

RNG = np.random.default_rng(17)
MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])  # (batch 3, seq 5)


def t(a, grad=False):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=grad)


# ------------------------------------------------------------ oracles (loops, no vectorising)


def loop_kl_mean(teacher_rows, student_rows, mask):
    """Mean over (batch, head, real query) of sum over real keys of p log(p / q).

    ``*_rows(b, h, q)`` return a dict {key: probability} over the real keys only."""
    total, count = 0.0, 0
    batch, seq = mask.shape
    heads = teacher_rows.heads
    for b in range(batch):
        for h in range(heads):
            for q in range(seq):
                if not mask[b, q]:
                    continue
                p, r = teacher_rows(b, h, q), student_rows(b, h, q)
                total += sum(p[k] * math.log(p[k] / r[k]) for k in p if p[k] > 0)
                count += 1
    return total / count


class MapRows:
    """Rows of given attention maps, restricted to real keys (no renormalising)."""

    def __init__(self, maps, mask):
        self.maps, self.mask, self.heads = maps, mask, maps.shape[1]

    def __call__(self, b, h, q):
        return {k: float(self.maps[b, h, q, k]) for k in range(self.mask.shape[1]) if self.mask[b, k]}


class RelationRows:
    """softmax over real keys of <x_h[q], x_h[k]> / sqrt(d_h), head h = the h-th slice of width d_h."""

    def __init__(self, x, mask, heads):
        self.x, self.mask, self.heads = x, mask, heads
        self.d = x.shape[-1] // heads

    def __call__(self, b, h, q):
        d = self.d
        vec = lambda i: self.x[b, i, h * d : (h + 1) * d]  # noqa: E731
        keys = [k for k in range(self.mask.shape[1]) if self.mask[b, k]]
        scores = {k: sum(float(a) * float(c) for a, c in zip(vec(q), vec(k), strict=True)) / math.sqrt(d) for k in keys}
        top = max(scores.values())
        z = sum(math.exp(s - top) for s in scores.values())
        return {k: math.exp(s - top) / z for k, s in scores.items()}


def masked_softmax_maps(scores, mask):
    """Attention maps as transformers makes them: padded keys get probability 0."""
    s = np.where(mask[:, None, None, :] == 1, scores, -np.inf)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def random_maps(heads=2, mask=MASK):
    b, s = mask.shape
    return masked_softmax_maps(RNG.normal(size=(b, heads, s, s)) * 2, mask)


# ------------------------------------------------------------ attention_kl_loss


def test_attention_kl_hand_computed():
    # one query, two keys: teacher [1/2, 1/2], student [1/4, 3/4]
    te = t([[[[0.5, 0.5], [0.5, 0.5]]]])
    s = t([[[[0.25, 0.75], [0.5, 0.5]]]])
    row0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert attention_kl_loss(s, te, None).item() == pytest.approx(row0 / 2)  # row 1 is 0
    assert attention_kl_loss(s, te, torch.tensor([[1, 1]])).item() == pytest.approx(row0 / 2)


@pytest.mark.parametrize("heads", [1, 3])
def test_attention_kl_matches_loop(heads):
    s, te = random_maps(heads), random_maps(heads)
    ref = loop_kl_mean(MapRows(te, MASK), MapRows(s, MASK), MASK)
    got = attention_kl_loss(t(s), t(te), torch.tensor(MASK)).item()
    assert got == pytest.approx(ref, rel=1e-10)
    full = np.ones_like(MASK)
    s_full, te_full = random_maps(heads, full), random_maps(heads, full)
    ref_full = loop_kl_mean(MapRows(te_full, full), MapRows(s_full, full), full)
    assert attention_kl_loss(t(s_full), t(te_full), None).item() == pytest.approx(ref_full, rel=1e-10)
    assert attention_kl_loss(t(s_full), t(te_full), torch.tensor(full)).item() == pytest.approx(ref_full, rel=1e-10)


def test_attention_kl_ignores_padded_queries_and_keys():
    s, te = random_maps(), random_maps()
    got = attention_kl_loss(t(s), t(te), torch.tensor(MASK)).item()
    pad_q = (MASK == 0)[:, None, :, None]
    pad_k = (MASK == 0)[:, None, None, :]
    pad = np.broadcast_to(pad_q | pad_k, s.shape)
    s2, te2 = s.copy(), te.copy()
    s2[pad] = RNG.uniform(size=pad.sum())
    te2[pad] = RNG.uniform(size=pad.sum())
    assert attention_kl_loss(t(s2), t(te2), torch.tensor(MASK)).item() == pytest.approx(got, rel=1e-12)
    # even garbage there leaks neither into the value nor into the gradient
    s2[pad], te2[pad] = np.nan, np.inf
    s_grad = t(s2, grad=True)
    loss = attention_kl_loss(s_grad, t(te2), torch.tensor(MASK))
    loss.backward()
    assert loss.item() == pytest.approx(got, rel=1e-12)
    assert torch.isfinite(s_grad.grad).all() and (s_grad.grad[torch.from_numpy(pad.copy())] == 0).all()
    assert got != pytest.approx(attention_kl_loss(t(s), t(te), None).item())  # the mask matters


def test_attention_kl_identical_is_zero_even_with_exact_zeros():
    te = random_maps()
    te[0, 0, 1, :] = [0.0, 1.0, 0.0, 0.0, 0.0]  # 0·log 0 on real keys
    loss = attention_kl_loss(t(te), t(te), torch.tensor(MASK))
    assert loss.item() == 0.0


def test_attention_kl_teacher_zero_and_student_underflow_are_finite():
    s, te = random_maps(), random_maps()
    te[1, 0, 2, :] = [0.0, 0.5, 0.5, 0.0, 0.0]  # teacher 0 where the student is not
    ref = loop_kl_mean(MapRows(te, MASK), MapRows(s, MASK), MASK)
    assert attention_kl_loss(t(s), t(te), torch.tensor(MASK)).item() == pytest.approx(ref, rel=1e-10)
    # student 0 where the teacher is not: a big term, not inf or NaN
    s[1, 0, 3, :] = [0.0, 1.0, 0.0, 0.0, 0.0]
    loss = attention_kl_loss(t(s), t(te), torch.tensor(MASK))
    assert torch.isfinite(loss) and loss.item() > 1.0


def test_attention_kl_gradient_reaches_student_only():
    s, te = t(random_maps(), grad=True), t(random_maps(), grad=True)
    attention_kl_loss(s, te, torch.tensor(MASK)).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert te.grad is None


def test_attention_kl_refuses_head_mismatch_in_one_line():
    with pytest.raises(AlembertError, match=r"equal head counts.*student 4 heads and teacher 12") as err:
        attention_kl_loss(torch.zeros(1, 4, 3, 3), torch.zeros(1, 12, 3, 3), torch.ones(1, 3))
    assert "\n" not in str(err.value)
    with pytest.raises(AlembertError, match="batch, heads, query, key"):
        attention_kl_loss(torch.zeros(4, 3, 3), torch.zeros(4, 3, 3), None)
    with pytest.raises(AlembertError, match="mask shape"):
        attention_kl_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3), torch.ones(1, 4))


# ------------------------------------------------------------ relation_loss


@pytest.mark.parametrize(
    ("ws", "wt", "heads"),
    [(8, 8, 2), (8, 12, 4), (12, 8, 2), (6, 12, 3), (8, 16, 1)],
)
def test_relation_matches_loop(ws, wt, heads):
    xs, xt = RNG.normal(size=(3, 5, ws)), RNG.normal(size=(3, 5, wt))
    ref = loop_kl_mean(RelationRows(xt, MASK, heads), RelationRows(xs, MASK, heads), MASK)
    got = relation_loss(t(xs), t(xt), torch.tensor(MASK), heads).item()
    assert got == pytest.approx(ref, rel=1e-10)
    full = np.ones_like(MASK)
    ref_full = loop_kl_mean(RelationRows(xt, full, heads), RelationRows(xs, full, heads), full)
    assert relation_loss(t(xs), t(xt), None, heads).item() == pytest.approx(ref_full, rel=1e-10)


def test_relation_ignores_padded_positions():
    xs, xt = RNG.normal(size=(3, 5, 8)), RNG.normal(size=(3, 5, 12))
    got = relation_loss(t(xs), t(xt), torch.tensor(MASK), 4).item()
    xs2, xt2 = xs.copy(), xt.copy()
    xs2[MASK == 0] = RNG.normal(size=((MASK == 0).sum(), 8)) * 50
    xt2[MASK == 0] = RNG.normal(size=((MASK == 0).sum(), 12)) * 50
    assert relation_loss(t(xs2), t(xt2), torch.tensor(MASK), 4).item() == pytest.approx(got, rel=1e-12)
    assert got != pytest.approx(relation_loss(t(xs), t(xt), None, 4).item())


def test_relation_identical_relations_give_zero_across_widths():
    xs = RNG.normal(size=(3, 5, 8))
    assert relation_loss(t(xs), t(xs), torch.tensor(MASK), 2).item() == pytest.approx(0.0, abs=1e-12)
    # a teacher twice as wide whose head h is [2^(1/4) * student head h, zeros]: the dot products
    # grow by sqrt(2) and so does sqrt(d), so every relation is the same; only a per-head split
    # with each side's own sqrt(d_h) gives 0 here
    heads, d = 2, 4
    xt = np.zeros((3, 5, 16))
    for h in range(heads):
        xt[..., h * 2 * d : h * 2 * d + d] = 2**0.25 * xs[..., h * d : (h + 1) * d]
    assert relation_loss(t(xs), t(xt), torch.tensor(MASK), heads).item() == pytest.approx(0.0, abs=1e-12)
    # the same teacher with its two heads swapped: head by head the relations now differ, while
    # one relation head (the whole vector) cannot tell the order of the slices
    swapped = np.concatenate([xt[..., 2 * d :], xt[..., : 2 * d]], axis=-1)
    assert relation_loss(t(xs), t(swapped), torch.tensor(MASK), heads).item() > 1e-3
    assert relation_loss(t(xs), t(swapped), torch.tensor(MASK), 1).item() == pytest.approx(0.0, abs=1e-12)


def test_relation_of_x_with_itself_is_the_attention_kl_of_its_maps():
    # MiniLM's attention maps are softmax(q kᵀ/√d); with q = k = x they are x's relation
    heads, xs, xt = 2, RNG.normal(size=(3, 5, 8)), RNG.normal(size=(3, 5, 8))

    def maps(x):
        xh = x.reshape(3, 5, heads, 4).transpose(0, 2, 1, 3)
        return masked_softmax_maps(xh @ xh.transpose(0, 1, 3, 2) / 2.0, MASK)

    a = attention_kl_loss(t(maps(xs)), t(maps(xt)), torch.tensor(MASK)).item()
    assert relation_loss(t(xs), t(xt), torch.tensor(MASK), heads).item() == pytest.approx(a, rel=1e-9)


def test_relation_gradient_reaches_student_only():
    xs, xt = t(RNG.normal(size=(3, 5, 8)), grad=True), t(RNG.normal(size=(3, 5, 12)), grad=True)
    relation_loss(xs, xt, torch.tensor(MASK), 4).backward()
    assert xs.grad is not None and torch.isfinite(xs.grad).all()
    assert xs.grad[torch.tensor(MASK) == 1].abs().sum() > 0
    assert (xs.grad[torch.tensor(MASK) == 0] == 0).all()  # padded positions get no gradient
    assert xt.grad is None


def test_relation_extreme_scores_and_empty_mask_stay_finite():
    xs, xt = t(RNG.normal(size=(3, 5, 8)) * 100, grad=True), t(RNG.normal(size=(3, 5, 8)) * 100)
    loss = relation_loss(xs, xt, torch.tensor(MASK), 2)  # near one-hot relations: 0·log 0 terms
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(xs.grad).all()
    empty = relation_loss(xs, xt, torch.zeros(3, 5), 2)
    assert empty.item() == 0.0
    bf16 = relation_loss(xs.detach().bfloat16(), xt.bfloat16(), torch.tensor(MASK), 2)
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16)


def test_relation_keeps_float32_scores_under_autocast():
    xs = torch.tensor(RNG.normal(size=(3, 5, 8)) * 3, dtype=torch.float32)
    xt = torch.tensor(RNG.normal(size=(3, 5, 12)) * 3, dtype=torch.float32)
    plain = relation_loss(xs, xt, torch.tensor(MASK), 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = relation_loss(xs, xt, torch.tensor(MASK), 4)
    assert auto.dtype == torch.float32
    assert auto.item() == pytest.approx(plain.item(), rel=1e-6)


def test_relation_refuses_bad_widths_and_heads_in_one_line():
    with pytest.raises(AlembertError, match="student width 10 is not divisible by 4") as err:
        relation_loss(torch.zeros(1, 3, 10), torch.zeros(1, 3, 8), None, 4)
    assert "\n" not in str(err.value)
    with pytest.raises(AlembertError, match="teacher width 10 is not divisible by 4"):
        relation_loss(torch.zeros(1, 3, 8), torch.zeros(1, 3, 10), None, 4)
    for bad in (0, -2, 2.0, True):
        with pytest.raises(AlembertError, match="num_heads must be a positive integer"):
            relation_loss(torch.zeros(1, 3, 8), torch.zeros(1, 3, 8), None, bad)
    with pytest.raises(AlembertError, match="batch or sequence length"):
        relation_loss(torch.zeros(1, 3, 8), torch.zeros(1, 4, 8), None, 2)
    with pytest.raises(AlembertError, match="batch, seq, width"):
        relation_loss(torch.zeros(1, 2, 3, 8), torch.zeros(1, 2, 3, 8), None, 2)
