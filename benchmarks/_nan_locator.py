"""Where a compiled training step first goes non-finite (used by ``bench_train.py``).

Called on the first compiled step whose loss or gradients are non-finite, before the
optimizer step (so the parameters are still those that gave it), with the generator
state of that step:

1. the same batch, the same noise (generator state restored), the same parameters,
   eagerly: the loss, the modules whose eager output is non-finite (forward hooks);
2. the parameter gradients of the compiled step against the eager ones: the
   parameters whose compiled gradient is non-finite, and the largest relative
   differences;
3. the model in pieces, each compiled on its own and fed the eager inputs captured in
   1: the DSL converter (``input_embedding``), block 0, and the head's features +
   fused cross-entropy (``head_cross_entropy``); forward output and input/parameter
   gradients against eager. The first piece whose compiled result is non-finite (or far
   from eager) is where inductor's code diverges.

Everything is printed (lines starting ``nan-locator:``) and returned as a dict for the
benchmark's JSON.
"""

from __future__ import annotations

import time

import torch


def _finite(t) -> bool:
    return t is None or bool(torch.isfinite(t).all())


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def _first_tensor(out):
    if torch.is_tensor(out):
        return out
    if isinstance(out, (tuple, list)) and out and torch.is_tensor(out[0]):
        return out[0]
    return None


def _say(report: dict, line: str) -> None:
    print(f"nan-locator: {line}", flush=True)
    report.setdefault("lines", []).append(line)


