"""embed_rkd (Park et al.'s distance-wise relational KD): the loss against a direct loop,
its invariances, gradients, and a narrow student trained with it end to end. This file, the
loss, the term and the recipe are the whole change that added it (no registry edited)."""

import json

import numpy as np
import pytest
import torch
from conftest import run_cli
from test_embedding import corpus, embed_cmd, st_folder

from alembert.distill.recipe import load_recipe
from alembert.errors import AlembertError
from alembert.losses.rkd import rkd_distance_loss


@pytest.fixture(scope="module")
def tiny_st(tmp_path_factory, tiny_bert):
    return st_folder(tmp_path_factory.mktemp("tiny-st-rkd"), tiny_bert, "mean", True)


def reference(s: np.ndarray, t: np.ndarray, delta: float = 1.0) -> float:
    """Park et al.'s RKD-D written out pair by pair (float64)."""
    n = len(s)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    ds = np.array([np.linalg.norm(s[i] - s[j]) for i, j in pairs])
    dt = np.array([np.linalg.norm(t[i] - t[j]) for i, j in pairs])
    ds, dt = ds / ds.mean(), dt / dt.mean()
    diff = np.abs(ds - dt)
    return float(np.mean(np.where(diff < delta, 0.5 * diff**2, delta * (diff - 0.5 * delta))))


@pytest.mark.parametrize("delta", [1.0, 0.05])
def test_matches_a_pair_by_pair_reference_across_widths(delta):
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(7, 5, generator=g), torch.randn(7, 12, generator=g) * 3  # widths differ
    assert float(rkd_distance_loss(s, t, delta)) == pytest.approx(
        reference(s.double().numpy(), t.double().numpy(), delta), rel=1e-5
    )


def test_scale_and_rotation_do_not_change_it():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g))
    base = float(rkd_distance_loss(s, t))
    assert base > 0.01
    assert float(rkd_distance_loss(4.0 * s @ q, t)) == pytest.approx(base, rel=1e-5)
    assert float(rkd_distance_loss(t @ q * 0.1, t)) == pytest.approx(0.0, abs=1e-10)


def test_gradients_reach_only_the_student_and_a_single_text_gives_zero():
    s = torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 6, requires_grad=True)
    rkd_distance_loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None
    one = torch.randn(1, 3, requires_grad=True)
    value = rkd_distance_loss(one, torch.randn(1, 6))
    value.backward()
    assert value.item() == 0.0 and one.grad is not None


def test_mismatched_batches_are_a_clear_error():
    with pytest.raises(AlembertError, match="one batch"):
        rkd_distance_loss(torch.randn(3, 4), torch.randn(2, 4))


@pytest.mark.cli
def test_recipe_trains_a_narrow_student_without_projection(tmp_path, tiny_st, capsys):
    from sentence_transformers import SentenceTransformer

    assert [t.loss for t in load_recipe("embed-rkd").stages[0].losses] == ["embed_rkd"]
    out = tmp_path / "rkd"
    cmd = embed_cmd(
        tiny_st,
        corpus(tmp_path),
        out,
        "--student-config",
        "num_layers=2,hidden_size=16,intermediate_size=32,num_heads=2",
    )
    cmd[cmd.index("embed-mse")] = "embed-rkd"
    code, _, err = run_cli(cmd, capsys)
    assert code == 0, err
    assert SentenceTransformer(str(out), device="cpu").encode(["a test"]).shape == (1, 16)  # no Dense: its own width
    losses = [
        json.loads(line)["embed_rkd"] for line in (out / "log.jsonl").read_text().splitlines() if "embed_rkd" in line
    ]
    assert len(losses) == 8 and all(np.isfinite(losses))
