"""Optional packages: what each command really imports, checked before any work.

``require("matplotlib", for_="sweep plots")`` imports the module (a broken install
fails here too) or raises a one-line :class:`~dslm.errors.DSLMError` naming the pip
package and the extra that installs it. ``dslm doctor`` runs the same imports, plus
the dslm modules of each command, so "ready" means the command's imports succeed.
"""

from __future__ import annotations

import importlib

from dslm.errors import DSLMError, first_line

#: import name -> (PyPI name, dslm extra that installs it)
PACKAGES = {
    "datasets": ("datasets", "full"),
    "tokenizers": ("tokenizers", "full"),
    "transformers": ("transformers", "full"),
    "huggingface_hub": ("huggingface_hub", "full"),
    "mauve": ("mauve-text", "full"),
    "faiss": ("faiss-cpu", "full"),
    "matplotlib": ("matplotlib", "full"),
    "scipy": ("scipy", "full"),
    "PIL": ("pillow", "full"),
    "rich": ("rich", "full"),
}

#: What each command imports with its defaults (embedded corpus, byte-level BPE, an
#: offline dslm AR judge): third-party packages, then dslm modules.
COMMAND_PACKAGES = {
    "demo": ["datasets", "tokenizers", "mauve", "faiss", "matplotlib", "PIL"],
    "train": ["datasets", "tokenizers"],
    "finetune": ["datasets", "tokenizers"],
    "sample": ["tokenizers"],
    "eval": ["tokenizers", "mauve", "faiss"],
    "sweep": ["datasets", "tokenizers", "mauve", "faiss", "matplotlib"],
    "analyze": ["tokenizers", "matplotlib"],
    "export": [],
    "trace": ["matplotlib", "PIL"],
}
COMMAND_MODULES = {
    "demo": ["dslm.demo", "dslm.train", "dslm.data.prepare", "dslm.evaluate.sweep",
             "dslm.evaluate.report", "dslm.evaluate.metrics"],
    "train": ["dslm.train", "dslm.data.prepare", "dslm.train.starts"],
    "finetune": ["dslm.train", "dslm.data.prepare", "dslm.train.starts", "dslm.models.convert"],
    "sample": ["dslm.sampling", "dslm.models.checkpoint", "dslm.data.tokenizers"],
    "eval": ["dslm.evaluate.metrics", "dslm.evaluate.lm", "dslm.evaluate.reference",
             "dslm.evaluate.samples"],
    "sweep": ["dslm.evaluate.sweep", "dslm.evaluate.report", "dslm.evaluate.metrics",
              "dslm.sampling"],
    "analyze": ["dslm.analyze", "dslm.analyze.calibration", "dslm.analyze.selfcorrection",
                "dslm.api"],
    "export": ["dslm.models.export"],
    "trace": ["dslm.trace.render", "dslm.trace.html"],
}

#: Why a package is needed, for the messages.
PURPOSE = {
    "datasets": "corpus preparation",
    "tokenizers": "the byte-level BPE tokenizer",
    "transformers": "GPT-2 tokenizer / Hugging Face judges",
    "huggingface_hub": "hub downloads",
    "mauve": "MAUVE",
    "faiss": "MAUVE's clustering",
    "matplotlib": "sweep.png plots",
    "scipy": "statistical tests",
    "PIL": "trace pictures",
    "rich": "the live terminal view",
}


def import_error(module: str) -> str | None:
    """None when ``module`` imports, else a one-line reason."""
    try:
        importlib.import_module(module)
    except ImportError as e:
        return f"{e.__class__.__name__}: {first_line(e) if str(e) else module}"
    except Exception as e:  # noqa: BLE001 - a broken install is "not usable" too
        return f"{e.__class__.__name__}: {first_line(e, 120)}"
    return None


def install_hint(module: str) -> str:
    dist, extra = PACKAGES.get(module, (module, None))
    return (f"pip install 'dslm[{extra}]' (or pip install {dist})" if extra
            else f"pip install {dist}")


def require(module: str, for_: str | None = None) -> None:
    """Import ``module`` or raise a one-line DSLMError naming what to install."""
    reason = import_error(module)
    if reason is None:
        return
    dist = PACKAGES.get(module, (module, None))[0]
    what = for_ or PURPOSE.get(module, module)
    raise DSLMError(f"{what} needs the Python package '{dist}', which cannot be imported "
                    f"({reason}); {install_hint(module)}")


def require_all(modules, for_: str) -> None:
    for m in modules:
        require(m, f"{for_} ({PURPOSE.get(m, m)})")


def command_problems(command: str) -> list[str]:
    """Modules that ``dslm <command>`` imports and that fail to import here."""
    bad = []
    for m in COMMAND_PACKAGES.get(command, []) + COMMAND_MODULES.get(command, []):
        if import_error(m) is not None:
            bad.append(m)
    return bad
