"""What a student builder is: one way to make the model a recipe trains, said once for every command.

``distill`` (classification and QA), ``distill-general`` (raw text and sentence embeddings) each
used to walk their own copy of the path / layers / shape chain. Now each way is one
:class:`Builder` subclass; the commands keep only their wrapping (the task head, the MLM head,
pooling and Dense) and ask :func:`build_student` for the bare model and its description.

A builder is chosen from the ``student`` section of the config (:func:`student_builder`): by name
(``student.builder``), else the one builder that owns a section given (:attr:`Builder.section`:
``student.prune`` is the ``prune`` builder's), else the one whose :meth:`Builder.selects` claims the fields given
(``path`` alone: ``checkpoint``; ``layers``, or nothing: ``layers``; a shape: ``config``), so the
flags of today keep their meaning without a list of names anywhere.

A builder that ``needs_data`` (importance scores for pruning, token statistics) cannot run where
the others do, before any data is loaded: the commands build such a student after their training
data is ready and pass it a :class:`StudentData` of real training batches. Defining a subclass with
a ``name`` registers it (:data:`BUILDERS`), the way loss terms and task kinds do; a builder defined
outside alembert (a plug-in, a test) registers once its module is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from alembert.errors import AlembertError

#: name -> Builder subclass, filled by ``Builder.__init_subclass__``, in definition order.
BUILDERS: dict[str, type[Builder]] = {}


@dataclass
class StudentData:
    """What a builder that needs data receives: ``batches``, a loader of real training batches
    (dicts of tensors: ``input_ids``, ``attention_mask``, ... as the command trains on them),
    made for the builder alone so that reading it moves no training randomness; ``tokenizer``
    encoded them (the student's: the teacher's, unless ``student.path`` names another model)."""

    batches: Iterable[dict]
    tokenizer: Any


@dataclass
class BuiltStudent:
    """A builder's answer. ``model``: the bare student, of the class of the teacher it was given
    (or of what the command's ``load`` returns), before the command's wrapping; ``description``:
    the words plans, ``metrics.json`` and the model card show; ``origin``: where its weights come
    from (``teacher``, another ``model`` folder, or ``random``), which decides e.g. whether an
    embedding student keeps a Dense layer."""

    model: Any
    description: str
    origin: Literal["teacher", "model", "random"]


@dataclass(frozen=True)
class Request:
    """Everything a builder may read: the ``student`` config section, the bare teacher (with the
    command's head), its name for descriptions, the run's seed, ``load`` (how the command reads
    another model folder: its head, its MLM head tied, its encoder without pooling), ``data``
    (None unless the builder needs data), ``embedder`` (the embedding commands: the teacher as a
    sentence encoder, its pooling, Dense and normalisation around the bare teacher; None elsewhere)
    and ``tokenizer`` (the student's, when the command passes it: known before any data, see
    :mod:`.vocabulary`); ``rounds``: the caller trains in rounds and makes the later rounds' cuts
    itself (:mod:`alembert.distill.rounds`), so a builder may make only the first."""

    spec: Any  # alembert.config.schema.StudentConfig
    teacher: Any
    teacher_name: str
    seed: int
    load: Callable[[str], Any]
    data: StudentData | None = None
    embedder: Any = None
    tokenizer: Any = None
    rounds: bool = False

    def path(self, builder: str) -> str:
        """``student.path``, which ``builder`` cannot do without."""
        if not self.spec.path:
            raise AlembertError(f"student builder {builder!r} reads another model: pass --student PATH (student.path)")
        return self.spec.path


@dataclass(frozen=True)
class Offer:
    """A student a builder proposes for a teacher (``alembert frontier``'s candidates). ``name``: its
    folder and row name; ``fields``: the ``student`` section that makes it; ``shape``: what its speed is
    predicted from, the teacher's config fields it changes (``num_hidden_layers``, ``hidden_size``,
    ``intermediate_size``, ``num_attention_heads``) or what the builder's own :meth:`Builder.random_model` reads;
    ``train``: the ``train`` fields it needs beside the run's (a static table's learning rate);
    ``quantize``: how its int8 variant is exported (``"auto"``: the fastest that keeps the dev metric), or
    None when int8 has nothing to speed up (a token table)."""

    name: str
    fields: dict
    shape: dict
    train: dict = field(default_factory=dict)
    quantize: str | None = "auto"


class Builder:
    """One way to make a student. Subclasses set :attr:`name` (and :attr:`needs_data`) and
    implement :meth:`build`; :meth:`selects` lets the config's fields choose it without a name;
    :meth:`offers` proposes the students worth trying for a teacher (the frontier's candidates)."""

    name: ClassVar[str] = ""
    needs_data: ClassVar[bool] = False  # True: built after the training data is loaded, with a StudentData
    #: a field of the ``student`` section that is this builder's alone: given, it chooses the builder over
    #: whatever the other fields would choose (no other builder needs to know it exists)
    section: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            if cls.name in BUILDERS and BUILDERS[cls.name].__qualname__ != cls.__qualname__:
                first = BUILDERS[cls.name].__qualname__
                raise TypeError(f"student builder {cls.name!r} defined twice ({first}, {cls.__qualname__})")
            BUILDERS[cls.name] = cls

    @classmethod
    def selects(cls, spec) -> bool:
        """Whether the ``student`` fields given, with no ``student.builder``, mean this builder.
        A builder reached only by its name keeps the default (False)."""
        return False

    def check(self, request: Request) -> None:
        """Refuse, in one line, what this builder cannot make from ``request`` (its ``data`` is None
        here): the commands call it before any data loads, so a builder that needs data fails early."""

    def build(self, request: Request) -> BuiltStudent:
        raise NotImplementedError

    @classmethod
    def offers(cls, config, sentence: bool) -> list[Offer]:
        """The students of this builder worth a place on a speed/quality frontier for a teacher of
        ``config`` (a transformers config); ``sentence``: the task is sentence embeddings. Default:
        none (a builder that only reads what the user names, such as ``checkpoint``)."""
        return []

    @classmethod
    def random_model(cls, config, shape: dict):
        """A model of one of :meth:`offers`' ``shape`` for a teacher of ``config``, on random weights, in
        eval mode: what the frontier times before any training (speed depends on the shape, not on what
        the weights learnt). Default: the teacher's family with ``shape``'s config fields changed; a
        builder whose students are not transformers makes its own."""
        import copy

        from transformers import AutoModel

        c = copy.deepcopy(config)
        for key, value in shape.items():
            setattr(c, key, value)
        return AutoModel.from_config(c).eval()


def student_builder(spec) -> Builder:
    """The builder the ``student`` config section asks for; an unknown name is one line listing the known ones."""
    if spec.builder:
        if spec.builder not in BUILDERS:
            raise AlembertError(
                f"student.builder {spec.builder!r} is not a student builder; use one of {', '.join(BUILDERS)} "
                "(or leave it out to choose from --student, --student-layers and --student-config)"
            )
        return BUILDERS[spec.builder]()
    owners = [cls for cls in BUILDERS.values() if cls.section and getattr(spec, cls.section, None) is not None]
    chosen = owners or [cls for cls in BUILDERS.values() if cls.selects(spec)]
    if len(chosen) != 1:
        claims = ", ".join(cls.name for cls in chosen) or "no builder"
        raise AlembertError(
            f"the student fields given are claimed by {claims}; name one with --set student.builder=NAME "
            f"({', '.join(BUILDERS)})"
        )
    return chosen[0]()


def checkpoint_as_is(spec):
    """``spec``, with ``student.path`` beside ``student.layers`` meaning the checkpoint as it is (the
    layers unused), as ``distill-general`` on raw text and ``distill --task squad`` have always read
    the two together (``distill`` on a classification task and the embedding run slice that model).
    A ``student.builder`` named is taken at its word (``layers`` slices the other model there too)."""
    if spec.path and spec.layers is not None and not spec.builder:
        return spec.model_copy(update={"builder": "checkpoint"})
    return spec


def build_student(
    spec,
    teacher,
    data: StudentData | None = None,
    *,
    teacher_name: str | None = None,
    seed: int = 0,
    load: Callable[[str], Any] | None = None,
    embedder: Any = None,
    tokenizer: Any = None,
    check_only: bool = False,
    rounds: bool = False,
) -> BuiltStudent | None:
    """The student ``spec`` (a :class:`~alembert.config.schema.StudentConfig`, or its fields as a
    dict) asks for, made from ``teacher`` (a bare transformers model: the student gets its class)
    and, for a builder that needs it, ``data``. ``load`` reads another model folder (default: the
    teacher's class); ``embedder``, ``tokenizer`` and ``rounds``: see :class:`Request`. ``check_only``: run the
    builder's :meth:`Builder.check` and return None (a command does so before loading data). A
    ``DistillationTrainer`` script makes its student the commands' way::

        student = build_student({"layers": [0, 2]}, teacher).model
    """
    if isinstance(spec, dict):
        from pydantic import ValidationError

        from alembert.config.schema import StudentConfig

        try:
            spec = StudentConfig.model_validate(spec)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(map(str, err["loc"])) or "student"
            raise AlembertError(f"student {field}: {err['msg']} (got {spec})") from None
    builder = student_builder(spec)
    if load is None:

        def load(path: str):
            from alembert.models.load import quiet_from_pretrained
            from alembert.models.resolve import resolve_model

            return quiet_from_pretrained(type(teacher), resolve_model(path), f"student {path}")

    name = teacher_name or getattr(teacher.config, "name_or_path", "") or "the teacher"
    request = Request(spec, teacher, name, seed, load, None, embedder, tokenizer, rounds)
    builder.check(request)
    if check_only:
        return None
    if builder.needs_data and data is None:
        raise AlembertError(
            f"student builder {builder.name!r} needs training data: build it after the data is loaded "
            "(pass data=StudentData(batches, tokenizer))"
        )
    if builder.needs_data:
        request = Request(spec, teacher, name, seed, load, data, embedder, tokenizer, rounds)
    return builder.build(request)
