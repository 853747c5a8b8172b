"""Iterative pruning inside one run (alembert/distill/rounds.py, students/prune.py round_cut and recut).

The schedule is checked against its definition (each round keeps the same fraction of what is left,
the target in the last, layers in the first); a second cut's record is checked against the first
model's own weights (the kept units are named in its indices); the run is checked end to end: the
rounds share the one-shot run's steps and data order, only the final shape is saved, and a resume
in the middle of a later round rebuilds that round's shape and ends on the same weights."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import transformers as tf
from conftest import run_cli
from safetensors.torch import load_file
from test_prune import batch, tiny

from alembert.config.schema import PruneConfig
from alembert.distill.rounds import split_steps
from alembert.errors import AlembertError
from alembert.models.prune import KEY, Shape
from alembert.students import StudentData, build_student
from alembert.students.prune import Cut, recut, round_cut
from alembert.training.checkpoint import list_checkpoints

MINILM = Shape(layers=6, heads=12, head_dim=32, hidden=384, ffn=1536)


def after(shape: Shape, c: Cut) -> Shape:
    layers = len(c.layers) if c.layers is not None else shape.layers
    heads = c.heads if c.heads is not None else shape.heads
    return Shape(layers, heads, shape.head_dim, heads * shape.head_dim, c.ffn if c.ffn is not None else shape.ffn)


def test_each_round_keeps_the_same_fraction_of_what_is_left_and_the_last_reaches_the_target():
    p = PruneConfig(heads=6, ffn=512, layers=[0, 2, 4], rounds=3)
    shape, cuts = MINILM, []
    for r in (1, 2, 3):
        cuts.append(round_cut(shape, p, r))
        shape = after(shape, cuts[-1])
    assert cuts == [Cut(10, 1065, [0, 2, 4]), Cut(8, 738, None), Cut(6, 512, None)]  # 1536 x (1/3)^(1/3) = 1065
    ffn = [1536, *(c.ffn for c in cuts)]
    ratios = [b / a for a, b in zip(ffn, ffn[1:], strict=False)]
    assert max(ratios) - min(ratios) < 0.01 and abs(ratios[0] - (512 / 1536) ** (1 / 3)) < 0.01
    # one round is the one-shot cut; hidden=N means its heads; an uncut width stays uncut
    assert round_cut(MINILM, PruneConfig(heads=6, ffn=512, layers=[0, 2, 4]), 1) == Cut(6, 512, [0, 2, 4])
    assert round_cut(MINILM, PruneConfig(hidden=192, rounds=2), 1) == Cut(8, None, None)
    assert round_cut(MINILM, PruneConfig(ffn=1535, rounds=4), 1) == Cut(None, 1536, None)  # never below the target
    assert round_cut(MINILM, PruneConfig(ffn=1535, rounds=4), 4) == Cut(None, 1535, None)


def test_the_steps_of_a_stage_are_shared_among_its_rounds():
    for total, rounds in [(250, 3), (250, 1), (7, 7), (10, 4), (3, 2)]:
        shares = split_steps(total, rounds)
        assert sum(shares) == total and len(shares) == rounds and max(shares) - min(shares) <= 1
        assert shares == sorted(shares)
    assert split_steps(250, 3) == [83, 83, 84]


def test_a_second_cut_names_the_first_models_units_and_keeps_their_weights():
    model = tiny("bert")  # 3 layers, 4 heads of width 8, FFN 40
    data = StudentData([batch(), batch(seed=2)], None)
    spec = {"builder": "prune", "prune": {"heads": 2, "ffn": 10, "layers": [0, 2], "batches": 2, "rounds": 2}}
    first = build_student(spec, model, data, teacher_name="t", rounds=True)
    c = first.model.config
    assert (c.num_hidden_layers, c.num_attention_heads, c.intermediate_size) == (2, 3, 20)  # 4 x (2/4)^(1/2) = 2.8
    assert "(round 1 of 2)" in first.description
    second = recut(first.model, PruneConfig(heads=2, ffn=10, layers=[0, 2], batches=2, rounds=2), 2, data, 0, "t")
    c2, rec1, rec2 = second.model.config, getattr(c, KEY), getattr(second.model.config, KEY)
    assert (c2.num_hidden_layers, c2.num_attention_heads, c2.hidden_size, c2.intermediate_size) == (2, 2, 16, 10)
    assert rec2["rounds"] == 2 and rec2["layers"] == [0, 2] and rec2["from"]["heads"] == 4
    assert set(rec2["hidden"]) <= set(rec1["hidden"]) and all(
        set(h2) <= set(h1) for h1, h2 in zip(rec1["heads"], rec2["heads"], strict=True)
    )
    assert second.description.startswith("pruned from t in 2 rounds of cut-then-distil: layers 0,2 of 3, 2/4 heads")
    # no training between the cuts: the twice-cut query weights are the first model's at the recorded indices
    for pos, layer in enumerate(rec2["layers"]):
        rows = torch.tensor([h * 8 + i for h in rec2["heads"][pos] for i in range(8)])
        want = model.bert.encoder.layer[layer].attention.self.query.weight[rows][:, torch.tensor(rec2["hidden"])]
        got = second.model.bert.encoder.layer[pos].attention.self.query.weight
        assert torch.equal(got, want)


def test_rounds_need_a_width_to_shrink_and_a_run_to_cut_them():
    with pytest.raises(AlembertError) as err:
        build_student(
            {"builder": "prune", "prune": {"layers": [0, 1], "rounds": 2}}, tiny("bert"), check_only=True, rounds=True
        )
    assert "layers are cut at once" in str(err.value)
    with pytest.raises(AlembertError) as err:  # outside a run (a Trainer script) nothing would cut the later rounds
        build_student({"builder": "prune", "prune": {"ffn": 10, "rounds": 2}}, tiny("bert"), check_only=True)
    assert "here the student is cut once: leave rounds at 1" in str(err.value)


# ------------------------------------------------------------------ through the command


def args(teacher, out, *extra):
    argv = [
        "distill",
        "--transfer",
        "none",
        "--teacher",
        teacher,
        "--task",
        "sst2",
        "--max-train-samples",
        64,
        "--max-eval-samples",
        16,
    ]
    argv += ["--batch-size", 16, "--max-steps", 6, "--lr", 1e-3, "--student-prune", "ffn=16,rounds=3"]
    return [*argv, "--prune-batches", 2, "--output", out, *extra]


@pytest.mark.cli
def test_a_run_in_rounds_trains_the_one_shot_steps_and_saves_the_final_shape(tiny_teacher, tmp_path, capsys):
    out = tmp_path / "rounds"
    code, stdout, err = run_cli([*args(tiny_teacher, out), "--dry-run"], capsys)
    assert code == 0, err
    assert "pruning round 3/3" in stdout and "in 3 rounds of cut-then-distil: FFN 16/64" in stdout and not out.exists()
    code, _, err = run_cli(args(tiny_teacher, out), capsys)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert [s["steps"] for s in m["stages"]] == [2, 2, 2] and m["steps"] == 6  # the one-shot run's 6 steps
    assert [s["stage"] for s in m["stages"]] == [f"distill (pruning round {r}/3)" for r in (1, 2, 3)]
    assert m["model"].startswith("pruned from") and "in 3 rounds" in m["model"]
    model = tf.AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.intermediate_size == 16 and getattr(model.config, KEY)["rounds"] == 3
    assert m["parameters"] == sum(p.numel() for p in model.parameters())
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in log if "losses" in r] == [s["stage"] for s in m["stages"]]


@pytest.mark.cli
def test_too_few_steps_for_the_rounds_is_one_line_before_any_output(tiny_teacher, tmp_path, capsys):
    out = tmp_path / "o"
    code, _, err = run_cli([*args(tiny_teacher, out)[:-2], "--max-steps", 2, "--output", out], capsys)
    assert code == 2 and "has only 2 steps" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.cli
def test_a_resume_in_a_later_round_rebuilds_its_shape_and_ends_on_the_same_weights(tiny_teacher, tmp_path, capsys):
    out = tmp_path / "run"
    argv = args(tiny_teacher, out, "--save-every", 1, "--keep-checkpoints", 20)
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    found = list_checkpoints(out)
    assert [p.name for p in found][-1] == "stage2-step0000002"
    before = load_file(str(found[-1] / "model.safetensors"))
    for late in found[found.index(out / "checkpoints" / "stage1-step0000001") + 1 :]:
        shutil.rmtree(late)  # as if killed in round 2's second step: round 2's shape comes from its checkpoint
    code, _, err = run_cli([*argv, "--resume"], capsys)
    assert code == 0, err
    after = load_file(str(found[-1] / "model.safetensors"))
    assert before.keys() == after.keys()
    assert max((before[k] - after[k]).abs().max().item() for k in before) <= 1e-6
    # resumed inside the last round: its shape from the checkpoint, and the run describes the model as before
    model = json.loads((out / "metrics.json").read_text())["model"]
    shutil.rmtree(found[-1])
    code, _, err = run_cli([*argv, "--resume"], capsys)
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["model"] == model and "in 3 rounds" in model


@pytest.mark.train
def test_a_stage_can_start_where_an_earlier_one_stopped_in_the_same_data_order():
    """The data half of "equal steps": rounds of 3 + 3 steps see the 6 batches of one 6-step stage, in order."""
    from datasets import Dataset
    from tokenizers import Tokenizer, models
    from transformers import DataCollatorWithPadding, PreTrainedTokenizerFast

    from alembert.config.schema import TrainConfig
    from alembert.data.batching import batched_loader
    from alembert.training.logger import RunLogger
    from alembert.training.loop import FitSpec, fit
    from alembert.training.setup import make_accelerator

    rows = Dataset.from_dict({"input_ids": [[i + 1, i + 1] for i in range(40)], "length": [2] * 40})
    words = Tokenizer(models.WordLevel({"[PAD]": 0}, "[PAD]"))
    tok = PreTrainedTokenizerFast(tokenizer_object=words, pad_token="[PAD]")

    class Seen(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w, self.seen = torch.nn.Parameter(torch.ones(1)), []

        def forward(self, b):
            self.seen += b["input_ids"][:, 0].tolist()
            return (self.w * 0).sum() + self.w.sum(), {}

    def run(steps: list[int]) -> list[int]:
        module, done = Seen(), 0
        loader, sampler = batched_loader(rows, ["input_ids"], DataCollatorWithPadding(tok), 4, seed=3)
        for n in steps:
            cfg = TrainConfig(epochs=2, max_steps=n, batch_size=4, threads=1)
            fit(module, loader, sampler, FitSpec(cfg, start_batch=done), make_accelerator(cfg), RunLogger(None, False))
            done += n
        return module.seen

    one = run([14])  # past an epoch (10 batches): the next epoch's order continues too
    assert run([7, 7]) == one and run([5, 4, 5]) == one and len(one) == 56


def test_a_learned_projection_keeps_its_columns_for_the_dimensions_the_next_cut_keeps():
    from types import SimpleNamespace

    from alembert.config.schema import StudentConfig
    from alembert.distill.module import DistillModule
    from alembert.distill.recipe import load_recipe
    from alembert.distill.rounds import Rounds

    teacher, data = tiny("bert"), StudentData([batch(), batch(seed=2)], None)
    spec = StudentConfig(builder="prune", prune=PruneConfig(heads=2, batches=2, rounds=2))
    first = build_student(spec, teacher, data, rounds=True).model  # 3 heads: hidden 24 of 32
    stage = load_recipe("pkd-skip").stages[0]
    old = DistillModule(first, teacher, stage)
    key = next(iter(old.projections))
    with torch.no_grad():  # as if trained: no longer the selection it started as
        old.projections[key].weight.normal_()
        old.projections[key].bias.normal_()
    run = SimpleNamespace(resumed_model_config=lambda i: None)
    rounds = Rounds(spec, [stage], run, data, 0, "t")
    second = rounds.student(rounds.stages[1], first, old)
    new = DistillModule(second, teacher, stage)
    rounds.carry(new)
    was, now = getattr(first.config, KEY)["hidden"], getattr(second.config, KEY)["hidden"]
    cols = [was.index(d) for d in now]
    assert second.config.hidden_size == 16 and len(cols) == 16
    assert torch.equal(new.projections[key].weight, old.projections[key].weight[:, cols])
    assert torch.equal(new.projections[key].bias, old.projections[key].bias)
