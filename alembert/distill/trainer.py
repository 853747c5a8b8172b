"""``DistillationTrainer``: alembert's distillation losses inside an ordinary ``transformers.Trainer`` script.

A user who already trains with ``Trainer`` swaps the class, adds ``teacher=`` and ``recipe=``, and
keeps everything else (``TrainingArguments``, gradient accumulation, bf16, ``accelerate launch``,
``report_to``, callbacks, checkpoints). The loss is not a second implementation: the Trainer's model
is alembert's own :class:`~alembert.distill.module.DistillModule` (the one ``alembert distill``
optimises), which holds the student and the learned projections, resolves the recipe stage's layer
mappings with the same checks, and computes every term with the same functions. Because the
projections are submodules of that one module, the Trainer's optimiser, gradient clipping and DDP
wrapping cover them with the student; the teacher is kept outside its parameters (never trained,
never wrapped).

One trainer trains one recipe stage: a single-stage recipe (kd, pkd-skip, distilbert, ...) needs no
choice; a multi-stage one (tinybert: intermediate, then prediction) takes ``stage=`` and is run as one
trainer per stage, as TinyBERT's authors ran their two steps.

Saving: ``save_model()`` and every checkpoint write the student as a ``from_pretrained`` folder, plus
the projections in ``distill_projections.safetensors`` so ``resume_from_checkpoint`` and
``load_best_model_at_end`` restore both.

Teacher: online at every step by default (it works for every recipe). ``cache_teacher=True``, for
stages whose terms a cache can serve (logit KD, PKD's [CLS] states: ``Stage.cacheable``), runs the
teacher once over ``train_dataset`` before training, into alembert's own teacher cache (same key,
same files as ``alembert distill``'s, so the two share it), and looks each training row up by an
``idx`` column added to the dataset; evaluation batches (no ``idx``) still use the online teacher.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer
from transformers.trainer_utils import set_seed
from transformers.utils import find_labels

from alembert.distill.module import DistillModule
from alembert.distill.recipe import Recipe, Stage, load_recipe
from alembert.errors import AlembertError

PROJECTIONS_FILE = "distill_projections.safetensors"


def pick_stage(recipe: Recipe, stage: str | int | None) -> Stage:
    """The recipe stage a trainer runs: the only one, or the one named (or indexed) by ``stage``."""
    names = [s.name for s in recipe.stages]
    if stage is None:
        if len(recipe.stages) == 1:
            return recipe.stages[0]
        raise AlembertError(
            f"recipe {recipe.name!r} has {len(names)} stages ({', '.join(names)}); pass stage= one of them "
            "(one DistillationTrainer trains one stage: run one per stage, in order)"
        )
    if isinstance(stage, int) and not isinstance(stage, bool):
        if 0 <= stage < len(names):
            return recipe.stages[stage]
    elif stage in names:
        return recipe.stages[names.index(stage)]
    raise AlembertError(
        f"recipe {recipe.name!r} has no stage {stage!r}; pass stage= one of {', '.join(names)} (or 0..{len(names) - 1})"
    )


def _eager_attention(model, who: str) -> None:
    """Attention-map terms read ``output_attentions``, which the SDPA kernels do not return."""
    if getattr(model.config, "_attn_implementation", "eager") == "eager":
        return
    try:
        model.set_attn_implementation("eager")
    except (AttributeError, ValueError) as exc:
        raise AlembertError(
            f"the {who} cannot switch to eager attention ({exc}); "
            "load it with attn_implementation='eager' for an attention loss"
        ) from None


def load_teacher_like(student, teacher: str | Path):
    """The teacher at ``teacher`` (a folder, an alias or a hub id), loaded with the auto class of the
    student's head (``BertForSequenceClassification`` -> ``AutoModelForSequenceClassification``)."""
    import transformers

    from alembert.models.load import quiet_from_pretrained
    from alembert.models.resolve import resolve_model

    head = next((h for h in _HEADS if type(student).__name__.endswith(h)), None)
    if head is None:
        raise AlembertError(
            f"teacher={teacher!r}: a {type(student).__name__} student has no head the trainer knows "
            f"({', '.join(_HEADS)}); pass the teacher loaded instead of its path"
        )
    auto = getattr(transformers, f"AutoModel{head}")
    return quiet_from_pretrained(auto, resolve_model(str(teacher)), f"teacher {teacher}")


_HEADS = ("ForSequenceClassification", "ForQuestionAnswering", "ForMaskedLM", "ForTokenClassification")


