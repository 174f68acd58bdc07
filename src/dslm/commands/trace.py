"""`dslm trace render TRACE --out DIR`: pictures of a trace written by `dslm sample --trace`."""

from __future__ import annotations

HELP = "render a sampling trace (dslm sample --trace) as a GIF, a heat-map PNG and an HTML page"


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="trace_command", metavar="ACTION")
    render = sub.add_parser("render", help="trace.gif, heatmap.png and trace.html from a trace",
                            description="trace.gif (the text forming), heatmap.png (top-1 "
                            "probability per position over network calls) and trace.html (a "
                            "self-contained page with a step slider)")
    render.add_argument("trace", help="trace file written by dslm sample --trace (JSON lines)")
    render.add_argument("--out", required=True, help="output folder")


def run(args) -> int:
    from dslm.errors import ConfigError

    if getattr(args, "trace_command", None) != "render":
        raise ConfigError("dslm trace needs an action: dslm trace render TRACE --out DIR")
    from dslm.extras import require
    from pathlib import Path

    from dslm.io import check_output_folder

    require("matplotlib", "dslm trace render (heat-map)")
    require("PIL", "dslm trace render (GIF)")
    from dslm.trace.render import render_trace

    names = {(Path(args.out) / n).resolve() for n in ("trace.gif", "heatmap.png", "trace.html")}
    if Path(args.trace).resolve() in names:
        raise ConfigError(f"--out {args.out} would overwrite the trace {args.trace} itself")
    check_output_folder(args.out)
    written = render_trace(args.trace, args.out)
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0
