"""Pictures of a trace: an animated GIF of the text forming, a confidence heat-map PNG,
a filmstrip PNG of a few frames, and (``html``) a self-contained page with a step slider.

Colours: committed tokens black (green background on the frame they are committed),
DSL positions with evidence but not committed in blue on a blue background whose
strength is the posterior's top-1 probability, masked positions as grey underscores.
"""

from __future__ import annotations

import io
from pathlib import Path

from dslm.trace.frames import Frame, build_frames, position_widths
from dslm.trace.record import read_trace

#: Frames at most in a GIF (evenly spaced, the first and the final kept).
GIF_FRAMES = 60
COLUMNS = 72            # characters per text line in the GIF
FONT_SIZE = 14


def _font(size: int = FONT_SIZE):
    from PIL import ImageFont

    try:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSansMono.ttf"
        # the basic layout: one glyph per character is all a token grid needs, and it
        # does not depend on libraqm (which refuses some control characters)
        return ImageFont.truetype(str(path), size, layout_engine=ImageFont.Layout.BASIC)
    except (ImportError, OSError):
        return ImageFont.load_default()


def _layout(widths: list[int], columns: int) -> list[tuple[int, int]]:
    """(line, column) of each position when cells of ``widths`` (+1 space) wrap at ``columns``."""
    spots, line, col = [], 0, 0
    for w in widths:
        if col and col + w > columns:
            line, col = line + 1, 0
        spots.append((line, col))
        col += w + 1
    return spots


def _blend(rgb: tuple[int, int, int], alpha: float) -> tuple[int, int, int]:
    """``rgb`` at opacity ``alpha`` over white."""
    a = min(max(alpha, 0.0), 1.0)
    return tuple(round(255 - a * (255 - c)) for c in rgb)


INK, EVIDENCE, BLANK, NEW = (20, 20, 20), (25, 90, 200), (170, 170, 170), (200, 240, 200)


