"""The model card (README.md) of a task-distilled student, for the task kind that trained it: its
loader class and pipeline tag come from the kind (:class:`~alembert.tasks.base.TaskKind`), and a
summary with windows (extractive QA) says them. Metadata through
:func:`alembert.models.card.write_card` (a ``ModelCardData`` with the dev metrics as model-index)."""

from __future__ import annotations

from pathlib import Path

from alembert.distill.recipe import Recipe
from alembert.models.card import base_model, eval_results, write_card


def write_model_card(out: Path, s: dict, recipe: Recipe, kind) -> None:
    """``s``: the run's summary under the card's names (``training.runner.card_view``); ``kind``: the
    task kind (its ``model_class`` and ``pipeline_tag``)."""
    pipeline_tag, loader = kind.pipeline_tag, kind.model_class
    main = s["main_metric"]
    student_dev = s["dev"].get(main, float("nan"))
    teacher_dev = s["teacher_dev"].get(main, float("nan"))
    losses = "; ".join(
        f"{st.name}: "
        + ", ".join(
            f"{t.weight:g}×{t.loss}"
            + (f" ({t.term.describe(t.params)})" if t.term.Params.model_fields else "")
            + (f" [{t.mapping_spec()}]" if t.mapping_spec() else "")
            for t in st.losses
        )
        for st in recipe.stages
    )
    share = 100 * s["student_parameters"] / s["teacher_parameters"]
    training = (
        f"{s['train_seconds']} s in {len(s['stages'])} stage(s); "
        "full settings in `distill_config.yaml`, every logged step in `log.jsonl`"
    )
    windows = (
        f"- SQuAD windows: max length {s['max_length']}, stride {s['stride']}; {s['data']}.\n"
        if "stride" in s
        else f"- Max length: {s['max_length']} tokens per input (training and the dev figures).\n"
        if s.get("max_length")
        else ""
    )
    body = f"""# Distilled student ({s["task"]}, recipe `{recipe.name}`)

Made with alembert: `{loader}.from_pretrained(this_folder)` loads it.

| | teacher | student |
|---|---|---|
| model | {s["teacher"]} | {s["student"]} |
| parameters | {s["teacher_parameters"]:,} | {s["student_parameters"]:,} ({share:.1f}%) |
| dev {main} | {teacher_dev:.4f} | {student_dev:.4f} |

Retention: **{s["retention"]}%** of the teacher's dev {main}.

- Recipe: {recipe.description} ({recipe.source}). Losses: {losses}.
- Data: task {s["task"]}, {s["train_examples"]} training examples, {s["dev_examples"]} dev examples.
- Training: {training}.
{windows}"""
    write_card(
        out,
        body,
        model_name=f"{Path(out).name} ({s['task']}, {recipe.name})",
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=["alembert", "distillation", recipe.name],
        base=base_model(s["teacher"]),
        results=eval_results(s["task"], s["dev"]),
    )
