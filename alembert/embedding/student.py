"""The student of an embedding teacher: a slice of an encoder, another model, a new narrow shape, or
a sentence encoder of its own (a static student: :mod:`alembert.students.static`).

Its pooling and normalisation are the teacher's (so its vectors are comparable with the
teacher's); when it is narrower and a term compares vectors, a Dense layer maps its pooled
output to the teacher's width and is saved as a Dense module, so the student's embeddings
live in the teacher's space (``student.projection: false`` drops it: then only terms that
compare similarities, such as ``embed_rkd``, can train it: :func:`width_free_recipes`).
"""

from __future__ import annotations

import torch

from alembert.config.schema import DistillGeneralConfig
from alembert.distill.module import start_projection
from alembert.errors import AlembertError
from alembert.models.prune import selection
from alembert.models.sentence import EmbeddingModel, load_embedding_model, read_spec
from alembert.students import StudentData, build_student


def compares_vectors(stage) -> bool:
    """Whether a stage has a term (embed_mse, embed_cosine) that compares student and teacher
    vectors directly: then the student needs the teacher's width."""
    return any(t.term.compares_vectors for t in stage.losses)


def width_free_recipes() -> list[str]:
    """The packaged embedding recipes that train a student of any width: every term of every
    stage reads sentence embeddings and none compares student and teacher vectors directly."""
    from alembert.distill.recipe import load_recipe
    from alembert.distill.recipe_files import recipe_names

    def width_free(name: str) -> bool:
        stages = load_recipe(name).stages
        reads_embeddings = all(t.term.needs.embeddings for stage in stages for t in stage.losses)
        return reads_embeddings and not any(compares_vectors(stage) for stage in stages)

    return [n for n in recipe_names() if width_free(n)]


def embedding_student_tokenizer(cfg: DistillGeneralConfig, teacher: EmbeddingModel, teacher_tok):
    """The tokenizer of the student ``cfg`` asks for, known before the student is built (the texts
    are tokenised with it first): another model's (any family, own vocabulary), else the teacher's."""
    if not cfg.student.path:
        return teacher_tok
    from alembert.models.load import load_tokenizer
    from alembert.models.resolve import resolve_model
    from alembert.models.static import is_static_folder

    if is_static_folder(resolve_model(cfg.student.path)):  # a static student trained further: its own tokenizer
        return load_tokenizer(resolve_model(cfg.student.path))
    return load_tokenizer(read_spec(cfg.student.path, cfg.pooling or teacher.pooling).encoder_path)


def check_embedding_student(cfg: DistillGeneralConfig, teacher: EmbeddingModel, student_tok) -> None:
    """What the student builder can refuse before any data loads (its ``check``): a static student's
    width, tokenizer, or a command it does not fit."""
    build_student(
        cfg.student,
        teacher.encoder,
        teacher_name=cfg.teacher,
        seed=cfg.train.seed,
        embedder=teacher,
        tokenizer=student_tok,
        check_only=True,
    )


def make_embedding_student(
    cfg: DistillGeneralConfig,
    teacher: EmbeddingModel,
    teacher_tok,
    attn,
    uses_vectors: bool,
    data: StudentData | None = None,
):
    """(student EmbeddingModel, its tokenizer, a description): the encoder from the student
    builder (:mod:`alembert.students`), wrapped in the teacher's pooling and normalisation, with
    the Dense layers of the model its weights come from when they keep the teacher's width."""
    s = cfg.student
    loaded: dict = {}

    def load(path: str):  # another model (any family, own tokenizer) as an encoder; its Dense kept aside
        from alembert.models.resolve import resolve_model
        from alembert.models.static import is_static_folder, load_static_model

        if is_static_folder(resolve_model(path)):  # a static student (its saved PCA to the teacher included)
            static, loaded["tok"] = load_static_model(resolve_model(path))
            return static
        loaded["base"], loaded["tok"] = load_embedding_model(path, cfg.pooling or teacher.pooling, attn)
        return loaded["base"].encoder

    made = build_student(
        s,
        teacher.encoder,
        data,
        teacher_name=cfg.teacher,
        seed=cfg.train.seed,
        load=load,
        embedder=teacher,
        tokenizer=data.tokenizer if data is not None else teacher_tok,
    )
    if getattr(made.model, "sentence_encoder", False):  # a whole sentence encoder (a static student): no wrapping
        student = made.model
        if student.dim != teacher.dim and uses_vectors and getattr(student, "teacher_map", None) is None:
            raise AlembertError(
                f"the student embeds in {student.dim} dimensions and the teacher in {teacher.dim}, with no map between "
                f"the two; use a recipe that compares no vectors: {', '.join(width_free_recipes())}"
            )
        return student, loaded.get("tok", teacher_tok), made.description
    source = {"teacher": teacher, "model": loaded.get("base")}.get(made.origin)
    dense = list(source.dense) if source is not None and source.dim == teacher.dim else []
    tok, desc = loaded.get("tok", teacher_tok), made.description
    student = EmbeddingModel(made.model, teacher.pooling, dense, teacher.normalize, teacher.max_seq_length)
    if student.dim != teacher.dim and uses_vectors:
        if not s.projection:
            raise AlembertError(
                f"the student embeds in {student.dim} dimensions and the teacher in {teacher.dim}, and projection "
                "is off; drop --no-projection (a Dense layer to the teacher's width) or use a recipe that compares "
                f"no vectors: {', '.join(width_free_recipes())}"
            )
        torch.manual_seed(cfg.train.seed)
        # a student cut from the teacher's residual stream starts with its kept dimensions put back in place
        selected = not teacher.dense and selection(made.model.config, teacher.dim) is not None
        start = start_projection(made.model.config, student.dim, teacher.dim) if selected else None
        student.dense.append(start or torch.nn.Linear(student.dim, teacher.dim))
        student.fresh_dense = True  # made for this run: fit_projection may initialise it
        desc += f", Dense {student.dense[-1].in_features}->{teacher.dim}"
        desc += " (started as the selection of the kept dimensions)" if selected else ""
    return student, tok, desc


