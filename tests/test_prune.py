"""Structured pruning (alembert/models/prune.py, importance.py, students/prune.py).

The pruned model is checked against an independent computation of "the same units masked" on the
unpruned one: a pruned head's columns of the attention-output projection zeroed, a pruned FFN
neuron's column of the down projection zeroed, and a pruned residual dimension zeroed wherever it
is written (embedding columns, the rows of every matrix that writes the stream) and left out of
every LayerNorm's statistics. Importance is checked against its definition: a head or neuron whose
output is zero scores zero, and the autograd gradient of a gate equals a finite difference."""

from __future__ import annotations

import json
import random

import pytest
import torch
import transformers as tf
from conftest import run_cli

from alembert.config.schema import DataConfig
from alembert.errors import AlembertError
from alembert.models.importance import Gates, keep_top, model_outputs, probe_loss, score_units
from alembert.models.prune import KEY, Keep, Shape, layers_of, layout_of, prune, selection, submodule
from alembert.models.student import student_from_teacher
from alembert.students import StudentData, build_student

H, HEADS, FFN, LAYERS = 32, 4, 40, 3


def tiny(family: str, embedding_size: int | None = None, head: str = "seq", vocab: int = 120):
    torch.manual_seed(0)
    kw = dict(vocab_size=vocab, max_position_embeddings=64, num_labels=3)
    if family == "distilbert":
        kw.update(dim=H, n_heads=HEADS, hidden_dim=FFN, n_layers=LAYERS)
    else:
        kw.update(hidden_size=H, num_attention_heads=HEADS, intermediate_size=FFN, num_hidden_layers=LAYERS)
    if embedding_size:
        kw["embedding_size"] = embedding_size
    config = tf.AutoConfig.for_model(family, **kw)
    cls = {"seq": tf.AutoModelForSequenceClassification, "mlm": tf.AutoModelForMaskedLM, "base": tf.AutoModel}[head]
    model = cls.from_config(config).eval()
    with torch.no_grad():  # LayerNorms away from their (1, 0) start, so a wrong index shows
        for mod in model.modules():
            if isinstance(mod, torch.nn.LayerNorm):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.3, 0.3)
    return model


