"""The model card of a distilled embedding student (README.md of its sentence-transformers folder; a static
student's says so, with its width, start and vocabulary, and how model2vec loads it).
Metadata through :func:`alembert.models.card.write_card`: every zero-shot figure of the student is a
model-index entry (STS-B Spearman/Pearson, SQuAD retrieval recall and MRR)."""

from __future__ import annotations

from pathlib import Path

from alembert.distill.recipe import Recipe
from alembert.models.card import base_model, eval_results, write_card

PIPELINE_TAG = "sentence-similarity"  # the embedding task kind declares the same (tasks/embedding.py)


def asymmetric_lines(documents_by: dict | None, static: bool) -> str:
    """The card's word on search: which side encodes what. A student trained into its teacher's space
    can embed only the queries while the teacher embeds the documents once, offline."""
    if not documents_by:
        return ""
    teacher = documents_by["teacher"]
    how = (
        "the teacher's embeddings map into this model's space with the saved PCA (`alembert_teacher_map.safetensors`)"
        if static
        else "it was trained into the teacher's space"
    )
    lines = [
        f"\n## Search: queries by this model, documents by {teacher}\n",
        f"Documents embedded once, offline, by the teacher ({teacher}) can be searched with this model's query "
        f"embeddings: {how}. `alembert evaluate this_folder --task squad-retrieval --documents-by {teacher}` "
        "measures it; `alembert bench ... --documents-by` times the query side.",
    ]
    measured = documents_by.get("squad-retrieval")
    if measured:
        lines.append(
            f"\nSQuAD retrieval, questions by this model against the teacher's paragraphs: recall@1 "
            f"{measured['recall@1']:.4f}, recall@10 {measured['recall@10']:.4f}, MRR@10 {measured['mrr@10']:.4f} "
            f"(mean cosine {measured['space_cosine']:.3f} to the teacher's embeddings of the same questions)."
        )
    elif documents_by.get("refused"):
        lines.append(f"\nNot usable that way yet: {documents_by['refused']}")
    return "\n".join(lines) + "\n"


def write_embedding_card(out: Path, s: dict, recipe: Recipe) -> None:
    rows = []
    for task, metrics in s["dev"].items():
        for k, v in metrics.items():
            rows.append(f"| {task} {k} | {s['teacher_dev'][task][k]:.4f} | {v:.4f} |")
    ratio = 100 * s["student_parameters"] / s["teacher_parameters"]
    speed = s["sentences_per_second"]
    training = (
        f"{s['steps']} steps, {s['train_seconds']} s, {s['samples_per_second']} texts/s; "
        "settings in `distill_general_config.yaml`, every logged step in `log.jsonl`"
    )
    static = s["student"].startswith("static:")  # the static builder's description (alembert/students/static.py)
    if static:
        loads = (
            "A **static student**: no transformer, one vector and one weight per vocabulary token, a weighted mean, "
            "normalised (the weights are baked into the vectors). `model2vec.StaticModel.from_pretrained(this_folder)` "
            "and `SentenceTransformer(this_folder)` load it with the same vectors.\n\n"
            f"- Student: {s['student']}; then trained on the teacher's sentence embeddings with `{recipe.name}`."
        )
    else:
        loads = (
            "Made with alembert: `SentenceTransformer(this_folder).encode(texts)` loads it; "
            "`AutoModel` loads its encoder."
        )
    length = (
        f"- Max length: {s['max_length']} tokens per text (training, the teacher's embeddings and the figures above).\n"
        if s.get("max_length")
        else ""
    )
    search = asymmetric_lines(s.get("documents_by"), static)
    body = f"""# Distilled sentence-embedding student (recipe `{recipe.name}`)

{loads}

| | teacher | student |
|---|---|---|
| model | {s["teacher"]} | {s["student"]} |
| parameters | {s["teacher_parameters"]:,} | {s["student_parameters"]:,} ({ratio:.1f}%) |
{chr(10).join(rows)}

Speed (STS-B dev sentences, batches of 32, this machine's CPU threads): teacher {speed["teacher"]} sentences/s,
student {speed["student"]} sentences/s (**{speed["student"] / speed["teacher"]:.1f}x**).

Retention (main metric of each zero-shot task): {", ".join(f"{t} **{r}%**" for t, r in s["retention"].items())}.

- Recipe: {recipe.description} ({recipe.source}).
- Data: {s["texts"]:,} distinct texts; teacher embeddings computed once ({s["teacher_cache_seconds"]} s).
{length}- Training: {training}.
{search}"""
    results = [r for task, metrics in s["dev"].items() for r in eval_results(task, metrics)]
    write_card(
        out,
        body,
        model_name=f"{Path(out).name} (sentence embeddings, {recipe.name})",
        library_name="sentence-transformers",
        pipeline_tag=PIPELINE_TAG,
        tags=[
            "alembert",
            "distillation",
            "sentence-transformers",
            *(["model2vec", "static-embeddings"] if static else []),
            recipe.name,
        ],
        base=base_model(s["teacher"]),
        results=results,
    )