def locate(model, loss_fn, x, gen, gen_state, compiled_loss, use_amp: bool,
           device: torch.device, budget_s: float = 60.0, backend: str = "inductor") -> dict:
    """See the module docstring. ``loss_fn(module_or_compiled, x, gen)`` -> LossOutput;
    the compiled step's gradients are still in ``p.grad``."""
    began = time.perf_counter()
    report: dict = {"compiled_loss": float(compiled_loss),
                    "nonfinite_parameters": [n for n, p in model.named_parameters()
                                             if not _finite(p.detach())][:8]}
    names = dict(model.named_parameters())
    compiled_grads = {n: p.grad.detach().clone() for n, p in names.items() if p.grad is not None}
    model.zero_grad(set_to_none=True)

    # 1. eager rerun with forward hooks
    bad_modules, captured, hooks = [], {}, []
    for mname, module in model.named_modules():
        def hook(mod, args, out, mname=mname):
            t = _first_tensor(out)
            if t is not None and t.is_floating_point() and not _finite(t.detach()):
                bad_modules.append(mname or "<model>")
        hooks.append(module.register_forward_hook(hook))
    blocks = getattr(getattr(model, "backbone", None), "blocks", None)

    def keep(key):
        def pre(mod, args, kwargs):
            captured[key] = ([a.detach().clone() if torch.is_tensor(a) else a for a in args],
                             {k: v.detach().clone() if torch.is_tensor(v) else v
                              for k, v in kwargs.items()})
        return pre

    hooks.append(model.register_forward_pre_hook(keep("model"), with_kwargs=True))
    if blocks is not None and len(blocks):
        hooks.append(blocks[0].register_forward_pre_hook(keep("block0"), with_kwargs=True))
        hooks.append(blocks[-1].register_forward_hook(
            lambda mod, args, out: captured.__setitem__("last", (out.detach().clone(), args[3].detach()))))
    gen.set_state(gen_state)
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            eager = loss_fn(model, x, gen)
        eager.loss.backward()
    finally:
        for h in hooks:
            h.remove()
    report["eager_loss"] = float(eager.loss.detach())
    report["eager_nonfinite_modules"] = bad_modules[:20]
    if report["nonfinite_parameters"]:
        _say(report, f"parameters already non-finite: {report['nonfinite_parameters']} (an "
                     "earlier step spread the NaN: this diagnosis is too late)")
    _say(report, f"compiled loss {report['compiled_loss']}, eager loss on the same batch, noise "
                 f"and parameters {report['eager_loss']}; eager modules with non-finite output: "
                 f"{bad_modules[:8] or 'none'}")

    # 2. gradients, compiled vs eager
    nonfinite, diffs = [], []
    for n, p in names.items():
        gc, ge = compiled_grads.get(n), p.grad
        if gc is None or ge is None:
            continue
        if not _finite(gc):
            nonfinite.append(n)
        elif _finite(ge):
            diffs.append((_rel(gc, ge), n))
    diffs.sort(reverse=True)
    report["compiled_nonfinite_grads"] = nonfinite
    report["largest_grad_rel_diff"] = [(n, round(d, 4)) for d, n in diffs[:8]]
    _say(report, f"{len(nonfinite)} parameters with a non-finite compiled gradient "
                 f"(first: {nonfinite[:6]}); largest relative differences of the finite ones: "
                 f"{report['largest_grad_rel_diff'][:4]}")
    model.zero_grad(set_to_none=True)

    # 3. pieces compiled alone, on the eager inputs
    pieces = []
    if "model" in captured and hasattr(model, "input_embedding"):
        y = captured["model"][0][0]
        pieces.append(("converter (input_embedding)", lambda t: model.input_embedding(t), y))
    if "block0" in captured:
        args, kwargs = captured["block0"]
        pieces.append(("block 0", lambda t, a=args, k=kwargs: blocks[0](t, *a[1:], **k), args[0]))
    if "last" in captured and "model" in captured and hasattr(model.backbone, "head_cross_entropy"):
        h_last, c = captured["last"]
        kw = captured["model"][1]
        if "targets" in kw:
            def head(t, c=c, kw=kw):
                feats = model.backbone.output_layer.features(t, c)
                return model.backbone.head_cross_entropy(feats, kw["targets"], kw["weights"])[0]
            pieces.append(("head features + fused cross-entropy", head, h_last))
    report["pieces"] = []
    for label, fn, inp in pieces:
        if time.perf_counter() - began > budget_s:
            _say(report, f"piece '{label}': skipped (locator budget {budget_s:.0f}s spent)")
            continue
        results = {}
        for mode in ("eager", "compiled"):
            f = torch.compile(fn, backend=backend) if mode == "compiled" else fn
            t = inp.detach().clone().requires_grad_(inp.is_floating_point())
            try:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    out = f(t)
                cot = torch.randn(out.shape, generator=torch.Generator(device=device).manual_seed(1),
                                  device=device, dtype=torch.float32)
                (out.float() * cot).sum().backward()
                results[mode] = (out.detach().float(), None if t.grad is None else t.grad.float(),
                                 {n: p.grad.detach().clone() for n, p in names.items() if p.grad is not None})
            except Exception as e:  # noqa: BLE001 - a diagnostic: report, go on
                results[mode] = e
            model.zero_grad(set_to_none=True)
        e_res, c_res = results["eager"], results["compiled"]
        if isinstance(e_res, Exception) or isinstance(c_res, Exception):
            err = e_res if isinstance(e_res, Exception) else c_res
            line = f"piece '{label}': failed ({type(err).__name__}: {str(err).splitlines()[0][:160]})"
            report["pieces"].append({"piece": label, "error": line})
            _say(report, line)
            continue
        (oe, ge, pe), (oc, gc, pc) = e_res, c_res
        bad_params = [n for n, g in pc.items() if not _finite(g)]
        entry = {"piece": label, "out_finite": _finite(oc), "eager_out_finite": _finite(oe),
                 "out_rel_diff": _rel(oc, oe) if _finite(oc) and _finite(oe) else None,
                 "input_grad_finite": _finite(gc),
                 "input_grad_rel_diff": _rel(gc, ge) if gc is not None and _finite(gc) and _finite(ge) else None,
                 "nonfinite_param_grads": bad_params[:8]}
        report["pieces"].append(entry)
        _say(report, f"piece '{label}' compiled alone: output finite {entry['out_finite']} "
                     f"(eager {entry['eager_out_finite']}), rel. diff {entry['out_rel_diff']}; "
                     f"input grad finite {entry['input_grad_finite']}, rel. diff "
                     f"{entry['input_grad_rel_diff']}; non-finite param grads {bad_params[:4] or 'none'}")
    report["seconds"] = round(time.perf_counter() - began, 1)
    return report
