"""Masked-LM adaptation: the tied head, the head-only stage, the held-out scores against hand-made
cases, resume bit-exact, the saved model a fill-mask pipeline answers, and the refusals."""

import json
import math

import pytest
import torch
from conftest import REPO, run_cli
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM

from alembert.config.schema import TrainConfig
from alembert.mlm.metrics import one_mask_copies, pseudo_perplexity, topk_correct
from alembert.mlm.model import is_tied, load_masked_lm
from alembert.mlm.module import MaskedLMModule
from alembert.training.checkpoint import list_checkpoints
from alembert.training.loop import make_optimizer

NOVELS = REPO.parent / "shared" / "data" / "corpus" / "gutenberg"


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    """(a corpus file, a held-out file never trained on): two novels' openings."""
    root = tmp_path_factory.mktemp("texts")
    train, heldout = root / "pride.txt", root / "emma.txt"
    train.write_text("\n".join((NOVELS / "Austen_Pride.txt").read_text().splitlines()[:200]), encoding="utf-8")
    heldout.write_text("\n".join((NOVELS / "Austen_Emma.txt").read_text().splitlines()[:80]), encoding="utf-8")
    return train, heldout


def adapt(model, corpus, out, *extra):
    return [
        "adapt-mlm",
        "--model",
        model,
        "--corpus",
        corpus,
        "--max-length",
        48,
        "--heldout",
        6,
        "--pppl-sequences",
        1,
        "--batch-size",
        8,
        "--set",
        "train.eval_batch_size=16",
        "--head-steps",
        3,
        "--max-steps",
        4,
        "--eval-every",
        2,
        "--lr",
        1e-3,
        "--output",
        out,
        *extra,
    ]


def test_topk_against_a_hand_made_case():
    logits = torch.tensor([[0.1, 2.0, 1.0, 0.0], [3.0, 0.0, 1.0, 2.0], [0.0, 0.0, 0.5, 1.0]])
    labels = torch.tensor([2, 0, 1])  # 2nd best, best, tied 3rd with index 0 (two logits beat it: rank 2)
    assert topk_correct(logits, labels, ks=(1, 2, 3)) == {1: 1, 2: 2, 3: 3}
    assert topk_correct(torch.zeros(2, 5), torch.tensor([4, 0]), ks=(1,)) == {1: 2}  # all tied: found, whatever index


class Table(torch.nn.Module):
    """A 'masked LM' whose prediction at a masked position depends only on the true token there:
    ``log p(true) = log_p[true]``, the rest of the mass spread evenly."""

    def __init__(self, p_true: dict[int, float], vocab: int):
        super().__init__()
        self.p_true, self.vocab = p_true, vocab
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def masked_logits(self, batch):
        picked = batch["labels"] != -100
        assert (batch["input_ids"][picked] == 2).all() and picked.sum(1).eq(1).all()  # one masked token per copy
        gold = batch["labels"][picked]
        rows = []
        for t in gold.tolist():
            p = torch.full((self.vocab,), (1 - self.p_true[t]) / (self.vocab - 1))
            p[t] = self.p_true[t]
            rows.append(p.log())
        return torch.stack(rows), gold


def test_pseudo_perplexity_against_a_hand_computation():
    # [CLS]=0, [SEP]=1, mask=2; tokens 5 and 7 scored (specials never), p 0.5 and 0.125
    seqs = [torch.tensor([0, 5, 7, 1]), torch.tensor([0, 7, 1])]
    got = pseudo_perplexity(Table({5: 0.5, 7: 0.125}, vocab=10), seqs, mask_id=2, special_ids=[0, 1, 2], batch_size=1)
    expected = math.exp(-(math.log(0.5) + 2 * math.log(0.125)) / 3)  # = 2 ** (7 / 3)
    assert got == pytest.approx(expected, rel=1e-6) and expected == pytest.approx(2 ** (7 / 3))
    copies, positions = one_mask_copies(seqs[0], torch.tensor([False, True, True, False]), 2)
    assert copies.tolist() == [[0, 2, 7, 1], [0, 5, 2, 1]] and positions.tolist() == [1, 2]


def test_a_uniform_model_has_the_vocabulary_size_as_pseudo_perplexity():
    class Uniform(Table):
        def masked_logits(self, batch):
            gold = batch["labels"][batch["labels"] != -100]
            return torch.zeros(len(gold), self.vocab), gold

    got = pseudo_perplexity(Uniform({}, 37), [torch.tensor([0, 4, 9, 11, 1])], 2, [0, 1, 2])
    assert got == pytest.approx(37.0, rel=1e-6)


