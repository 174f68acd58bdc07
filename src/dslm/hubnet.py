"""Is the Hugging Face hub reachable? Answer in seconds, not after minutes of retries.

:func:`probe` opens one TCP connection to the hub endpoint (``HF_ENDPOINT``, default
``https://huggingface.co``) with a short timeout (``DSLM_HUB_TIMEOUT`` seconds,
default 3), name resolution included. :func:`ensure_hub` is called before anything
fetches a model, tokenizer or dataset: with ``HF_HUB_OFFLINE=1`` it does nothing
(the libraries read their local cache); when the probe fails it switches the process
to offline mode, so files already in the local cache still load at once, and
anything not cached fails fast with :func:`offline_advice`.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from urllib.parse import urlparse

from dslm.errors import DSLMError

_RESULT: dict[str, tuple[bool, str]] = {}


def offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() not in ("0", "", "false", "no")


def endpoint() -> tuple[str, int]:
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def timeout_s() -> float:
    try:
        return max(0.1, float(os.environ.get("DSLM_HUB_TIMEOUT", "3")))
    except ValueError:
        return 3.0


def probe(timeout: float | None = None, fresh: bool = False) -> tuple[bool, str]:
    """(reachable, detail) of the hub endpoint, within ``timeout`` seconds (remembered)."""
    host, port = endpoint()
    key = f"{host}:{port}"
    if key in _RESULT and not fresh:
        return _RESULT[key]
    timeout = timeout_s() if timeout is None else timeout
    answer: list[tuple[bool, str]] = []

    def connect() -> None:
        began = time.perf_counter()
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answer.append((True, f"{key} answered in {time.perf_counter() - began:.2f} s"))
        except OSError as e:
            answer.append((False, f"no connection to {key} ({e.__class__.__name__}: "
                                  f"{getattr(e, 'strerror', None) or e})"))

    t = threading.Thread(target=connect, daemon=True)   # name resolution has no timeout
    t.start()
    t.join(timeout + 0.5)
    result = answer[0] if answer else (False, f"no connection to {key} within {timeout:g} s")
    _RESULT[key] = result
    return result


def offline_advice() -> str:
    return ("work offline: pass local folders (a checkpoint folder, data.hf_local_path, "
            "DSLM_GPT2_TOKENIZER, a dslm AR judge) and set HF_HUB_OFFLINE=1 "
            "(files already in the Hugging Face cache then load without the network)")


def go_offline() -> None:
    """Switch this process to the hub libraries' offline mode (no retries)."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ[var] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    dconfig = sys.modules.get("datasets.config")
    if dconfig is not None and hasattr(dconfig, "HF_HUB_OFFLINE"):
        dconfig.HF_HUB_OFFLINE = True


def ensure_hub(what: str, cached: bool = False) -> None:
    """Before fetching ``what`` from the hub: fail within seconds when it cannot work.

    ``cached``: the files are already in the local cache, so an unreachable hub only
    switches to offline mode. Otherwise an unreachable hub is a one-line DSLMError.
    """
    if offline_env():
        if cached:
            return
        failed = [d for ok, d in _RESULT.values() if not ok]
        why = (f"the hub is unreachable ({failed[0]})" if failed
               else "HF_HUB_OFFLINE is set")
        raise DSLMError(f"{what} is not in the local Hugging Face cache and {why}; "
                        + offline_advice())
    ok, detail = probe()
    if ok:
        return
    go_offline()
    if cached:
        print(f"dslm: note: the Hugging Face hub is unreachable ({detail}); using the local "
              f"cache for {what}", file=sys.stderr)
        return
    raise DSLMError(f"{what} needs the Hugging Face hub, which is unreachable ({detail}); "
                    + offline_advice())


def in_hub_cache(repo_id: str, filename: str = "config.json", cache_dir=None) -> bool:
    """Whether ``repo_id``'s ``filename`` is already in the local hub cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        found = try_to_load_from_cache(repo_id, filename,
                                       cache_dir=str(cache_dir) if cache_dir else None)
    except Exception:  # noqa: BLE001 - a malformed id is simply "not cached"
        return False
    return isinstance(found, str)
