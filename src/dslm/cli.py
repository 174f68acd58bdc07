"""The ``dslm`` command line.

Each command lives in ``dslm/commands/<name>.py`` and defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Command modules import heavy
libraries inside ``run`` so that ``dslm --help`` stays fast. Every
:class:`~dslm.errors.DSLMError` is printed as one line, ``dslm: error: ...``, with
exit status 2; set ``DSLM_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from dslm import __version__
from dslm.errors import DSLMError

#: Command names in the order ``dslm --help`` lists them; modules not present are skipped.
COMMANDS = ["demo", "train", "finetune", "sample", "eval", "sweep", "analyze", "export", "doctor",
            "trace"]


def _load_commands():
    found = {}
    for name in COMMANDS:
        try:
            found[name] = importlib.import_module(f"dslm.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"dslm.commands.{name}":
                raise
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dslm", description="Discrete Stochastic Localization language models.")
    parser.add_argument("--version", action="version", version=f"dslm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in _load_commands().items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _close_progress_bars() -> None:
    """Close open progress bars, so that the error line starts a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", None) or []):
        try:
            bar.close()
        except Exception:  # noqa: BLE001 - cosmetic only
            pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may come before or after options (`--out d a=1 --resume b=2`)
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = list(args.overrides) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 1
    try:
        return int(args._run(args) or 0)
    except DSLMError as e:
        if os.environ.get("DSLM_DEBUG"):
            raise
        _close_progress_bars()
        print(f"dslm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dslm: interrupted", file=sys.stderr)
        return 130
    except (OSError, RuntimeError, MemoryError) as e:
        # the safety net: an I/O or serialisation failure deep inside still ends as one line
        from dslm.io import describe_os_error, write_failure

        if os.environ.get("DSLM_DEBUG"):
            raise
        if isinstance(e, OSError):
            message = describe_os_error(e, "access")
        elif isinstance(e, MemoryError):
            message = "out of memory; use a smaller model, batch or sequence length"
        else:
            failure = write_failure(e, "the output")
            if failure is None:
                raise
            message = str(failure)
        _close_progress_bars()
        print(f"dslm: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
