"""The ``alembert`` command: one sub-command per module under alembert/cli/.

A module of this package that defines ``register(subparsers)`` is a command named after it
(``distill_general.py`` -> ``distill-general``): adding a command is adding its module. The
command modules import only argparse-level code at the top (torch and the models load
inside ``run``), so ``alembert --help`` stays fast."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from alembert import __version__
from alembert.cli.common import no_abbreviations
from alembert.errors import AlembertError

#: the training commands first (the order of ``--help``), then every other command module alphabetically
FIRST = ("distill", "distill-general", "finetune", "evaluate")


def command_modules() -> dict[str, object]:
    """``{command name: module}`` of every module of alembert/cli/ that defines ``register``."""
    import alembert.cli as package

    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name in ("main", "common"):
            continue
        module = importlib.import_module(f"alembert.cli.{info.name}")
        if callable(getattr(module, "register", None)):
            found[info.name.replace("_", "-")] = module
    return dict(sorted(found.items(), key=lambda kv: (FIRST.index(kv[0]) if kv[0] in FIRST else len(FIRST), kv[0])))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alembert", description="Distil BERT-family encoders into smaller, faster students.", allow_abbrev=False
    )
    parser.add_argument("--version", action="version", version=f"alembert {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in command_modules().values():
        module.register(sub)
    no_abbreviations(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    _quiet_libraries()
    try:
        args = build_parser().parse_args(argv)
        return args.run(args) or 0
    except AlembertError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; files already written are complete (written atomically)", file=sys.stderr)
        return 130
    except Exception as exc:  # a full disk met outside the guarded writers still gets the one-line error
        from alembert.files import disk_full_error, is_disk_full

        if debug or not is_disk_full(exc):
            raise
        where = getattr(exc, "filename", None) or os.getcwd()
        print(f"error: {disk_full_error(where)}", file=sys.stderr)
        return 2
    finally:
        from alembert.files import release_output

        release_output()  # the output folders this command locked


def _quiet_libraries() -> None:
    """Keep the libraries' own progress bars and warnings out of alembert's output."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


if __name__ == "__main__":
    sys.exit(main())