class DistillationTrainer(Trainer):
    """A ``Trainer`` whose loss is an alembert recipe stage distilling ``teacher`` into ``model``.

    ``model``: the student (any ``PreTrainedModel`` with the teacher's head: classification or QA;
    ``alembert.students.build_student({"layers": [0, 2]}, teacher).model`` makes it as the commands do).
    ``teacher``: the fine-tuned teacher, same tokenizer. ``recipe``: a packaged name ("kd",
    "pkd-skip", "tinybert", ...), a YAML path, an inline dict or a :class:`Recipe`. ``stage``: the
    stage of a multi-stage recipe. ``transfer_dataset``: unlabelled rows, tokenised as
    ``train_dataset`` (labels left out), added to it with the label -100 (regression: NaN): the
    teacher's outputs are their only targets (what ``alembert distill`` does by default on a small
    set; :func:`alembert.data.transfer.build_transfer` makes the texts). Every other argument is
    ``Trainer``'s own.

    Each term of the stage (e.g. ``kd``, ``ce``, ``pkd``) is logged beside ``loss`` through the
    Trainer's own :meth:`log`, averaged over the steps since the last log, so every ``report_to``
    backend and callback sees it. The projections start from ``args.seed`` (set before they are
    made), so two runs with one seed start alike.
    """

    def __init__(
        self,
        model=None,
        args=None,
        *,
        teacher=None,
        recipe: str | dict | Recipe = "kd",
        stage: str | int | None = None,
        cache_teacher: bool = False,
        transfer_dataset=None,
        **kwargs: Any,
    ):
        if model is None or teacher is None:
            raise AlembertError("DistillationTrainer needs model= (the student) and teacher= (its fine-tuned teacher)")
        if isinstance(model, DistillModule):
            raise AlembertError("pass the student itself as model=, not a DistillModule: the trainer builds that")
        if isinstance(model, str | Path):
            raise AlembertError(
                f"model= is a path ({model}); pass the student loaded, e.g. "
                "AutoModelForSequenceClassification.from_pretrained(path): the Trainer saves and moves that object"
            )
        if isinstance(teacher, str | Path):
            teacher = load_teacher_like(model, teacher)
        self.recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
        self.stage = pick_stage(self.recipe, stage)
        vs, vt = model.config.vocab_size, teacher.config.vocab_size
        if vs != vt:
            raise AlembertError(
                f"the student's vocabulary ({vs} tokens) differs from the teacher's ({vt}); DistillationTrainer "
                "needs one tokenizer for both (alembert distill --cross-tokenizer handles two)"
            )
        if self.stage.needs_attention:
            _eager_attention(teacher, "teacher")
            _eager_attention(model, "student")
        teacher.requires_grad_(False)
        teacher.eval()
        set_seed(args.seed if args is not None else 42)  # the projections' initialisation follows the run's seed
        if transfer_dataset is not None:  # unlabelled rows the teacher's outputs alone train on (data/transfer.py)
            kwargs["train_dataset"] = self._with_transfer(kwargs.get("train_dataset"), transfer_dataset)
        module = DistillModule(model, teacher, self.stage)  # resolves and checks every mapping before training
        super().__init__(model=module, args=args, **kwargs)
        self.teacher = teacher.to(self.args.device)
        if self.args.label_names is None:  # the student's own label arguments, not the wrapper's
            self.label_names = find_labels(type(model))
        self._term_sums: dict[str, torch.Tensor] = {}
        self._term_steps = 0
        if cache_teacher:
            self._attach_teacher_cache()

    def _with_transfer(self, train, transfer):
        from alembert.data.transfer import with_transfer

        if train is None:
            raise AlembertError("transfer_dataset= needs train_dataset=, the labelled rows it is added to")
        if not self.stage.needs_teacher:
            raise AlembertError(
                f"recipe stage {self.stage.name} reads no teacher output: transfer rows would teach it nothing; "
                "drop transfer_dataset= or pick a recipe with a teacher term (kd, pkd-skip, ...)"
            )
        label = next((c for c in ("labels", "label", "label_ids") if c in train.column_names), "labels")
        return with_transfer(train, transfer, label_column=label)

    def _attach_teacher_cache(self) -> None:
        """Teacher outputs for every training row, computed once (one process writes, the others wait)."""
        import datasets

        from alembert.distill.teacher_cache import build_cache

        if not self.stage.cacheable:
            raise AlembertError(
                f"recipe stage {self.stage.name!r} reads teacher hidden states or attention, which the teacher cache "
                "does not keep; drop cache_teacher=True (the teacher then runs online)"
            )
        ds = self.train_dataset
        if not isinstance(ds, datasets.Dataset) or "input_ids" not in ds.column_names:
            raise AlembertError(
                "cache_teacher=True needs train_dataset as a tokenised datasets.Dataset (with an input_ids column)"
            )
        if self.processing_class is None:
            raise AlembertError(
                "cache_teacher=True needs processing_class= (the tokenizer): the cache pads its own batches"
            )
        if "length" not in ds.column_names:
            ds = ds.map(lambda b: {"length": [len(x) for x in b["input_ids"]]}, batched=True)
        if "idx" not in ds.column_names:
            ds = ds.add_column("idx", list(range(len(ds))))
        self.train_dataset = ds
        module = self.accelerator.unwrap_model(self.model)
        autocast = torch.bfloat16 if self.args.bf16 else torch.float16 if self.args.fp16 else None
        with self.accelerator.main_process_first():
            cache = build_cache(
                self.teacher,
                ds,
                self.processing_class,
                max(ds["length"]),
                module.teacher_layers(),
                batch_size=self.args.per_device_eval_batch_size,
                autocast=autocast,
            )
        module.__dict__["cache"] = cache

    @property
    def student(self):
        return self.accelerator.unwrap_model(self.model).student

    def _set_signature_columns_if_needed(self) -> None:
        """Keep the dataset columns the *student* takes (the wrapper's forward takes one batch)."""
        if self._signature_columns is None:
            import inspect

            self._signature_columns = [
                *inspect.signature(self.model.student.forward).parameters,
                *{"label", "label_ids", "idx", *self.label_names},
            ]  # idx: the teacher cache's row

    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        """The stage's weighted total, as ``alembert distill`` computes it for the same batch.

        Every term is a per-batch mean (``num_items_in_batch`` is not needed), so the Trainer's
        own division by the gradient-accumulation steps applies, as in alembert's loop."""
        loss, terms, student = model(inputs, return_student=True)
        if model.training:
            for name, value in terms.items():
                self._term_sums[name] = self._term_sums.get(name, 0.0) + value.detach().float()
            self._term_steps += 1
        if not return_outputs:
            return loss
        return loss, {"loss": loss, **{k: v for k, v in student.items() if k.endswith("logits")}}

    def prediction_step(self, model, inputs, prediction_loss_only: bool, ignore_keys=None):
        """Evaluation: the distillation loss, the student's logits and the labels (the Trainer's
        default would call the wrapper like a Hugging Face model)."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
        loss = loss.detach().mean()
        if prediction_loss_only:
            return loss, None, None
        logits = tuple(v.detach() for k, v in outputs.items() if k != "loss" and k not in (ignore_keys or []))
        labels = tuple(inputs[k].detach() for k in self.label_names if k in inputs)
        return (
            loss,
            logits[0] if len(logits) == 1 else logits,
            (labels[0] if len(labels) == 1 else labels) if labels else None,
        )

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        """Add each term's mean since the last training log to the record that carries ``loss``."""
        if "loss" in logs and self._term_steps:
            steps = torch.tensor(float(self._term_steps), device=self.args.device)
            for name, total in self._term_sums.items():
                mean = self.accelerator.reduce(
                    total.to(self.args.device) / steps, reduction="mean"
                )  # every process's mean
                logs[name] = float(mean)
            self._term_sums, self._term_steps = {}, 0
        super().log(logs, *args, **kwargs)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """The student as a ``from_pretrained`` folder, the projections beside it."""
        import safetensors.torch

        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        module = self.accelerator.unwrap_model(self.model)
        state_dict = state_dict if state_dict is not None else module.state_dict()
        student = {k[len("student.") :]: v for k, v in state_dict.items() if k.startswith("student.")}
        module.student.save_pretrained(output_dir, state_dict=student or None)
        projections = {k: v.detach().contiguous().cpu() for k, v in state_dict.items() if k.startswith("projections.")}
        if projections:
            safetensors.torch.save_file(
                projections, os.path.join(output_dir, PROJECTIONS_FILE), metadata={"format": "pt"}
            )
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        """Student and projections back from a folder :meth:`_save` wrote."""
        import safetensors.torch
        from transformers.trainer_utils import load_sharded_checkpoint

        module = self.accelerator.unwrap_model(model if model is not None else self.model)
        single = os.path.join(resume_from_checkpoint, "model.safetensors")
        if os.path.isfile(single):
            missing, unexpected = module.student.load_state_dict(
                safetensors.torch.load_file(single, device="cpu"), strict=False
            )
            tied = set(getattr(module.student, "all_tied_weights_keys", None) or {})
            if unexpected or set(missing) - tied:
                raise AlembertError(
                    f"checkpoint {resume_from_checkpoint} does not match the student "
                    f"({len(missing)} missing, {len(unexpected)} unexpected weights); resume with the same student"
                )
        else:
            load_sharded_checkpoint(module.student, resume_from_checkpoint, strict=False)
        path = os.path.join(resume_from_checkpoint, PROJECTIONS_FILE)
        if len(module.projections):
            if not os.path.isfile(path):
                raise AlembertError(
                    f"checkpoint {resume_from_checkpoint} has no {PROJECTIONS_FILE}; "
                    "resume from a DistillationTrainer checkpoint"
                )
            state = {k[len("projections.") :]: v for k, v in safetensors.torch.load_file(path, device="cpu").items()}
            module.projections.load_state_dict(state)

    def _load_best_model(self) -> None:
        self._load_from_checkpoint(self.state.best_model_checkpoint)