@pytest.mark.train
def test_the_new_head_is_tied_and_the_head_stage_leaves_the_encoder_alone(tiny_bert, bert_tokenizer):
    model, new = load_masked_lm(str(tiny_bert))
    assert new and all(k.startswith("cls.") for k in new) and is_tied(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    module = MaskedLMModule(model, frozen_encoder=True)
    whole = MaskedLMModule(model)  # built after the head's module, as the run builds them: it unfreezes the model
    opt = make_optimizer(module, TrainConfig(lr=1e-2))  # ... and the head stage's optimiser freezes it again
    ids = bert_tokenizer(["the house was quiet and the garden was green"], return_tensors="pt")
    labels = torch.full_like(ids["input_ids"], -100)
    labels[0, 2:5] = ids["input_ids"][0, 2:5]
    ids["input_ids"][0, 2:5] = bert_tokenizer.mask_token_id
    for _ in range(2):
        loss, _ = module({**ids, "labels": labels})
        loss.backward()
        opt.step()
        opt.zero_grad()
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("cls.") and "decoder.weight" not in k for k in changed)
    opt = make_optimizer(whole, TrainConfig())  # the second stage's optimiser holds every parameter
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == sum(p.numel() for p in model.parameters())


@pytest.mark.cli
def test_adapt_mlm_runs_both_stages_saves_a_fill_mask_model_and_resumes_bit_exact(tiny_bert, texts, tmp_path, capsys):
    corpus, heldout = texts
    out = tmp_path / "run"
    argv = adapt(tiny_bert, corpus, out, "--eval-text", heldout, "--save-every", 2, "--keep-checkpoints", 10)
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert [s["stage"] for s in m["stages"]] == ["head", "encoder"] and [s["steps"] for s in m["stages"]] == [3, 4]
    for name in ("heldout", "emma"):
        assert 0 <= m["dev"][f"{name}_top1"] <= m["dev"][f"{name}_top5"] <= 1 and m["dev"][f"{name}_pppl"] > 1
    assert m["details"]["head_only_dev"]["heldout_top1"] >= 0 and m["details"]["head_steps"] == 3
    assert len(m["details"]["fill_mask"]) == 3 and "fill-mask" in (out / "README.md").read_text()
    assert "alone for\n3 steps, then the whole model for 4 steps" in (out / "README.md").read_text()
    saved = AutoModelForMaskedLM.from_pretrained(out)
    assert is_tied(saved)
    from transformers import pipeline

    answers = pipeline("fill-mask", model=str(out))("the [MASK] was quiet.")
    assert len(answers) == 5 and "emma" in stdout

    last = list_checkpoints(out)[-1]
    assert last.name == "stage1-step0000004"
    before = load_file(str(last / "model.safetensors"))
    last.rename(tmp_path / "moved")  # as if killed during the encoder stage's 4th step
    code, _, err = run_cli([*argv, "--resume"], capsys)
    assert code == 0, err
    after = load_file(str(last / "model.safetensors"))
    assert before.keys() == after.keys()
    assert max((before[k] - after[k]).abs().max().item() for k in before) <= 1e-6
    resumed = json.loads((out / "metrics.json").read_text())["details"]
    assert resumed["head_only_dev"] == m["details"]["head_only_dev"] and resumed["head_steps"] == 3


@pytest.mark.cli
def test_adapt_mlm_refuses_trained_on_held_out_text_a_missing_corpus_too_long_a_length(
    tiny_bert, texts, tmp_path, capsys
):
    corpus, _ = texts
    out = tmp_path / "run"
    code, _, err = run_cli(adapt(tiny_bert, corpus, out, "--eval-text", corpus), capsys)
    assert code == 2 and "also in --corpus" in err and len(err.strip().splitlines()) == 1 and not out.exists()
    code, _, err = run_cli(adapt(tiny_bert, tmp_path / "nothing.txt", out), capsys)
    assert code == 2 and "nothing.txt" in err and not out.exists()
    code, _, err = run_cli(adapt(tiny_bert, corpus, out, "--max-length", 4096), capsys)
    assert code == 2 and "--max-length" in err and not out.exists()


@pytest.mark.cli
def test_adapt_mlm_dry_run_plans_both_stages_and_writes_nothing(tiny_bert, texts, tmp_path, capsys):
    corpus, heldout = texts
    out = tmp_path / "run"
    code, stdout, err = run_cli(adapt(tiny_bert, corpus, out, "--eval-text", heldout, "--dry-run"), capsys)
    assert code == 0, err
    assert "head" in stdout and "encoder" in stdout and not out.exists()


@pytest.mark.cli
def test_the_api_runs_the_same_command(tiny_bert, texts, tmp_path):
    import alembert

    corpus, _ = texts
    r = alembert.adapt_mlm(
        model=tiny_bert,
        corpus=[corpus],
        max_length=48,
        heldout=6,
        pppl_sequences=0,
        batch_size=8,
        head_steps=1,
        max_steps=1,
        output=tmp_path / "api",
    )
    assert r.command == "adapt-mlm" and set(r.metrics) == {"heldout_top1", "heldout_top5", "heldout_loss"}
    assert r.config.head_steps == 1 and (tmp_path / "api" / "model.safetensors").exists()
