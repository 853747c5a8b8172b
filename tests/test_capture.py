"""Queries, keys and values recorded by hooks, checked against the projections applied by hand."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from alembert.errors import AlembertError
from alembert.losses import relation_loss
from alembert.models.capture import QKV_PATHS, capture_keys, capture_qkv

LAYERS = 3


def tiny_config(family: str, **extra):
    kw = dict(
        vocab_size=100,
        hidden_size=16,
        num_hidden_layers=LAYERS,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    if family == "distilbert":
        kw = dict(
            vocab_size=100,
            dim=16,
            n_layers=LAYERS,
            n_heads=2,
            hidden_dim=32,
            max_position_embeddings=64,
        )
    if family == "electra":
        kw["embedding_size"] = 8  # ELECTRA projects its embeddings up to the hidden size
    return AutoConfig.for_model(family, **{**kw, **extra})


def tiny_model(family: str, head: bool = False, seed: int = 0, **extra):
    torch.manual_seed(seed)
    cls = AutoModelForSequenceClassification if head else AutoModel
    return cls.from_config(tiny_config(family, **extra)).eval()


# Each family's projections of layer i (0-based), spelled out by attribute rather than read
# from QKV_PATHS, so a wrong row in the table cannot agree with itself.
PROJECTIONS = {
    "bert": lambda base, i: [getattr(base.encoder.layer[i].attention.self, n) for n in ("query", "key", "value")],
    "roberta": lambda base, i: [getattr(base.encoder.layer[i].attention.self, n) for n in ("query", "key", "value")],
    "electra": lambda base, i: [getattr(base.encoder.layer[i].attention.self, n) for n in ("query", "key", "value")],
    "distilbert": lambda base, i: [
        getattr(base.transformer.layer[i].attention, n) for n in ("q_lin", "k_lin", "v_lin")
    ],
    "mpnet": lambda base, i: [getattr(base.encoder.layer[i].attention.attn, n) for n in ("q", "k", "v")],
}

BATCH = dict(
    input_ids=torch.tensor([[2, 17, 33, 48, 5, 0], [2, 61, 9, 72, 44, 90]]),
    attention_mask=torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]]),
)


def hook_count(model) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_every_listed_family_is_tested():
    assert set(QKV_PATHS) == set(PROJECTIONS)


@pytest.mark.parametrize("head", [False, True], ids=["AutoModel", "ForSequenceClassification"])
@pytest.mark.parametrize("family", sorted(PROJECTIONS))
def test_captured_qkv_is_the_projection_of_the_layer_input(family, head):
    model = tiny_model(family, head)
    layers = [1, 3]
    with torch.no_grad(), capture_qkv(model, layers) as qkv:
        out = model(**BATCH, output_hidden_states=True)
    assert set(qkv) == {(layer, kind) for layer in layers for kind in "qkv"}
    for layer in layers:
        x = out.hidden_states[layer - 1]  # the input of the layer-th transformer layer
        for kind, linear in zip("qkv", PROJECTIONS[family](model.base_model, layer - 1), strict=True):
            expected = F.linear(x, linear.weight, linear.bias)
            got = qkv[(layer, kind)]
            assert got.shape == (2, 6, 16)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # and not some other layer's: layers 1 and 3 see different inputs and weights
    assert not torch.allclose(qkv[(1, "q")], qkv[(3, "q")])


def test_which_selects_kinds_and_eager_and_sdpa_agree():
    captured = {}
    for attn in ("eager", "sdpa"):
        model = tiny_model("bert", attn_implementation=attn)
        with torch.no_grad(), capture_qkv(model, [2], which=("v",)) as qkv:
            model(**BATCH)
        assert list(qkv) == [(2, "v")]
        captured[attn] = qkv[(2, "v")]
    torch.testing.assert_close(captured["eager"], captured["sdpa"])


def test_hooks_are_removed_on_exit_and_on_error():
    model = tiny_model("bert", head=True)
    before = hook_count(model)
    with capture_qkv(model, [1, 2, 3]) as qkv:
        assert hook_count(model) == before + 9
        model(**BATCH)
    assert hook_count(model) == before
    seen = dict(qkv)
    model(**BATCH)  # after the block nothing is recorded any more
    assert all(qkv[k] is seen[k] for k in seen) and len(qkv) == len(seen)
    with pytest.raises(RuntimeError, match="boom"):
        with capture_qkv(model, [1]):
            assert hook_count(model) == before + 3
            raise RuntimeError("boom")
    assert hook_count(model) == before


def test_capture_keys_records_exactly_the_keys_asked():
    model = tiny_model("bert")
    with torch.no_grad(), capture_keys(model, [(1, "v"), (3, "q"), (3, "k"), (3, "q")]) as got:
        assert hook_count(model) == 3
        model(**BATCH)
    with torch.no_grad(), capture_qkv(model, [1, 3]) as every:
        model(**BATCH)
    assert sorted(got) == [(1, "v"), (3, "k"), (3, "q")] and hook_count(model) == 0
    for key, value in got.items():
        torch.testing.assert_close(value, every[key])
    with capture_keys(SimpleNamespace(), []) as none:  # no keys: no hooks, not even a family check
        assert none == {}
    with pytest.raises(AlembertError, match="out of range 1..3"):
        with capture_keys(model, [(4, "q")]):
            pass


def test_teacher_without_grad_student_with_grad():
    teacher = tiny_model("bert", seed=0)
    student = tiny_model("bert", seed=1, num_hidden_layers=2, hidden_size=8, intermediate_size=16)
    with torch.no_grad(), capture_qkv(teacher, [LAYERS]) as t_qkv:
        teacher(**BATCH)
    with capture_qkv(student, [2]) as s_qkv:
        student(**BATCH)
    assert not any(v.requires_grad for v in t_qkv.values())
    assert all(v.requires_grad for v in s_qkv.values())
    mask = BATCH["attention_mask"]
    loss = sum(relation_loss(s_qkv[(2, k)], t_qkv[(LAYERS, k)], mask, 2) for k in "qkv")
    loss.backward()
    query = student.encoder.layer[1].attention.self.query.weight
    assert query.grad is not None and query.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_unknown_family_layer_and_kind_are_refused_in_one_line():
    odd = torch.nn.Module()
    odd.config = SimpleNamespace(model_type="albert", num_hidden_layers=2)
    with pytest.raises(
        AlembertError, match="'albert'.*known families: bert, distilbert, electra, mpnet, roberta"
    ) as err:
        with capture_qkv(odd, [1]):
            pass
    assert "\n" not in str(err.value)
    model = tiny_model("distilbert")
    for layer in (0, LAYERS + 1, "1"):
        with pytest.raises(AlembertError, match=rf"out of range 1\.\.{LAYERS}"):
            with capture_qkv(model, [layer]):
                pass
    with pytest.raises(AlembertError, match="which must be some of"):
        with capture_qkv(model, [1], which=("query",)):
            pass
    assert hook_count(model) == 0


def test_the_three_minilm_terms_on_real_models():
    """The calls the relation terms (alembert/terms/relation.py) make, on eager tiny BERTs."""
    from alembert.losses import attention_kl_loss

    teacher = tiny_model("bert", seed=0, attn_implementation="eager")
    student = tiny_model(
        "bert",
        seed=1,
        num_hidden_layers=2,
        hidden_size=8,
        intermediate_size=16,
        attn_implementation="eager",
    )
    mask = BATCH["attention_mask"]

    def terms(s_model, a):
        with torch.no_grad(), capture_qkv(teacher, [LAYERS]) as t_qkv:
            t = teacher(**BATCH, output_attentions=True)
        with capture_qkv(s_model, [a]) as s_qkv:
            s = s_model(**BATCH, output_attentions=True)
        heads = teacher.config.num_attention_heads
        return {
            "attention_kl": attention_kl_loss(s.attentions[a - 1], t.attentions[LAYERS - 1], mask),
            "value_relation": relation_loss(s_qkv[(a, "v")], t_qkv[(LAYERS, "v")], mask, heads),
            "qkv_relation": sum(relation_loss(s_qkv[(a, k)], t_qkv[(LAYERS, k)], mask, 4) for k in "qkv"),
        }, t

    values, t = terms(student, 2)
    # transformers gives padded keys zero probability: attention_kl_loss relies on that
    assert (t.attentions[-1][0, :, :, 5] == 0).all()
    for name, value in values.items():
        assert torch.isfinite(value) and value.item() > 0, name
    sum(values.values()).backward()
    assert student.encoder.layer[1].attention.self.value.weight.grad.abs().sum() > 0
    # a student that IS the teacher matches it exactly on every term
    same, _ = terms(teacher, LAYERS)
    for name, value in same.items():
        assert value.item() == pytest.approx(0.0, abs=1e-6), name
