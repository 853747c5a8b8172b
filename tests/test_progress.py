"""Progress bars on a terminal only: a log file gets one plain line per tenth of the work."""

from __future__ import annotations

from alembert.progress import PlainProgress, progress


def test_off_a_terminal_progress_is_plain_lines_per_tenth_and_one_at_the_end(capsys):
    with progress(total=100, desc="encoding", unit="text") as bar:  # pytest's captured stderr is no terminal
        assert isinstance(bar, PlainProgress)
        for _ in range(100):
            bar.update(1)
        bar.set_postfix({"loss": "0.1234"})
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and len(lines) == 10
    assert lines[0].startswith("encoding: 10/100 text (10%)") and lines[-1].startswith("encoding: 100/100 text (100%)")
    assert lines[-1].endswith("loss 0.1234")


def test_a_resumed_bar_counts_from_where_it_was_and_a_disabled_one_is_silent(capsys):
    with progress(total=50, desc="training", unit="step", initial=40) as bar:
        bar.update(10)
    with progress(total=50, desc="quiet", disable=True) as bar:
        bar.update(50)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("training: 50/50 step (100%)")