@torch.no_grad()
def fit_projection(
    student, tokenizer, texts: list[str], targets, max_length: int, batch_size: int = 64, method: str = "lstsq"
) -> float:
    """Set the student's last Dense layer from its pooled (pre-Dense) embeddings ``x`` (N, d) of
    ``texts`` and the teacher's embeddings ``targets`` (N, dim); returns the mean cosine between
    the mapped embeddings and the targets.

    A random d->dim map (plus its random bias) blurs the geometry a sliced encoder already has
    (all-MiniLM-L6-v2's layers 0,2,4 score 0.738 STS-B with their own pooling; through a random
    Dense, 0.66 after 300 steps of MSE). Two closed-form starts put the student in the teacher's
    space instead:

    - ``lstsq``: the least-squares affine map, ``argmin ||[x 1] W - t||``. Closest to the targets
      (0.786 STS-B before any step, MPNet teacher) but unconstrained: on 4,096 texts of 385
      features it leans on ill-conditioned directions, and training from it collapsed (0.05 STS-B
      at step 200, lr 1e-4) in the one real run made (docs/results.md).
    - ``procrustes``: the rotation that best aligns the two spaces, ``argmin ||x R - t||`` over R
      (d, dim) with orthonormal rows (Schönemann 1966; ``scipy.linalg.orthogonal_procrustes`` on
      x padded to dim columns), no bias. ``R Rᵀ = I`` keeps every cosine between the student's own
      embeddings, so it starts exactly at the untrained slice's STS-B, already pointed at the teacher,
      with weights of a random init's scale that Adam's steps do not unbalance.

    Example::

        fit_projection(student, tok, texts, cache.emb[rows], 128, method="procrustes")
    """
    from alembert.embedding.cache import encode

    dense = student.dense[-1]
    head = torch.nn.ModuleList(list(student.dense)[:-1])
    normalize = student.normalize
    student.dense, student.normalize = head, False
    try:
        x = torch.from_numpy(encode(student, tokenizer, texts, max_length, batch_size)).double()
    finally:
        student.dense.append(dense)
        student.normalize = normalize
    t = torch.as_tensor(targets, dtype=torch.float64)
    if method == "procrustes":
        u, _, vh = torch.linalg.svd(x.T @ t, full_matrices=False)  # (d, d), (d, dim)
        w, b = u @ vh, torch.zeros(t.shape[1], dtype=t.dtype)
    elif method == "lstsq":
        x1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
        sol = torch.linalg.lstsq(x1, t).solution  # (d + 1, dim)
        w, b = sol[:-1], sol[-1]
    else:
        raise ValueError(f"projection init {method!r}: use random, lstsq or procrustes")
    dense.weight.copy_(w.T.to(dense.weight.dtype))
    dense.bias.copy_(b.to(dense.bias.dtype))
    mapped = x @ w + b
    return float(torch.nn.functional.cosine_similarity(mapped, t, dim=-1).mean())


def fit_projection_on(
    student, tokenizer, texts: list[str], cached, max_length: int, batch_size: int, method: str, n: int = 4096
) -> dict:
    """:func:`fit_projection` on ``n`` of the training ``texts`` spread evenly over the list (so
    every source of a mixed text set is in the fit: the first 4,096 texts alone were all SQuAD
    questions once, and that start reached 0.444 STS-B), against their rows of the teacher's
    ``cached`` (N, dim) embeddings. Returns what a run logs: the method, the texts, the mean cosine."""
    rows = list(range(0, len(texts), max(1, len(texts) // n)))[:n]
    cosine = fit_projection(student, tokenizer, [texts[i] for i in rows], cached[rows], max_length, batch_size, method)
    return {"projection_init": method, "texts": len(rows), "mean_cosine": round(cosine, 4)}