def batch(n: int = 3, t: int = 9, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 120, (n, t), generator=g)
    mask = torch.ones(n, t, dtype=torch.long)
    mask[0, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def random_keep(model, heads: int | None, ffn: int | None, layers: list[int], seed: int = 3) -> Keep:
    rng = random.Random(seed)
    shape, layout = Shape.of(model), layout_of(model)
    keep = Keep(layers)
    if heads is not None:
        shared = sorted(rng.sample(range(shape.heads), heads))
        keep.heads = [shared if layout.shared_heads else sorted(rng.sample(range(shape.heads), heads)) for _ in layers]
        keep.hidden = sorted(rng.sample(range(shape.hidden), heads * shape.head_dim))
    if ffn is not None:
        keep.ffn = [sorted(rng.sample(range(shape.ffn), ffn)) for _ in layers]
    return keep


class KeptNorm(torch.nn.Module):
    """A LayerNorm computed over the kept dimensions only, zero on the others: what a residual
    dimension masked out of the model means."""

    def __init__(self, ln: torch.nn.LayerNorm, kept: torch.Tensor):
        super().__init__()
        self.ln, self.kept = ln, kept

    def forward(self, x):
        out = torch.zeros_like(x)
        k = self.kept
        out[..., k] = torch.nn.functional.layer_norm(
            x[..., k], (len(k),), self.ln.weight[k], self.ln.bias[k], self.ln.eps
        )
        return out


def masked_reference(model, keep: Keep):
    """The unpruned model (layer-sliced) with ``keep``'s other units masked, computed without alembert.models.prune."""
    ref = student_from_teacher(model, keep.layers).eval()
    shape, layout = Shape.of(model), layout_of(model)
    d = shape.head_dim
    with torch.no_grad():
        for pos, layer in enumerate(layers_of(ref)):
            if keep.heads is not None:
                for h in set(range(shape.heads)) - set(keep.heads[pos]):
                    submodule(layer, layout.out).weight[:, h * d : (h + 1) * d] = 0
            if keep.ffn is not None:
                for j in set(range(shape.ffn)) - set(keep.ffn[pos]):
                    submodule(layer, layout.ffn_out).weight[:, j] = 0
        if keep.hidden is not None:
            kept = torch.tensor(keep.hidden)
            gone = torch.tensor(sorted(set(range(shape.hidden)) - set(keep.hidden)))
            head_space = {
                id(submodule(layer, p)) for layer in layers_of(ref) for p in (layout.query, layout.key, layout.value)
            }
            for name, mod in list(ref.named_modules()):
                if id(mod) in head_space:  # they write the heads' space, not the residual stream
                    continue
                if isinstance(mod, torch.nn.Embedding) and mod.embedding_dim == shape.hidden:
                    mod.weight[:, gone] = 0
                elif isinstance(mod, torch.nn.Linear) and mod.out_features == shape.hidden:
                    mod.weight[gone] = 0
                    if mod.bias is not None:
                        mod.bias[gone] = 0
                elif isinstance(mod, torch.nn.LayerNorm) and tuple(mod.normalized_shape) == (shape.hidden,):
                    parent, _, child = name.rpartition(".")
                    setattr(ref.get_submodule(parent) if parent else ref, child, KeptNorm(mod, kept))
    return ref


FAMILIES = [
    ("bert", None),
    ("roberta", None),
    ("electra", None),
    ("electra", 12),
    ("distilbert", None),
    ("mpnet", None),
]


@pytest.mark.parametrize(("family", "emb"), FAMILIES)
@pytest.mark.parametrize(
    ("heads", "ffn", "layers"),
    [(None, 17, [0, 1, 2]), (None, None, [0, 2]), (2, None, [0, 1, 2]), (2, 11, [2, 0]), (1, 40, [1])],
)
def test_a_pruned_model_computes_what_the_masked_model_computes(family, emb, heads, ffn, layers):
    model = tiny(family, emb)
    keep = random_keep(model, heads, ffn, layers)
    pruned = prune(model, keep)
    ref = masked_reference(model, keep)
    b = batch()
    with torch.no_grad():
        got = pruned(**b, output_hidden_states=True)
        want = ref(**b, output_hidden_states=True)
    assert torch.allclose(got.logits, want.logits, atol=2e-5, rtol=1e-4), (got.logits - want.logits).abs().max()
    cols = keep.hidden if keep.hidden is not None else list(range(H))
    assert torch.allclose(got.hidden_states[-1], want.hidden_states[-1][..., cols], atol=2e-5, rtol=1e-4)
    c = pruned.config
    assert c.num_hidden_layers == len(layers)
    assert c.num_attention_heads == (heads or HEADS) and c.hidden_size == (heads or HEADS) * (H // HEADS)
    assert getattr(c, layout_of(model).ffn_key) == (ffn or FFN)


@pytest.mark.parametrize("head", ["mlm", "base"])
def test_tied_heads_and_bare_encoders_prune_too(head):
    model = tiny("bert", head=head)
    keep = random_keep(model, 2, 13, [0, 2])
    pruned, ref, b = prune(model, keep), masked_reference(model, keep), batch()
    with torch.no_grad():
        got, want = pruned(**b), ref(**b)
    key = "logits" if head == "mlm" else "last_hidden_state"
    w = want[key] if head == "mlm" else want[key][..., keep.hidden]
    assert torch.allclose(got[key], w, atol=2e-5, rtol=1e-4)


def test_save_then_from_pretrained_gives_the_same_outputs(tmp_path):
    model = tiny("roberta")
    pruned = prune(model, random_keep(model, 2, 9, [0, 2]))
    pruned.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert (cfg["hidden_size"], cfg["num_attention_heads"], cfg["intermediate_size"], cfg["num_hidden_layers"]) == (
        16,
        2,
        9,
        2,
    )
    assert cfg[KEY]["from"] == {"layers": 3, "heads": 4, "hidden": 32, "ffn": 40} and len(cfg[KEY]["hidden"]) == 16
    again = tf.AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    b = batch()
    with torch.no_grad():
        assert torch.equal(again(**b).logits, pruned(**b).logits)


def test_a_cut_the_class_cannot_hold_is_one_line():
    model = tiny("electra", 16)  # 2 heads of 8: hidden 16, the embedding width, where ELECTRA has no projection
    with pytest.raises(AlembertError, match="would have no electra.embeddings_project"):
        prune(model, random_keep(model, 2, None, [0, 1, 2]))


def test_the_source_model_is_left_as_it_was():
    model = tiny("bert")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prune(model, random_keep(model, 2, 9, [1]))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_selection_puts_kept_dimensions_back_in_place():
    model = tiny("bert")
    keep = random_keep(model, 2, None, [0, 1, 2])
    pruned = prune(model, keep)
    w = selection(pruned.config, H)
    x = torch.randn(5, 16)
    y = x @ w.T
    assert torch.equal(y[:, keep.hidden], x) and not y[:, sorted(set(range(H)) - set(keep.hidden))].any()
    assert selection(pruned.config, 64) is None and selection(model.config, H) is None


# ------------------------------------------------------------------ importance


def test_a_head_or_neuron_whose_output_is_zero_scores_zero():
    model = tiny("bert")
    layout, d = layout_of(model), H // HEADS
    with torch.no_grad():
        submodule(layers_of(model)[1], layout.value).weight[2 * d : 3 * d] = 0  # head 2 of layer 1: zero values
        submodule(layers_of(model)[1], layout.value).bias[2 * d : 3 * d] = 0
        submodule(layers_of(model)[0], layout.ffn_in).weight[7] = 0  # neuron 7 of layer 0: GELU(0) = 0
        submodule(layers_of(model)[0], layout.ffn_in).bias[7] = 0
    s = score_units(model, [batch(seed=i) for i in range(3)], 3)
    assert s.heads[1, 2] == 0 and (s.heads[1, [0, 1, 3]] > 0).all() and (s.heads[0] > 0).all()
    assert s.ffn[0, 7] == 0 and (s.ffn[0, :7] > 0).all()
    assert (s.hidden > 0).all() and s.batches == 3 and s.examples == 9


def test_a_gate_gradient_equals_a_finite_difference():
    model = tiny("bert", head="base").double()
    b = batch(n=2)

    def loss(kind: str, index: tuple, value: float | None):
        with Gates(model, 2) as g:
            gate = getattr(g, kind)
            if value is not None:
                with torch.no_grad():
                    gate[index] = value
            out = probe_loss(model_outputs(model, b), b["attention_mask"], torch.Generator().manual_seed(0))
            return out, gate

    for kind, index in [("heads", (1, 2, 3)), ("ffn", (0, 1, 5)), ("hidden", (1, 2, 7))]:
        out, gate = loss(kind, index, None)
        (grad,) = torch.autograd.grad(out, gate)
        eps = 1e-6
        up, _ = loss(kind, index, 1 + eps)
        down, _ = loss(kind, index, 1 - eps)
        fd = (up - down).item() / (2 * eps)
        assert grad[index].item() == pytest.approx(fd, rel=1e-5, abs=1e-9), kind
        other = list(index)
        other[0] = 1 - other[0]  # the other example's gate: its loss does not move this one
        assert grad[index].item() != 0


def test_keep_top_takes_the_best_scored_units_and_mpnet_one_shared_set():
    from alembert.models.importance import Scores

    model = tiny("bert")
    heads = torch.tensor([[1.0, 5, 3, 0], [9, 0, 0, 8], [0, 1, 2, 3]])
    ffn = torch.arange(LAYERS * FFN, dtype=torch.float).view(LAYERS, FFN)
    hidden = torch.zeros(LAYERS + 1, H)
    hidden[2, :16] = 1  # the residual dims layer 1 needs
    hidden[3, 16:] = 5  # those of layer 2, which is dropped below
    s = Scores(heads, ffn, hidden, 1, 1, 0.0)
    keep = keep_top(s, model, 2, 3, [0, 1])
    assert keep.heads == [[1, 2], [0, 3]] and keep.hidden == list(range(16)) and keep.ffn[0] == [37, 38, 39]
    mp = tiny("mpnet")
    keep = keep_top(Scores(heads, ffn, hidden, 1, 1, 0.0), mp, 2, None, [0, 1])
    assert keep.heads == [[0, 3], [0, 3]]  # summed over the kept layers: 10, 5, 3, 8


# ------------------------------------------------------------------ the builder and its errors


def spec(**prune):
    return {"builder": "prune", "prune": prune}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"heads": 5}, "heads=5: each layer has 4 heads; keep between 1 and 4"),
        ({"ffn": 41}, "ffn=41: the FFN has 40 neurons"),
        (
            {"hidden": 12},
            "hidden=12: the hidden width is heads x the head width 8, up to 32; use hidden=8 or hidden=16",
        ),
        ({"heads": 2, "hidden": 24}, "heads=2 and hidden=24 disagree"),
        ({"layers": [0, 3]}, "layer 3 is out of range 0..2"),
        ({"layers": [1, 1]}, "repeats a layer"),
        ({}, "--student-prune cuts nothing"),
    ],
)
def test_bad_cuts_are_one_line_before_any_compute(fields, message):
    with pytest.raises(AlembertError, match=None) as err:
        build_student(spec(**fields), tiny("bert"), check_only=True)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_ffn_zero_is_refused_by_the_config():
    with pytest.raises(AlembertError) as err:
        build_student(spec(ffn=0), tiny("bert"), check_only=True)
    assert "prune.ffn" in str(err.value) and "greater than or equal to 1" in str(err.value)


