"""``alembert predict MODEL TEXT [TEXT ...] [--pair]``: the label and class probabilities of
each text, from any folder a runtime runs (a PyTorch folder, an ONNX export; alembert/runtimes/).

Several texts are scored one by one; ``--pair`` scores them as (first, second) text pairs,
for sentence-pair tasks (an even number of texts). Texts longer than the model can take are
truncated to its position table (or ``--max-length``, when shorter)."""

from alembert.errors import AlembertError


def register(sub) -> None:
    p = sub.add_parser("predict", help="label texts (or text pairs, --pair) with a fine-tuned model")
    p.add_argument("model", help="fine-tuned model folder or its export (ONNX)")
    p.add_argument("texts", nargs="+", metavar="TEXT", help="the texts; each is scored on its own unless --pair")
    p.add_argument(
        "--pair",
        action="store_true",
        help="score the texts as pairs: TEXT1 TEXT2 [TEXT3 TEXT4 ...] (sentence-pair tasks)",
    )
    p.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="truncate to this many tokens (default: the length the model was trained with, else 512; "
        "at most the model's)",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    import torch

    from alembert.data.tokenize import clip
    from alembert.models.load import load_tokenizer, max_positions
    from alembert.models.preprocessing import max_length_for
    from alembert.models.resolve import resolve_model
    from alembert.runtimes import load_any

    if args.pair and len(args.texts) % 2:
        raise AlembertError(f"--pair: {len(args.texts)} texts given; pass them two by two (first text, second text)")
    model = load_any(args.model)
    tokenizer = load_tokenizer(args.model)
    config = model.config
    wanted = max_length_for(resolve_model(args.model), args.max_length, 512)
    max_length = min(wanted, max_positions(config) or wanted)
    examples = (
        list(zip(args.texts[::2], args.texts[1::2], strict=True)) if args.pair else [(t, None) for t in args.texts]
    )
    for n, (text, pair) in enumerate(examples):
        text_in, pair_in = clip([text], max_length)[0], None if pair is None else clip([pair], max_length)[0]
        enc = tokenizer(text_in, pair_in, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.inference_mode():
            logits = model(**enc).logits[0].float()
        if len(examples) > 1:
            print(f"{'pair' if args.pair else 'text'} {n + 1}: {text!r}" + (f" / {pair!r}" if pair is not None else ""))
        if config.num_labels == 1:
            print(f"score: {logits[0].item():.4f}")
            continue
        probs = logits.softmax(-1).tolist()
        best = max(range(len(probs)), key=probs.__getitem__)
        print(f"label: {config.id2label[best]}")
        for i, p in enumerate(probs):
            print(f"  {config.id2label[i]:<20} {p:.4f}")
    return 0