def frame_images(frames: list[Frame], title: str = "", columns: int = COLUMNS):
    """One Pillow image per frame, all the same size, the layout fixed across frames."""
    from PIL import Image, ImageDraw

    font = _font()
    cw = font.getbbox("M")[2]
    lh = int(FONT_SIZE * 1.45)
    widths = position_widths(frames)
    layouts = [_layout([min(w, columns) for w in ws], columns) for ws in widths]
    heights = [(max((ln for ln, _ in lay), default=0) + 1) for lay in layouts]
    pad, head = 10, lh + 6
    width = 2 * pad + columns * cw
    height = head + pad + sum(h * lh + lh // 2 for h in heights) + pad
    images = []
    for f in frames:
        img = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(img)
        draw.text((pad, pad // 2), f"{title}  {f.label}".strip(), fill=(90, 90, 90), font=font)
        top = head + pad // 2
        for r, row in enumerate(f.rows[: len(layouts)]):
            for cell, (ln, col), w in zip(row, layouts[r], widths[r]):
                x, y = pad + col * cw, top + ln * lh
                if cell.kind == "masked":
                    draw.text((x, y), "_" * max(1, min(w, 3)), fill=BLANK, font=font)
                    continue
                if cell.kind == "committed" and cell.changed and not f.final:
                    draw.rectangle([x - 1, y, x + len(cell.text) * cw, y + lh - 2], fill=NEW)
                if cell.kind == "evidence":      # background strength = top-1 probability
                    draw.rectangle([x - 1, y, x + len(cell.text) * cw, y + lh - 2],
                                   fill=_blend(EVIDENCE, 0.06 + 0.5 * cell.prob))
                color = INK if cell.kind == "committed" else EVIDENCE
                draw.text((x, y), cell.text, fill=color, font=font)
            top += heights[r] * lh + lh // 2
            if r + 1 < len(layouts):
                draw.line([pad, top - lh // 4, width - pad, top - lh // 4], fill=(225, 225, 225))
        images.append(img)
    return images


def gif_bytes(frames: list[Frame], title: str = "", ms_per_frame: int = 300) -> bytes:
    """An animated GIF of ``frames`` (the final frame held for 2.5 s)."""
    images = frame_images(frames, title)
    buf = io.BytesIO()
    durations = [ms_per_frame] * (len(images) - 1) + [2500]
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=durations, loop=0, optimize=True)
    return buf.getvalue()


def filmstrip_png(frames: list[Frame], count: int = 4, title: str = "") -> bytes:
    """``count`` evenly spaced frames (the last = final tokens) stacked into one PNG."""
    from PIL import Image

    idx = sorted({round(j * (len(frames) - 1) / max(count - 1, 1)) for j in range(count)})
    images = frame_images([frames[j] for j in idx], title)
    strip = Image.new("RGB", (images[0].width, sum(i.height for i in images)), "white")
    y = 0
    for im in images:
        strip.paste(im, (0, y))
        y += im.height
    buf = io.BytesIO()
    strip.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def heatmap_png(header: dict, records: list[dict], max_rows: int = 2) -> bytes:
    """Per traced sequence (up to ``max_rows``): the posterior's top-1 probability per
    position (x) over the recorded calls (y, NFE), with a second panel of the state:
    log(1 + s_i) for DSL (SNR), committed (1) / masked (0) otherwise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    calls = [r for r in records if r["type"] == "call" and r["batch"] == 0]
    if not calls:
        calls = [r for r in records if r["type"] == "call"]
    rows = min(max_rows, len(calls[0]["tokens"])) if calls else 0
    if rows == 0:
        from dslm.trace.record import TraceError

        raise TraceError("the trace holds no recorded network call to draw")
    dsl = "snr" in calls[0]
    fig, axes = plt.subplots(rows, 2, figsize=(10, 1.2 + 2.4 * rows), squeeze=False,
                             constrained_layout=True)
    nfe = [c["nfe"] for c in calls]
    extent = [-0.5, len(calls[0]["tokens"][0]) - 0.5, nfe[-1] + 0.5, nfe[0] - 0.5]
    for r in range(rows):
        prob = np.array([c["prob"][r] for c in calls], dtype=float)
        im = axes[r][0].imshow(prob, aspect="auto", cmap="viridis", vmin=0, vmax=1,
                               extent=extent, interpolation="nearest")
        axes[r][0].set_title(f"sequence {calls[0]['rows'][r]}: top-1 posterior probability",
                             fontsize=9)
        fig.colorbar(im, ax=axes[r][0], fraction=0.04)
        if dsl:
            state = np.log1p(np.array([c["snr"][r] for c in calls], dtype=float))
            label, cmap = "log(1 + SNR s_i)", "magma"
        else:
            state = np.array([[t >= 0 for t in c["tokens"][r]] for c in calls], dtype=float)
            label, cmap = "committed (1) / masked (0)", "Greys"
        im2 = axes[r][1].imshow(state, aspect="auto", cmap=cmap, extent=extent,
                                interpolation="nearest", vmin=0)
        axes[r][1].set_title(label, fontsize=9)
        fig.colorbar(im2, ax=axes[r][1], fraction=0.04)
        for ax in axes[r]:
            ax.set_xlabel("position", fontsize=8)
            ax.set_ylabel("NFE", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle(f"{header['sampler']} on a {header['model_kind']} model, T = {header['steps']}"
                 + (f" (every {header['stride']}th call)" if header.get("stride", 1) > 1 else ""),
                 fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def quick_heatmap_png(header: dict, records: list[dict], width: int = 640) -> bytes:
    """The heat-map of :func:`heatmap_png` for sequence 0 drawn with Pillow alone (no
    matplotlib figure: milliseconds, for the demo report): on top the top-1 probability
    (viridis, 0 dark .. 1 yellow), below the state (log(1 + SNR) for DSL scaled to its
    maximum, committed light / masked dark otherwise); one row per recorded call (NFE
    down), one column per position."""
    import numpy as np
    from PIL import Image, ImageDraw

    calls = [r for r in records if r["type"] == "call" and r["batch"] == 0]
    if not calls:
        from dslm.trace.record import TraceError

        raise TraceError("the trace holds no recorded network call to draw")
    prob = np.array([c["prob"][0] for c in calls], dtype=float)
    dsl = "snr" in calls[0]
    if dsl:
        state = np.log1p(np.array([c["snr"][0] for c in calls], dtype=float))
        state = state / max(state.max(), 1e-9)
    else:
        state = np.array([[t >= 0 for t in c["tokens"][0]] for c in calls], dtype=float)
    n, length = prob.shape
    font = _font(12)
    left, pad, label = 46, 8, 18
    pw = width - left - pad
    ph = min(max(n * 8, 60), 220)
    panels = [(f"top-1 posterior probability (0 dark, 1 yellow)", _colour(prob, "viridis")),
              ("log(1 + SNR), scaled to its maximum" if dsl else "committed (light) / masked (dark)",
               _colour(state, "magma" if dsl else "gray"))]
    height = pad + len(panels) * (label + ph + pad) + label
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    y = pad
    for title, rgb in panels:
        draw.text((left, y), title, fill=(60, 60, 60), font=font)
        y += label
        img.paste(Image.fromarray(rgb).resize((pw, ph), Image.NEAREST), (left, y))
        draw.text((4, y), f"NFE {calls[0]['nfe']}", fill=(90, 90, 90), font=font)
        draw.text((4, y + ph - 14), f"NFE {calls[-1]['nfe']}", fill=(90, 90, 90), font=font)
        y += ph + pad
    draw.text((left, y), f"position 0 .. {length - 1}  ({header['sampler']}, T = "
              f"{header['steps']}, {n} calls)", fill=(90, 90, 90), font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _colour(values, cmap: str):
    """[n, L] values in [0, 1] -> uint8 RGB through a matplotlib colormap (no figure)."""
    import numpy as np
    from matplotlib import colormaps

    return (colormaps[cmap](np.clip(values, 0, 1))[..., :3] * 255).astype(np.uint8)


def render_trace(path, out_dir) -> dict[str, Path]:
    """``dslm trace render``: trace.gif, heatmap.png (matplotlib, with axes and colour bars)
    and trace.html (the slider and the Pillow heat-map, legible on a phone) in ``out_dir``."""
    from dslm.io import atomic_write_bytes, atomic_write_text
    from dslm.trace.html import trace_page

    header, records = read_trace(path)
    frames = build_frames(header, records)
    if not frames:
        from dslm.trace.record import TraceError

        raise TraceError(f"trace {path} holds no frame to draw")
    out = Path(out_dir)
    title = f"{header['sampler']} T={header['steps']}"
    heat = heatmap_png(header, records)
    written = {"gif": out / "trace.gif", "heatmap": out / "heatmap.png", "html": out / "trace.html"}
    atomic_write_bytes(written["gif"], gif_bytes(build_frames(header, records, GIF_FRAMES), title))
    atomic_write_bytes(written["heatmap"], heat)
    atomic_write_text(written["html"], trace_page(header, frames, quick_heatmap_png(header, records)))
    return written
