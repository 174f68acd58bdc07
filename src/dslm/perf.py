"""Model FLOPs and the machine's matmul peak, for throughput and MFU figures.

Model FLOPs per token (forward), for hidden H, L tokens, n blocks, |V| outputs:

    blocks:   n * (2 * 12 H^2          # qkv (3H^2), out (H^2), MLP (8H^2) multiply-adds
                   + 4 L H)             # attention scores Q K^T and the weighted sum A V
    head:     2 H V_out
    DSL input converter: 2 d V (evidence y E^T) + 2 (V + 1) H (soft embedding p W_in)

A training step costs 3x the forward (forward + backward through activations and
weights). MFU = achieved model FLOP/s / peak FLOP/s with two honest denominators:
the hardware's dense bf16 spec (``spec_peak``: H100 SXM / H200 989, A100 312 TFLOP/s)
and a large square matmul measured on this machine (``square_peak``; the only one on a
CPU). ``matmul_peak`` on the model's own GEMM shapes is extra information (how much the
shapes themselves leave on the table), never MFU: odd widths run on slow kernels and
would flatter the ratio.

``saved_tensor_bytes`` counts the bytes autograd keeps for backward, exactly (every
saved tensor's storage once, the module's parameters and buffers excluded).
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from dslm.errors import first_line
from dslm.models.config import ModelConfig


def forward_flops_per_token(cfg: ModelConfig, seq_len: int | None = None) -> float:
    """Forward FLOPs per token of the model described by ``cfg`` (attention included; the
    kind's own matmuls from its class's ``head_gemms``), as nanoGPT's ``estimate_mfu``."""
    from dslm.models import MODEL_KINDS

    h, length, ratio = cfg.hidden_size, seq_len or cfg.seq_len, cfg.mlp_ratio
    per_block = 2 * (4 + 2 * ratio) * h * h + 4 * length * h
    head = sum(2 * k * n for _, k, n in MODEL_KINDS[cfg.kind].head_gemms(cfg, 1))
    return float(cfg.n_blocks * per_block + head)


def train_flops_per_token(cfg: ModelConfig, seq_len: int | None = None) -> float:
    return 3.0 * forward_flops_per_token(cfg, seq_len)


def gemm_shapes(cfg: ModelConfig, tokens: int) -> list[tuple[int, int, int]]:
    """(M, K, N) of the model's matmuls for ``tokens`` rows (one forward)."""
    from dslm.models import MODEL_KINDS

    h = cfg.hidden_size
    shapes = [(tokens, h, 3 * h), (tokens, h, h), (tokens, h, cfg.mlp_ratio * h),
              (tokens, cfg.mlp_ratio * h, h)] * cfg.n_blocks
    return shapes + MODEL_KINDS[cfg.kind].head_gemms(cfg, tokens)


def sync(device: torch.device) -> None:
    """Wait for queued GPU work (timing); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(shapes: list[tuple[int, int, int]], device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32, min_seconds: float = 1.0) -> float:
    """Measured FLOP/s of running the GEMMs ``shapes`` back to back (best of repeats)."""
    device = torch.device(device)
    mats = [(torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype))
            for m, k, n in shapes]
    flops = sum(2.0 * m * k * n for m, k, n in shapes)
    for a, b in mats:  # warm-up
        a @ b
    sync(device)
    best, spent = float("inf"), 0.0
    while spent < min_seconds:
        t0 = time.perf_counter()
        for a, b in mats:
            a @ b
        sync(device)
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return flops / best


#: Dense (no sparsity) bf16 tensor-core peaks, FLOP/s, by a substring of the device name
#: (first match wins: the PCIe H100 before the SXM part).
SPEC_BF16_PEAKS = (("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("A100", 312e12))


def spec_peak(device_name: str) -> float | None:
    """The dense bf16 spec peak of a known GPU (``torch.cuda.get_device_name``), else None."""
    for key, peak in SPEC_BF16_PEAKS:
        if key.lower() in device_name.lower():
            return peak
    return None


def square_peak(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                n: int | None = None, min_seconds: float = 1.0) -> float:
    """Measured FLOP/s of a large square GEMM (n = 8192 on GPU, 1024 on CPU)."""
    device = torch.device(device)
    n = n or (8192 if device.type == "cuda" else 1024)
    return matmul_peak([(n, n, n)], device, dtype, min_seconds)


def saved_tensor_bytes(fn: Callable[[], object], module: torch.nn.Module | None = None) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``fn()`` runs.

    Counted with ``torch.autograd.graph.saved_tensors_hooks``: each saved tensor's
    storage once (views share it), the storages of ``module``'s parameters and buffers
    excluded (they exist regardless of the batch).
    """
    skip = set()
    if module is not None:
        skip = {t.untyped_storage().data_ptr() for t in (*module.parameters(), *module.buffers())}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        if t.layout == torch.strided and t.device.type != "meta":
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr not in skip and ptr != 0:
                seen[ptr] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(seen.values())


# ---------------------------------------------------------------- torch.compile and fast inference


