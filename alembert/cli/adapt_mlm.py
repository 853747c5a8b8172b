"""``alembert adapt-mlm``: give an encoder without a masked-LM head one, trained with the whole model on raw text."""

from alembert.cli.common import (
    add_config_flags,
    add_train_flags,
    add_transfer_task_flag,
    config_from_args,
    describe_flags,
    flag,
    print_table,
)
from alembert.config.schema import AdaptMLMConfig


def register(sub) -> None:
    p = sub.add_parser("adapt-mlm", help="masked-LM adaptation: a tied head, trained alone, then the whole model")
    flag(p, "--model", "model", help="encoder to adapt: folder, alias (mpnet-base, minilm-l6) or hub id")
    flag(p, "--corpus", "data.corpus", nargs="+", help=".txt files or folders; squad: the SQuAD training paragraphs")
    add_transfer_task_flag(p)
    flag(
        p,
        "--eval-text",
        "data.eval_text",
        nargs="+",
        metavar="SOURCE",
        help="more held-out text never trained on: .txt files or folders, or squad (held-out SQuAD paragraphs)",
    )
    flag(p, "--max-length", "data.max_length", type=int, help="tokens per packed sequence (default 128)")
    flag(p, "--max-sequences", "data.max_sequences", type=int, help="use the first N packed sequences")
    flag(p, "--heldout", "data.heldout", type=int, help="held-out sequences per evaluation set (default 128)")
    flag(p, "--mlm-probability", "data.mlm_probability", type=float, help="share of tokens masked (default 0.15)")
    flag(
        p,
        "--pppl-sequences",
        "data.pppl_sequences",
        type=int,
        help="sequences per held-out set scored by pseudo-perplexity at each evaluation (default 4; 0: none)",
    )
    flag(p, "--head-steps", "head_steps", type=int, help="steps training the new head alone first (default 200)")
    flag(p, "--head-lr", "head_lr", type=float, help="learning rate of the head-only steps (default 5e-4)")
    add_config_flags(p)
    add_train_flags(p)
    describe_flags(p, AdaptMLMConfig)
    p.set_defaults(run=run)


def execute(args):
    """(config, summary) of the run ``args`` asks for: the CLI's and the Python API's one path."""
    from alembert.mlm.adapt import run_adapt_mlm

    cfg = config_from_args(AdaptMLMConfig, args)
    return cfg, run_adapt_mlm(cfg)


def run(args) -> int:
    cfg, s = execute(args)
    if s.get("dry_run"):
        return 0
    d = s["details"]
    rows = [
        {"set": name, **{k: s["dev"].get(f"{name}_{k}") for k in ("top1", "top5", "pppl")}} for name in d["eval_sets"]
    ]
    print_table(f"adapt-mlm {s['model']} ({s['steps']} steps, best at {s['best_step']})", rows)
    for e in d["fill_mask"]:
        print(f"{e['text']} -> " + ", ".join(f"{p['token']} ({p['p']})" for p in e["top3"]))
    print(f"saved to {cfg.output_dir}")
    return 0
