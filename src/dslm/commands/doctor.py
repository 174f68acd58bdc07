"""`dslm doctor`: report the environment and what each command needs."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import shutil
import sys

HELP = "report the environment (torch, device, memory, optional packages) and what each command needs"

#: Optional packages and the commands that use them.
OPTIONAL = {
    "transformers": "GPT-2 tokenizer, GPT-2 Large judge/featurizer (sample, eval, sweep, owt data)",
    "tokenizers": "byte-level BPE tokenizer (train on local corpora)",
    "datasets": "HF datasets: openwebtext, text8, wikitext-103, lm1b (train)",
    "huggingface_hub": "hub checkpoints: kuleshov-group/mdlm-owt, from_pretrained (finetune, export)",
    "mauve": "MAUVE (eval, sweep, demo); the PyPI package is mauve-text",
    "faiss": "needed by mauve-text for clustering (eval, sweep, demo); PyPI faiss-cpu",
    "matplotlib": "sweep.png plots (sweep, demo)",
    "scipy": "statistical tests (tests only)",
    "tqdm": "progress bars (all long commands)",
    "flash_attn": "optional; dslm uses torch SDPA, which picks flash kernels on GPU by itself",
}

#: What each command imports beyond torch, with its defaults (``dslm.extras``).
from dslm.extras import COMMAND_MODULES, COMMAND_PACKAGES as NEEDS, command_problems, install_hint  # noqa: E402


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--offline", action="store_true",
                        help="do not test the connection to the Hugging Face hub")


def _version(module: str) -> str | None:
    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 - any import failure means "not usable"
        return None
    dist = {"mauve": "mauve-text", "faiss": "faiss-cpu", "flash_attn": "flash-attn"}.get(module, module)
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "installed"


def _memory_gib() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return pages * size / 2 ** 30
    except (ValueError, OSError, AttributeError):
        return None


def _hub(test: bool) -> dict:
    from dslm.hubnet import endpoint, offline_env, probe

    host, port = endpoint()
    if offline_env():
        return {"state": "offline", "detail": "HF_HUB_OFFLINE is set: only local files and "
                                              "the local cache are used"}
    if not test:
        return {"state": "untested", "detail": f"{host}:{port} not tested (--offline)"}
    ok, detail = probe(fresh=True)
    return {"state": "reachable" if ok else "unreachable", "detail": detail}


def collect(test_hub: bool = True) -> dict:
    """The environment report as a dict (also used by tests)."""
    import torch

    from dslm.provenance import environment

    report = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "memory_gib": _memory_gib(),
        "disk_free_gib": shutil.disk_usage(".").free / 2 ** 30,
        "cuda": torch.cuda.is_available(),
        "gpus": [],
        "bf16_supported": bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported()),
        "hub_offline": os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"),
        "hub": _hub(test_hub),
        "packages": {m: _version(m) for m in OPTIONAL},
        "environment": environment(),
    }
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            report["gpus"].append({"name": p.name, "memory_gib": p.total_memory / 2 ** 30})
    # what each command really imports: its packages and its own dslm modules
    report["commands"] = {cmd: command_problems(cmd) for cmd in COMMAND_MODULES}
    return report


def run(args) -> int:
    report = collect(test_hub=not args.offline)
    if args.json:
        import json

        print(json.dumps(report, indent=2))
        return 0
    mem = f"{report['memory_gib']:.1f} GiB" if report["memory_gib"] else "unknown"
    print(f"python {report['python']} on {report['platform']}")
    print(f"torch {report['torch']}, {report['cpu_threads']} CPU threads, memory {mem}, "
          f"disk free {report['disk_free_gib']:.1f} GiB")
    if report["gpus"]:
        for i, g in enumerate(report["gpus"]):
            print(f"gpu {i}: {g['name']} ({g['memory_gib']:.1f} GiB), bf16 {report['bf16_supported']}")
    else:
        print("gpu: none (training and sampling run on the CPU in fp32)")
    hub = report["hub"]
    print(f"hub: {hub['state']} ({hub['detail']})")
    if hub["state"] == "unreachable":
        from dslm.hubnet import offline_advice

        print(f"  {offline_advice()}")
    print("optional packages:")
    for mod, what in OPTIONAL.items():
        ver = report["packages"][mod]
        print(f"  {mod:16s} {ver or 'missing':12s} {what}")
    print("commands:")
    for cmd, missing in report["commands"].items():
        state = "ready" if not missing else "cannot import " + ", ".join(missing)
        print(f"  dslm {cmd:9s} {state}")
        for m in missing:
            if m in OPTIONAL:
                print(f"      {m}: {install_hint(m)}")
    return 0