def compile_enabled(device: str | torch.device, setting: bool | None = None) -> bool:
    """Whether to ``torch.compile`` on ``device``: the ``DSLM_COMPILE`` environment variable
    (0/1) wins, then ``setting``: True compiles on CUDA (the CPU stays eager: there
    compilation costs more than it saves at the sizes CPUs run). The default (None) is
    eager: the one compiled training run measured on a GPU (H200, 2026-11-27,
    benchmarks/README.md) compiled the whole model and gave a NaN DSL loss where eager
    did not, so compilation stays opt-in until a GPU run of the block scope says more."""
    import os

    env = os.environ.get("DSLM_COMPILE", "").strip().lower()
    if env in ("0", "false", "off", "no"):
        return False
    if env in ("1", "true", "on", "yes"):
        return True
    return setting is True and torch.device(device).type == "cuda"


#: What ``torch.compile`` covers: ``blocks`` compiles each transformer block on its own
#: (one graph, reused by every block of the same shape: compilation costs one block, not
#: the whole network, and the vocabulary-wide fused functions stay eager), ``model`` the
#: whole network in one graph (longer to compile; the scope of the NaN seen on a GPU).
COMPILE_SCOPES = ("blocks", "model")
_SCOPE_ENV = "DSLM_COMPILE_SCOPE"


def compile_scope(setting: str | None = None) -> str:
    """The compile scope: ``DSLM_COMPILE_SCOPE`` wins, then ``setting``, then ``blocks``."""
    import os

    from dslm.errors import ConfigError

    env = os.environ.get(_SCOPE_ENV, "").strip().lower()
    scope = env or setting or "blocks"
    if scope not in COMPILE_SCOPES:
        where = _SCOPE_ENV if env else "compile scope"
        raise ConfigError(f"{where} must be one of {', '.join(COMPILE_SCOPES)}, got '{scope}'")
    return scope


def transformer_blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The DiT blocks inside ``module`` (a model, or a DDP / compiled wrapper of one)."""
    from dslm.models.dit import DiTBlock

    return [m for m in module.modules() if isinstance(m, DiTBlock)]


def compile_model(module: torch.nn.Module, scope: str = "blocks", **options):
    """``module`` under ``torch.compile`` (``options`` go to it) with the given scope.

    ``model``: returns ``torch.compile(module)``. ``blocks``: compiles every transformer
    block in place (``nn.Module.compile``: parameter names, ``state_dict`` and
    ``copy.deepcopy`` are unchanged; a deep copy is eager) and returns ``module`` itself;
    a module without blocks is compiled whole.
    """
    blocks = transformer_blocks(module) if scope == "blocks" else []
    if not blocks:
        return torch.compile(module, **options)
    for block in blocks:
        block.compile(**options)
    return module


def uncompile_blocks(module: torch.nn.Module) -> None:
    """Undo ``compile_model(module, "blocks")``: every block runs eagerly again."""
    for block in transformer_blocks(module):
        block._compiled_call_impl = None


def blocks_compiled(module: torch.nn.Module) -> bool:
    return any(b._compiled_call_impl is not None for b in transformer_blocks(module))


_COMPILED: "weakref.WeakKeyDictionary" = None  # type: ignore[assignment]


def compiled_module(module: torch.nn.Module, scope: str | None = None):
    """``compile_model(module, compile_scope(scope))``, once per module and scope."""
    global _COMPILED
    import weakref

    scope = compile_scope(scope)
    if scope == "blocks":
        if not blocks_compiled(module):
            return compile_model(module, "blocks")
        return module
    if _COMPILED is None:
        _COMPILED = weakref.WeakKeyDictionary()
    if module not in _COMPILED:
        _COMPILED[module] = torch.compile(module)
    return _COMPILED[module]


class FastNetwork:
    """A model call for inference on a GPU: bf16 autocast, TF32, ``torch.compile`` when
    enabled (falling back to eager, with a warning, if compilation fails); floating
    outputs are returned as float32. With the block scope the model's own blocks are
    compiled in place, so later calls of that model object are compiled too."""

    def __init__(self, fn: Callable, device: torch.device):
        self.eager = fn
        self.device = device
        self.fn = fn
        self.compiled = isinstance(fn, torch.nn.Module) and compile_enabled(device)
        if self.compiled:
            self.fn = compiled_module(fn)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    def __call__(self, *args, **kwargs):
        try:
            out = self._run(self.fn, args, kwargs)
        except Exception as e:          # noqa: BLE001 - a compiler failure: eager is the reference
            if not self.compiled:
                raise
            import warnings

            warnings.warn(f"torch.compile failed ({e.__class__.__name__}: {first_line(e, 200)}); "
                          "running the model eagerly", RuntimeWarning, stacklevel=2)
            self.fn, self.compiled = self.eager, False
            uncompile_blocks(self.eager)
            out = self._run(self.fn, args, kwargs)
        return out

    def _run(self, fn, args, kwargs):
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            out = fn(*args, **kwargs)
        return out.float() if torch.is_tensor(out) and out.is_floating_point() else out


def fast_network(fn: Callable, device: torch.device) -> Callable:
    """``fn`` itself on the CPU; a :class:`FastNetwork` on a GPU."""
    if torch.device(device).type != "cuda":
        return fn
    return FastNetwork(fn, torch.device(device))
