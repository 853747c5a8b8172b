"""Issue 20, item 15b: what the commands print. ``predict`` scores each text on its own unless
``--pair``; ``--help`` shows every flag's default; a table is plain markdown when the output is
not a terminal (rich would cut its columns to a few characters)."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.cli
def test_predict_scores_each_text_unless_pair(tiny_teacher, capsys):
    code, out, err = run_cli(["predict", tiny_teacher, "a fine film", "a dull film"], capsys)
    assert code == 0, err
    assert out.count("label: ") == 2 and "text 1: 'a fine film'" in out and "text 2: 'a dull film'" in out
    code, out, err = run_cli(["predict", tiny_teacher, "a fine film", "a dull film", "--pair"], capsys)
    assert code == 0, err
    assert out.count("label: ") == 1 and "pair" not in out  # one pair: the one-example format


def test_help_shows_defaults_and_every_flag_has_help():
    from alembert.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    for name in ("finetune", "distill", "evaluate", "distill-general"):
        text = sub[name].format_help()
        assert "(default: 5e-05)" in text or name == "evaluate", name
        missing = [a.option_strings[0] for a in sub[name]._actions if a.option_strings and not a.help]
        assert not missing, f"{name}: flags without help: {missing}"
    assert "--lr LR " in sub["finetune"].format_help()  # not TRAIN.LR


def test_a_flag_prefix_is_refused_not_taken_for_the_flag_it_begins(capsys):
    """``--max-train 10`` once meant ``--max-train-samples 10`` by argparse's abbreviation: a typo or
    a flag added later changed silently what an old command line did."""
    from alembert.api import _parser
    from alembert.cli import distill
    from alembert.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["distill", "--task", "sst2", "--max-train-samples", "10"])
    assert 10 in vars(args).values()
    with pytest.raises(SystemExit):
        parser.parse_args(["distill", "--task", "sst2", "--max-train", "10"])
    assert "unrecognized arguments: --max-train 10" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["--deb", "distill"])
    assert _parser("distill", distill).allow_abbrev is False  # the API parses with the command's own parser


@pytest.mark.cli
def test_tables_are_markdown_when_not_a_terminal():
    code = (
        "from alembert.cli.common import print_table; "
        "print_table('t', [{'model': 'a-long-model-name', 'accuracy': 0.5}])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO).stdout
    assert "| model | accuracy |" in out and "| a-long-model-name | 0.5000 |" in out, out
