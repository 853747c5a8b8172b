"""Losses checked against hand-computed numbers and independent numpy formulas."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from alembert.errors import AlembertError
from alembert.losses import (
    attention_loss,
    cosine_loss,
    hard_label_loss,
    hidden_mse_loss,
    kd_loss,
    mlm_loss,
    pkd_loss,
)

RNG = np.random.default_rng(0)


def t(a, grad=False):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=grad)


def np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_kl_rows(p, q):
    """KL(p || q) along the last axis."""
    return (p * (np.log(p) - np.log(q))).sum(axis=-1)


# ---------------------------------------------------------------- kd


def test_kd_hand_computed_two_classes():
    # teacher softmax([ln 3, 0]) = [0.75, 0.25]; student softmax([0, 0]) = [0.5, 0.5]
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert kl == pytest.approx(0.130812036, abs=1e-9)
    assert kd_loss(t([[0.0, 0.0]]), t([[math.log(3), 0.0]])).item() == pytest.approx(kl)


def test_kd_temperature_squared_scaling():
    # at T=2 the teacher [2 ln 3, 0] gives [0.75, 0.25] again: loss = 4 x the same KL
    loss = kd_loss(t([[0.0, 0.0]]), t([[2 * math.log(3), 0.0]]), temperature=2.0)
    assert loss.item() == pytest.approx(4 * 0.130812036, abs=1e-8)


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_kd_matches_numpy_batch_mean(temperature):
    s, te = RNG.normal(size=(4, 5)), RNG.normal(size=(4, 5))
    ref = np_kl_rows(np_softmax(te / temperature), np_softmax(s / temperature)).mean()
    got = kd_loss(t(s), t(te), temperature=temperature).item()
    assert got == pytest.approx(ref * temperature**2)


def test_kd_sequence_mask_averages_over_unmasked_positions():
    s, te = RNG.normal(size=(2, 3, 6)), RNG.normal(size=(2, 3, 6))
    mask = np.array([[1, 0, 1], [0, 0, 1]])
    kl = np_kl_rows(np_softmax(te / 2), np_softmax(s / 2))  # (2, 3)
    ref = 4 * kl[mask == 1].mean()
    got = kd_loss(t(s), t(te), 2.0, mask=torch.tensor(mask)).item()
    assert got == pytest.approx(ref)
    assert got != pytest.approx(4 * kl.mean())  # differs from the plain mean
    s2, te2 = s.copy(), te.copy()
    s2[mask == 0] += 5.0
    te2[mask == 0] -= 3.0
    assert kd_loss(t(s2), t(te2), 2.0, mask=torch.tensor(mask)).item() == pytest.approx(got)
    # bool masks (labels != -100) work the same
    assert kd_loss(t(s), t(te), 2.0, mask=torch.tensor(mask == 1)).item() == pytest.approx(got)


def test_kd_regression_is_mse_without_temperature():
    assert kd_loss(t([[1.0], [2.0]]), t([[0.0], [4.0]])).item() == pytest.approx(2.5)
    assert kd_loss(t([1.0, 2.0]), t([0.0, 4.0]), temperature=5.0).item() == pytest.approx(2.5)


def test_kd_errors():
    with pytest.raises(AlembertError, match="different shapes"):
        kd_loss(t([[0.0, 1.0]]), t([[0.0, 1.0, 2.0]]))
    with pytest.raises(AlembertError, match="temperature"):
        kd_loss(t([[0.0, 1.0]]), t([[0.0, 1.0]]), temperature=0)
    with pytest.raises(AlembertError, match="mask shape"):
        kd_loss(t(np.zeros((2, 3, 4))), t(np.zeros((2, 3, 4))), mask=torch.ones(2, 4))


# ---------------------------------------------------------------- ce / mlm


def test_hard_label_cross_entropy_hand_computed_and_ignore_index():
    assert hard_label_loss(t([[0.0, 0.0]]), torch.tensor([0])).item() == pytest.approx(math.log(2))
    logits = t([[0.0, 0.0], [math.log(3), 0.0]])
    loss = hard_label_loss(logits, torch.tensor([-100, 0]))
    assert loss.item() == pytest.approx(-math.log(0.75))


def test_hard_label_cross_entropy_matches_numpy():
    x = RNG.normal(size=(5, 3))
    y = np.array([0, 2, 1, 1, 0])
    ref = -np.log(np_softmax(x)[np.arange(5), y]).mean()
    assert hard_label_loss(t(x), torch.tensor(y)).item() == pytest.approx(ref)


def test_hard_label_regression_mse():
    labels = torch.tensor([1.0, 3.0])
    assert hard_label_loss(t([[0.0], [5.0]]), labels).item() == pytest.approx(2.5)
    assert hard_label_loss(t([0.0, 5.0]), labels).item() == pytest.approx(2.5)


def test_hard_label_errors():
    with pytest.raises(AlembertError, match="integer class ids"):
        hard_label_loss(t([[0.0, 1.0]]), torch.tensor([0.5]))
    with pytest.raises(AlembertError, match="do not fit"):
        hard_label_loss(t([[0.0, 1.0]]), torch.tensor([0, 1]))


def test_mlm_loss_matches_numpy_and_handles_no_targets():
    x = RNG.normal(size=(2, 3, 7))
    y = np.array([[-100, 4, -100], [6, -100, 0]])
    p = np_softmax(x)
    keep = y != -100
    ref = -np.log(p[keep, y[keep]]).mean()
    assert mlm_loss(t(x), torch.tensor(y)).item() == pytest.approx(ref)
    x_t = t(x, grad=True)
    none = mlm_loss(x_t, torch.full((2, 3), -100))
    assert none.item() == 0.0
    none.backward()
    assert torch.isfinite(x_t.grad).all()


# ---------------------------------------------------------------- cosine


def test_cosine_hand_computed_with_padding():
    s = t([[[1.0, 0.0], [1.0, 1.0], [9.0, -3.0]]])
    te = t([[[0.0, 1.0], [1.0, 0.0], [-2.0, 7.0]]])
    mask = torch.tensor([[1, 1, 0]])
    expected = (1.0 + (1 - 1 / math.sqrt(2))) / 2  # 0.646447
    assert cosine_loss(s, te, mask).item() == pytest.approx(expected)
    assert cosine_loss(s, te).item() != pytest.approx(expected)  # padding would count
    s2 = s.detach().clone()
    s2[0, 2] = t([0.1, 100.0])
    assert cosine_loss(s2, te, mask).item() == pytest.approx(expected)


def test_cosine_matches_numpy():
    s, te = RNG.normal(size=(2, 4, 5)), RNG.normal(size=(2, 4, 5))
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]])
    cos = (s * te).sum(-1) / (np.linalg.norm(s, axis=-1) * np.linalg.norm(te, axis=-1))
    ref = (1 - cos)[mask == 1].mean()
    assert cosine_loss(t(s), t(te), torch.tensor(mask)).item() == pytest.approx(ref)


def test_cosine_width_mismatch():
    with pytest.raises(AlembertError, match="student 4 and teacher 8"):
        cosine_loss(torch.zeros(1, 2, 4), torch.zeros(1, 2, 8), torch.ones(1, 2))


# ---------------------------------------------------------------- hidden mse


def test_hidden_mse_hand_computed_with_padding():
    s = t([[[1.0, 2.0], [3.0, 4.0]]])
    te = torch.zeros(1, 2, 2, dtype=torch.float64)
    assert hidden_mse_loss(s, te, torch.tensor([[1, 0]])).item() == pytest.approx(2.5)
    assert hidden_mse_loss(s, te).item() == pytest.approx(7.5)


def test_hidden_mse_with_projection_matches_numpy():
    s, te = RNG.normal(size=(2, 3, 2)), RNG.normal(size=(2, 3, 4))
    mask = np.array([[1, 1, 0], [1, 0, 0]])
    proj = nn.Linear(2, 4).double()
    w, b = proj.weight.detach().numpy(), proj.bias.detach().numpy()
    ref = ((s @ w.T + b - te) ** 2)[mask == 1].mean()  # mean over real positions and H
    got = hidden_mse_loss(t(s), t(te), torch.tensor(mask), projection=proj)
    assert got.item() == pytest.approx(ref)
    got.backward()
    assert proj.weight.grad is not None and proj.weight.grad.abs().sum() > 0


def test_hidden_mse_width_mismatch_needs_projection():
    with pytest.raises(AlembertError, match=r"student width 312 != teacher width 768.*projection"):
        hidden_mse_loss(torch.zeros(1, 2, 312), torch.zeros(1, 2, 768), torch.ones(1, 2))
    with pytest.raises(AlembertError, match="projection's output"):
        hidden_mse_loss(torch.zeros(1, 2, 4), torch.zeros(1, 2, 8), projection=nn.Linear(4, 6))


# ---------------------------------------------------------------- attention


def test_attention_hand_computed_only_real_query_and_key():
    s = t([[[[0.5, 0.5], [0.3, 0.7]]]])  # (1 batch, 1 head, 2, 2)
    te = t([[[[0.25, 0.75], [0.9, 0.1]]]])
    # with mask [1, 0] only entry (0, 0) counts: (0.5 - 0.25)^2
    assert attention_loss(s, te, torch.tensor([[1, 0]])).item() == pytest.approx(0.0625)


def test_attention_matches_numpy_loop():
    s, te = RNG.random(size=(2, 3, 4, 4)), RNG.random(size=(2, 3, 4, 4))
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]])
    vals = [
        (s[b, h, q, k] - te[b, h, q, k]) ** 2
        for b in range(2)
        for h in range(3)
        for q in range(4)
        for k in range(4)
        if mask[b, q] and mask[b, k]
    ]
    got = attention_loss(t(s), t(te), torch.tensor(mask)).item()
    assert got == pytest.approx(np.mean(vals))
    assert got != pytest.approx(((s - te) ** 2).mean())


def test_attention_head_count_mismatch():
    with pytest.raises(AlembertError, match="student 4 heads and teacher 12 heads"):
        attention_loss(torch.zeros(1, 4, 3, 3), torch.zeros(1, 12, 3, 3), torch.ones(1, 3))


# ---------------------------------------------------------------- pkd


def test_pkd_hand_computed():
    # [3, 4] -> [0.6, 0.8]; [1, 0] stays; mse = (0.4^2 + 0.8^2) / 2 = 0.4
    assert pkd_loss([t([[3.0, 4.0]])], [t([[1.0, 0.0]])]).item() == pytest.approx(0.4)


def test_pkd_matches_numpy_and_is_scale_invariant():
    s = [RNG.normal(size=(2, 4)) for _ in range(3)]
    te = [RNG.normal(size=(2, 4)) for _ in range(3)]
    ss, tt = np.stack(s, axis=1), np.stack(te, axis=1)  # (B, n_pairs, H)
    ss = ss / np.linalg.norm(ss, axis=-1, keepdims=True)
    tt = tt / np.linalg.norm(tt, axis=-1, keepdims=True)
    ref = ((ss - tt) ** 2).mean()
    assert pkd_loss([t(x) for x in s], [t(x) for x in te]).item() == pytest.approx(ref)
    assert pkd_loss([t(5 * x) for x in s], [t(x) for x in te]).item() == pytest.approx(ref)


def test_pkd_errors():
    with pytest.raises(AlembertError, match="student 4 and teacher 8"):
        pkd_loss([torch.zeros(2, 4)], [torch.zeros(2, 8)])
    with pytest.raises(AlembertError, match="2 student layers but 1 teacher"):
        pkd_loss([torch.zeros(2, 4)] * 2, [torch.zeros(2, 4)])


# ---------------------------------------------------------------- gradients


MASK = torch.tensor([[1, 1, 0]])
GRAD_CASES = {  # each takes student and teacher tensors of shape (3, 4)
    "kd": lambda s, te: kd_loss(s, te, 2.0),
    "kd_regression": lambda s, te: kd_loss(s[:, :1], te[:, :1]),
    "ce": lambda s, te: hard_label_loss(s, torch.tensor([0, 3, 1])),
    "cosine": lambda s, te: cosine_loss(s[None], te[None], MASK),
    "hidden_mse": lambda s, te: hidden_mse_loss(s[None], te[None], MASK),
    "attention": lambda s, te: attention_loss(s[None, None, :, :3], te[None, None, :, :3], MASK),
    "pkd": lambda s, te: pkd_loss([s[0:1], s[1:2]], [te[0:1], te[1:2]]),
}


@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_gradient_reaches_student_not_teacher(name):
    r = np.random.default_rng(1)
    s = t(r.normal(size=(3, 4)), grad=True)
    te = t(r.normal(size=(3, 4)), grad=True)
    GRAD_CASES[name](s, te).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert te.grad is None
