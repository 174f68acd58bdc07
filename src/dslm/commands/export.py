"""`dslm export`: write a hub-ready folder that `dslm.from_pretrained` loads back."""

from __future__ import annotations

HELP = "write a hub-ready model folder (safetensors, config, tokenizer, model card)"


def add_arguments(parser) -> None:
    from dslm.commands._checks import add_checkpoint_arguments

    add_checkpoint_arguments(parser, required=True)
    parser.add_argument("--out", required=True, help="folder to write (must be new or empty)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out if it already holds files")


def run(args) -> int:
    from dslm.models import count_parameters
    from dslm.models.checkpoint import open_checkpoint
    from dslm.models.export import export

    out = export(args.ckpt, args.out, overwrite=args.overwrite,
                 trust_pickle=args.trust_checkpoint)
    model = open_checkpoint(out).model
    files = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir())
    print(f"exported a '{model.config.kind}' model ({count_parameters(model) / 1e6:.2f}M "
          f"parameters) to {out}: {', '.join(files)}")
    print(f"load it with dslm.from_pretrained({str(out)!r}); publish it with "
          f"`hf upload <user>/<name> {out}`")
    return 0
