"""Export a static sentence encoder (a model2vec folder: alembert's static student, or
``model2vec.distill``'s output) to one ONNX graph.

A static model has no layers: a sentence is the weighted mean of its tokens' vectors, normalised
(:class:`alembert.models.static.StaticEmbeddingModel`). The graph is exactly that, with inputs
``input_ids``, ``attention_mask`` (batch and sequence axes dynamic) and output ``sentence_embedding``:

    table[input_ids]              Gather of the (vocab, dim) vectors, the token weights multiplied in
    weights[input_ids] * mask     Gather of the (vocab,) weights, zero for special tokens and padding
    sum_i mask_i table_i / sum_i weights_i mask_i,  then L2-normalised

so [CLS], [SEP], [PAD] and [UNK] count for nothing, as in PyTorch, and a page tokenising with the
special tokens gets the same vector as model2vec tokenising without them. The graph goes through
the other exports' toolkit (:func:`alembert.export.graph.build_graph`): the exporter, then int8 on
``--quantize int8``, which here is onnxruntime's dynamic quantisation of the one big tensor, the
table's Gather (8-bit rows, one scale and zero point for the table, the gathered rows dequantised:
the file about 4x smaller; it buys no speed, a Gather moves the same few rows either way and the
dequantisation is extra work: 0.85x the fp32 graph's batch-32 throughput on a tiny table). No attention, no
optimiser pass (nothing to fuse). The folder keeps the tokenizer and the model2vec ``config.json``
(no transformers config: the ONNX runtime reads the record, not the config); ``alembert evaluate``
and ``bench`` run it through :class:`alembert.runtimes.onnxruntime.OnnxEmbedder`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from alembert.export.graph import agreement, build_graph, graph_outputs, reference_outputs, versions
from alembert.export.staging import EXPORT_INFO, staged_folder
from alembert.files import write_json_atomic
from alembert.runtimes.onnxruntime import OnnxRuntime

OUTPUT = "sentence_embedding"
INPUTS = ["input_ids", "attention_mask"]
POOLING = "weighted mean"  # what the record and the web page say: a static model's pooling is its whole computation


class StaticGraph(torch.nn.Module):
    """What the graph computes: the forward of a :class:`~alembert.models.static.StaticEmbeddingModel`
    with the token weights baked into the table (one multiply less per token) and special tokens zero
    in both tables."""

    def __init__(self, model):
        super().__init__()
        with torch.no_grad():
            weights = (model.token_weights * model.keep).detach().clone()
            self.register_buffer("table", model.baked().detach().clone())  # (vocab, dim): w_i e_i
            self.register_buffer("weights", weights[:, None])  # (vocab, 1): w_i, 0 for special tokens
        self.normalize = model.normalize

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.to(self.table.dtype).unsqueeze(-1)  # F.embedding: ONNX Gather (indexing: GatherND)
        summed = (F.embedding(input_ids, self.table) * mask).sum(dim=1)  # sum_i w_i e_i over the real tokens
        count = (F.embedding(input_ids, self.weights) * mask).sum(dim=1)  # sum_i w_i
        emb = summed / count.clamp(min=1e-9)
        return F.normalize(emb, p=2, dim=-1) if self.normalize else emb


def export_static_onnx(
    src: Path, out_dir: Path, quantize: str | None = None, opset: int | None = None, overwrite: bool = False
) -> Path:
    """Export the static folder ``src`` to ``out_dir`` (fresh or overwritable:
    :func:`alembert.export.onnx.export_onnx` checked it); returns ``out_dir``."""
    from alembert.models.static import load_static_model

    model, tokenizer = load_static_model(src)
    model.eval()
    reference = reference_outputs(model, tokenizer, INPUTS, read=lambda out: out.embeddings)
    example = {n: torch.from_numpy(v) for n, v in reference[0][0].items()}
    graph_model = StaticGraph(model).eval()
    config = SimpleNamespace(_attn_implementation="none", model_type="static")  # no attention, nothing to fuse
    table_bytes = model.bag.weight.numel() * model.bag.weight.element_size()

    with staged_folder(out_dir, overwrite, 3 * table_bytes) as tmp:
        graph = build_graph(graph_model, example, tmp, config, quantize, opset, OUTPUT)
        tokenizer.save_pretrained(tmp)
        shutil.copy(src / "config.json", tmp / "config.json")  # model2vec's: normalize, seq_length, ...
        write_json_atomic(
            tmp / EXPORT_INFO,
            {
                "format": OnnxRuntime.format,
                "kind": "embedding",
                "static": True,
                "source": str(src.resolve()),
                "quantization": quantize,
                "opset": graph["opset"],
                "inputs": INPUTS,
                "outputs": [OUTPUT],
                "dynamic_axes": {"batch": 0, "sequence": 1},
                "pooling": POOLING,
                "dense": [],
                "normalize": model.normalize,
                "dim": model.dim,
                "vocab_size": model.vocab_size,
                "special_ids": [int(i) for i in torch.nonzero(model.keep == 0).flatten()],
                "max_seq_length": model.max_seq_length,
                "attention": graph["attention"],
                "ort_optimized": graph["ort_optimized"],
                "int8": "dynamic; the token table's Gather, 8 bits with one scale and zero point"
                if graph["int8"]
                else None,
                **agreement(graph_outputs(tmp / "model.onnx", reference, OUTPUT), embedding=True),
                **versions(),
                "files": sorted({f.name for f in tmp.iterdir()} | {EXPORT_INFO}),
            },
        )
    return out_dir
