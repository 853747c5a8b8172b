"""A README.md model card for a distilled student."""

from __future__ import annotations

from pathlib import Path

from alembert.distill.recipe import Recipe
from alembert.training.output import write_text_atomic


def write_model_card(out: Path, s: dict, recipe: Recipe) -> None:
    main = s["main_metric"]
    student_dev = s["dev"].get(main, float("nan"))
    teacher_dev = s["teacher_dev"].get(main, float("nan"))
    losses = "; ".join(
        f"{st.name}: " + ", ".join(f"{t.weight:g}×{t.loss}" + (f" ({t.term.describe(t.params)})" if t.term.Params.model_fields else "") + (f" [{t.mapping_spec()}]" if t.mapping_spec() else "") for t in st.losses)
        for st in recipe.stages
    )
    text = f"""---
library_name: transformers
pipeline_tag: text-classification
tags: [alembert, distillation, {recipe.name}]
---
# Distilled student ({s['task']}, recipe `{recipe.name}`)

Made with alembert: `AutoModelForSequenceClassification.from_pretrained(this_folder)` loads it.

| | teacher | student |
|---|---|---|
| model | {s['teacher']} | {s['student']} |
| parameters | {s['teacher_parameters']:,} | {s['student_parameters']:,} ({100 * s['student_parameters'] / s['teacher_parameters']:.1f}%) |
| dev {main} | {teacher_dev:.4f} | {student_dev:.4f} |

Retention: **{s['retention']}%** of the teacher's dev {main}.

- Recipe: {recipe.description} ({recipe.source}). Losses: {losses}.
- Data: task {s['task']}, {s['train_examples']} training examples, {s['dev_examples']} dev examples.
- Training: {s['train_seconds']} s in {len(s['stages'])} stage(s); full settings in `distill_config.yaml`, every logged step in `log.jsonl`.
"""
    write_text_atomic(out / "README.md", text)