def test_a_family_it_cannot_prune_is_one_line():
    config = tf.AlbertConfig(
        vocab_size=50,
        hidden_size=16,
        num_attention_heads=2,
        intermediate_size=20,
        num_hidden_layers=2,
        embedding_size=8,
    )
    with pytest.raises(AlembertError) as err:
        build_student(spec(heads=1), tf.AlbertModel(config), check_only=True)
    assert "cannot prune this family" in str(err.value) and "AlbertModel" in str(err.value)


def test_the_builder_scores_real_batches_and_describes_the_cut():
    model = tiny("bert")
    made = build_student(
        spec(heads=2, ffn=10, layers=[0, 2], batches=2),
        model,
        StudentData([batch(), batch(seed=2), batch(seed=3)], None),
        teacher_name="t",
    )
    c = made.model.config
    assert (c.num_hidden_layers, c.num_attention_heads, c.hidden_size, c.intermediate_size) == (2, 2, 16, 10)
    assert made.origin == "teacher" and made.description.startswith(
        "pruned from t: layers 0,2 of 3, 2/4 heads, hidden 16/32, FFN 10/40"
    )
    assert "over 2 training batches (6 texts" in made.description
    rec = getattr(c, KEY)
    assert rec["importance"] == "fisher" and rec["batches"] == 2 and rec["layers"] == [0, 2]


