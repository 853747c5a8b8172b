"""A DistillationTrainer script as a user writes one, run by tests/test_distributed.py under
``accelerate launch`` with two CPU processes: argv = teacher folder, output folder."""

import json
import sys

import torch
from datasets import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    TrainingArguments,
)

from alembert import DistillationTrainer
from alembert.models.student import student_from_teacher

teacher_dir, out = sys.argv[1], sys.argv[2]
tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
torch.manual_seed(0)  # the tiny test teacher has no saved head: every rank initialises the same one
teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
student = student_from_teacher(teacher, [0, 2])
texts = [f"sentence number {i} is {'good' if i % 2 else 'bad'}" for i in range(32)]
rows = Dataset.from_dict({"text": texts, "label": [i % 2 for i in range(32)]})
rows = rows.map(lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"])
args = TrainingArguments(
    output_dir=out,
    per_device_train_batch_size=4,
    max_steps=3,
    learning_rate=1e-3,
    logging_steps=1,
    report_to="none",
    save_strategy="no",
    use_cpu=True,
    seed=7,
)
trainer = DistillationTrainer(
    model=student,
    teacher=teacher,
    recipe="pkd-skip",
    args=args,
    train_dataset=rows,
    data_collator=DataCollatorWithPadding(tokenizer),
    processing_class=tokenizer,
    cache_teacher=True,
)
trainer.train()
trainer.save_model(out)
if trainer.is_world_process_zero():
    logged = [r for r in trainer.state.log_history if "loss" in r]
    json.dump(
        {
            "world_size": trainer.args.world_size,
            "steps": len(logged),
            "finite": all(torch.isfinite(torch.tensor(r["loss"])).item() for r in logged),
            "terms": sorted(k for k in logged[0] if k not in ("loss", "grad_norm", "learning_rate", "epoch", "step")),
        },
        open(f"{out}/ddp_result.json", "w"),
    )
