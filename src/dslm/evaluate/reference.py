"""Where reference (held-out) texts come from: a file, or the validation split of the
data a checkpoint was trained on (``prepare_data(...).reference_texts(n, seed)``)."""

from __future__ import annotations

from dslm.errors import DataError

VALIDATION = "validation"


def validation_texts(data_config, n: int, seed: int, tokenizer=None) -> list[str]:
    """``n`` decoded held-out blocks of the corpus described by ``data_config``."""
    from dslm.data import prepare_data

    prepared = prepare_data(data_config, tokenizer=tokenizer)
    if prepared.reference_texts is None:
        raise DataError(f"data source '{data_config.source}' offers no held-out reference texts")
    texts = list(prepared.reference_texts(n, seed))
    if not texts:
        raise DataError(f"data source '{data_config.source}' gave no reference texts")
    return texts


def load_reference(spec: str, n: int, seed: int, checkpoint=None,
                   data_config=None) -> list[str]:
    """Reference texts for ``spec``: ``validation`` (from ``data_config`` or ``checkpoint``,
    a ``Checkpoint`` or any source ``open_checkpoint`` reads)
    or a ``.txt``/``.jsonl`` file."""
    from dslm.evaluate.samples import read_reference_file

    if spec != VALIDATION:
        return read_reference_file(spec, n, seed)
    if data_config is not None:
        return validation_texts(data_config, n, seed)
    if checkpoint is None:
        raise DataError("--reference validation needs a dslm checkpoint whose data config "
                        "names the corpus (or pass a .txt/.jsonl file)")
    from dslm.models.checkpoint import Checkpoint, open_checkpoint

    opened = checkpoint if isinstance(checkpoint, Checkpoint) else open_checkpoint(checkpoint, weights=False)
    return validation_texts(opened.data_config(), n, seed, opened.tokenizer())


def reference_pair(spec: str, n: int, seed: int, checkpoint=None,
                   data_config=None) -> tuple[list[str], list[str]]:
    """Two reference sets of ``n`` texts: the one samples are scored against, and a second
    one for the reference data's own MAUVE. Disjoint when the source holds 2n texts, else
    two independent draws (seeds ``seed`` and ``seed + 1``)."""
    try:
        pool = load_reference(spec, 2 * n, seed, checkpoint, data_config)
    except DataError:           # fewer than 2n held-out blocks
        pool = []
    if len(pool) >= 2 * n:
        return pool[:n], pool[n:2 * n]
    return (load_reference(spec, n, seed, checkpoint, data_config),
            load_reference(spec, n, seed + 1, checkpoint, data_config))