# ------------------------------------------------------------------ through the commands


@pytest.mark.cli
@pytest.mark.train
def test_distill_with_a_pruned_student_end_to_end(tiny_teacher, tmp_path, capsys):
    out = tmp_path / "pruned"
    args = [
        "distill",
        "--transfer",
        "none",
        "--teacher",
        tiny_teacher,
        "--recipe",
        "tinybert",
        "--task",
        "sst2",
        "--max-train-samples",
        48,
    ]
    args += ["--max-eval-samples", 24, "--batch-size", 16, "--max-steps", 2, "--output", out]
    args += ["--student-prune", "heads=1,ffn=40,layers=0,2", "--prune-batches", 2]
    code, stdout, err = run_cli([*args, "--dry-run"], capsys)
    assert code == 0, err
    assert "pruned from" in stdout and "1/2 heads, hidden 16/32, FFN 40/64" in stdout and "s)" in stdout
    assert not out.exists()
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    model = tf.AutoModelForSequenceClassification.from_pretrained(out)
    assert (model.config.num_hidden_layers, model.config.hidden_size, model.config.intermediate_size) == (2, 16, 40)
    assert "pruned from" in (out / "README.md").read_text()
    assert json.loads((out / "metrics.json").read_text())["model"].startswith("pruned from")
    # what reads a model reads a pruned one unchanged: evaluate, predict, the int8 and web exports
    code, stdout, err = run_cli(["evaluate", out, "--task", "sst2", "--max-eval-samples", 16], capsys)
    assert code == 0 and "accuracy" in stdout, err
    code, stdout, err = run_cli(["predict", out, "a gripping film"], capsys)
    assert code == 0 and stdout.startswith("label: "), err
    code, _, err = run_cli(["export", out, "--onnx", "--quantize", "int8", "--output", tmp_path / "int8"], capsys)
    assert code == 0 and (tmp_path / "int8" / "model.onnx").is_file(), err
    code, _, err = run_cli(["export", out, "--web", "--output", tmp_path / "web"], capsys)
    assert code == 0 and list((tmp_path / "web").rglob("*.onnx")), err


