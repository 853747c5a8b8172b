"""``alembert predict MODEL "text" ["second text"]``: the label and class probabilities of
one example, from a PyTorch folder or an ONNX export."""


def register(sub) -> None:
    p = sub.add_parser("predict", help="label one text (or text pair) with a fine-tuned model")
    p.add_argument("model", help="fine-tuned model folder or ONNX export")
    p.add_argument("text", help="the text")
    p.add_argument("text_pair", nargs="?", help="the second text, for sentence-pair tasks")
    p.add_argument("--max-length", type=int, default=512, help="truncate to this many tokens (default 512)")
    p.set_defaults(run=run)


def run(args) -> int:
    import torch

    from alembert.export.runtime import load_any
    from alembert.models.load import load_tokenizer

    model = load_any(args.model)
    tokenizer = load_tokenizer(args.model)
    enc = tokenizer(args.text, args.text_pair, truncation=True, max_length=args.max_length, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**enc).logits[0].float()
    config = model.config
    if config.num_labels == 1:
        print(f"score: {logits[0].item():.4f}")
        return 0
    probs = logits.softmax(-1).tolist()
    best = max(range(len(probs)), key=probs.__getitem__)
    print(f"label: {config.id2label[best]}")
    for i, p in enumerate(probs):
        print(f"  {config.id2label[i]:<20} {p:.4f}")
    return 0