def test_a_projection_starts_as_the_selection_of_kept_dimensions(tiny_teacher):
    from alembert.distill.module import start_projection

    model = tiny("bert")
    pruned = prune(model, random_keep(model, 2, None, [0, 1]))
    layer = start_projection(pruned.config, 16, 32)
    assert torch.equal(layer.weight, selection(pruned.config, 32)) and not layer.bias.any()
    other = start_projection(model.config, 16, 32)  # not a pruned model: random
    assert other.weight.abs().sum() > 0 and not torch.equal(other.weight, layer.weight)


@pytest.mark.cli
def test_bad_prune_flags_are_one_line_before_any_output(tiny_teacher, tmp_path, capsys):
    out = tmp_path / "o"
    base = ["distill", "--transfer", "none", "--teacher", tiny_teacher, "--task", "sst2", "--output", out]
    for flags, message in [
        (["--student-prune", "heads=3"], "heads=3: each layer has 2 heads"),
        (["--student-prune", "ffn=0"], "student.prune.ffn"),
        (["--student-prune", "heads"], "expected KEY=VALUE pairs"),
        (["--student-prune", "head=1"], "head"),
        (["--prune-batches", "3"], "cuts nothing"),
    ]:
        code, _, err = run_cli([*base, *flags], capsys)
        assert code == 2 and message in err and "Traceback" not in err, (flags, err)
        assert len(err.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.cli
@pytest.mark.export
def test_an_onnx_export_of_a_pruned_model_matches_pytorch(bert_tokenizer, tmp_path, capsys):
    from alembert.runtimes import load_any

    model = tiny("bert", vocab=len(bert_tokenizer))
    pruned = prune(model, random_keep(model, 2, 9, [0, 2]))
    folder = tmp_path / "pruned"
    pruned.save_pretrained(folder)
    bert_tokenizer.save_pretrained(folder)
    code, _, err = run_cli(["export", folder, "--onnx", "--output", tmp_path / "onnx"], capsys)
    assert code == 0, err
    onnx = load_any(tmp_path / "onnx")
    b = batch()
    b["token_type_ids"] = torch.zeros_like(b["input_ids"])
    got = onnx.run(onnx.prepare(b))
    with torch.no_grad():
        want = pruned(**b).logits.numpy()
    assert got.shape == want.shape and abs(got - want).max() < 1e-4


@pytest.mark.train
def test_the_trainer_path_distils_a_pruned_student(tiny_teacher, bert_tokenizer, tmp_path):
    from transformers import DataCollatorWithPadding, TrainingArguments

    from alembert.data.glue import get_task
    from alembert.data.load import load_split
    from alembert.data.tokenize import tokenize_dataset
    from alembert.distill.trainer import DistillationTrainer
    from alembert.models.load import load_classifier

    teacher = load_classifier(tiny_teacher, get_task("sst2"), attn="eager").eval()
    rows = tokenize_dataset(
        load_split(DataConfig(task="sst2", max_train_samples=16), get_task("sst2"), "train"), bert_tokenizer, 64
    )
    loader = [bert_tokenizer.pad({"input_ids": rows["input_ids"][:8]}, return_tensors="pt")]
    student = build_student(spec(heads=1, layers=[0, 2]), teacher, StudentData(loader, bert_tokenizer)).model
    student.set_attn_implementation("eager")
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        max_steps=2,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
    )
    trainer = DistillationTrainer(
        model=student,
        teacher=teacher,
        recipe="tinybert",
        stage="intermediate",
        args=args,
        train_dataset=rows,
        data_collator=DataCollatorWithPadding(bert_tokenizer),
    )
    module = trainer.model  # the DistillModule around the student
    assert len(module.projections)
    assert all(torch.equal(p.weight, selection(student.config, 32)) for p in module.projections.values())
    (attention,) = [t for t in module.bound_terms if t.name == "attention"]
    assert (
        attention.params.teacher_heads == getattr(student.config, KEY)["heads"]
        and len(attention.params.teacher_heads) == 2
    )
    before = student.bert.encoder.layer[0].attention.self.query.weight.clone()
    trainer.train()
    assert not torch.equal(before, student.bert.encoder.layer[0].attention.self.query.weight)


def test_pruning_twice_keeps_the_record_in_the_first_models_indices():
    model = tiny("bert")
    keep1 = random_keep(model, 3, 20, [0, 1, 2], seed=4)
    once = prune(model, keep1)
    keep2 = random_keep(once, 2, 10, [0, 2], seed=5)
    twice = prune(once, keep2)
    first, second = getattr(once.config, KEY), getattr(twice.config, KEY)
    assert second["from"] == first["from"] and second["rounds"] == 2 and second["layers"] == [0, 2]
    assert second["hidden"] == [first["hidden"][i] for i in keep2.hidden]
    assert second["heads"] == [[first["heads"][i][h] for h in hs] for i, hs in zip([0, 2], keep2.heads, strict=True)]
    # the composed record is the one-shot cut of the same units: the same outputs as cutting them from the original
    ffn = [[keep1.ffn[i][j] for j in f] for i, f in zip([0, 2], keep2.ffn, strict=True)]
    ref, b = prune(model, Keep(second["layers"], second["heads"], ffn, second["hidden"])), batch()
    with torch.no_grad():
        assert torch.allclose(twice(**b).logits, ref(**b).logits, atol=2e-5)
    assert selection(twice.config, H) is not None


@pytest.mark.parametrize("cls", [tf.BertForQuestionAnswering, tf.BertForMaskedLM, tf.BertModel])
def test_every_head_the_commands_distil_is_scored_and_cut(cls):
    """QA (start/end logits: a position sampled per example), MLM (a token per position), a bare encoder
    (a Gaussian direction on its states): each gives non-zero scores and a model of its own class."""
    torch.manual_seed(0)
    config = tf.BertConfig(
        vocab_size=120, hidden_size=H, num_attention_heads=HEADS, intermediate_size=FFN, num_hidden_layers=LAYERS
    )
    model = cls(config).eval()
    scores = score_units(model, [batch()], 1)
    assert (scores.heads > 0).all() and (scores.ffn.sum(1) > 0).all() and (scores.hidden > 0).all()
    made = build_student(spec(heads=2, ffn=10, layers=[0, 2], batches=2), model, StudentData([batch(), batch(2)], None))
    assert type(made.model) is cls and made.model.config.hidden_size == 16
    rec = getattr(made.model.config, KEY)
    assert rec["batches"] == 2 and len(set(rec["hidden"])) == 16
