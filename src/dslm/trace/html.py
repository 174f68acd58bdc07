"""Self-contained HTML for traces: data inlined as JSON, images as data: URIs, a few
lines of inline script for the step slider; nothing is fetched when the page is viewed."""

from __future__ import annotations

import base64
import html
import json

from dslm.trace.frames import Frame

#: Frames at most on a page (evenly spaced; the first and final kept by build_frames).
PAGE_FRAMES = 200

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;padding:12px;
max-width:980px;color:#222;line-height:1.4}
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.6em}
img{max-width:100%;height:auto}
.tok{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:14px;
white-space:pre-wrap;overflow-wrap:anywhere;background:#fafafa;border:1px solid #ddd;
border-radius:6px;padding:10px;margin:8px 0}
.c{color:#111}.n{color:#111;background:#c8f0c8}.e{color:#1a5ac8}.m{color:#aaa}
.controls{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:10px 0}
.controls input[type=range]{flex:1;min-width:180px}
button{font-size:1em;padding:4px 12px}
.legend span{padding:0 4px;margin-right:6px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 6px}
.scroll{overflow-x:auto}
"""


def png_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def script_json(obj) -> str:
    """JSON safe inside <script>: no '</' can close the element early."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).replace("</", "<\\/")


def frames_data(frames: list[Frame], limit: int = PAGE_FRAMES) -> list[dict]:
    """Compact frames: ``l`` label, ``r`` rows of [kind, text, prob] with kind c (committed),
    n (committed at this frame), e (evidence, shaded by prob), m (masked)."""
    if len(frames) > limit:
        idx = sorted({round(j * (len(frames) - 1) / (limit - 1)) for j in range(limit)})
        frames = [frames[j] for j in idx]
    out = []
    for f in frames:
        rows = [[["n" if c.changed and not f.final else c.kind[0], c.text, round(c.prob, 2)]
                 for c in row] for row in f.rows]
        out.append({"l": f.label, "r": rows})
    return out


SLIDER_JS = """
(function(DATA){
const F=DATA.frames,box=document.getElementById(DATA.id+'-text'),
s=document.getElementById(DATA.id+'-step'),lab=document.getElementById(DATA.id+'-label'),
b=document.getElementById(DATA.id+'-play');let timer=null;
function show(k){box.textContent='';const f=F[k];lab.textContent=(k+1)+'/'+F.length+': '+f.l;
f.r.forEach(function(row,ri){if(ri){box.appendChild(document.createElement('hr'));}
row.forEach(function(c){const sp=document.createElement('span');sp.className=c[0];
if(c[0]==='m'){sp.textContent='_';}else{sp.textContent=c[1];}
if(c[0]==='e'){sp.style.background='rgba(26,90,200,'+(0.06+0.5*c[2]).toFixed(2)+')';}
sp.title='p(top-1) = '+c[2];box.appendChild(sp);box.appendChild(document.createTextNode(' '));});});}
s.addEventListener('input',function(){show(+s.value);});
b.addEventListener('click',function(){if(timer){clearInterval(timer);timer=null;b.textContent='play';return;}
if(+s.value>=F.length-1){s.value=0;}b.textContent='pause';
timer=setInterval(function(){if(+s.value>=F.length-1){clearInterval(timer);timer=null;b.textContent='play';return;}
s.value=+s.value+1;show(+s.value);},350);});
const h=location.hash.match(/frame=(\\d+)/);if(h){s.value=Math.min(Math.max(+h[1]-1,0),F.length-1);}
show(+s.value);})(__DATA__);
"""


def slider_widget(frames: list[Frame], widget_id: str = "trace") -> str:
    """The slider, its text box and the inline script that fills it (``#frame=K`` in the
    page address opens frame K, 1-based)."""
    data = {"id": widget_id, "frames": frames_data(frames)}
    n = len(data["frames"])
    wid = html.escape(widget_id)
    return (f'<div class="controls"><button id="{wid}-play" type="button">play</button>'
            f'<input type="range" id="{wid}-step" min="0" max="{n - 1}" value="{n - 1}" '
            f'aria-label="step"><span id="{wid}-label"></span></div>'
            f'<div class="tok" id="{wid}-text"></div>'
            f"<script>{SLIDER_JS.replace('__DATA__', script_json(data))}</script>")


LEGEND = ('<p class="legend"><span class="c">committed</span><span class="n">committed at this '
          'call</span><span class="e">not committed, with evidence (DSL SNR &gt; 0): top-1 token, '
          'background strength = its probability</span><span class="m">_ masked</span></p>')


def trace_page(header: dict, frames: list[Frame], heatmap: bytes | None = None) -> str:
    """The stand-alone trace page: header facts, the slider over frames, the heat-map."""
    title = (f"{header['sampler']} on a {header['model_kind']} model: T = {header['steps']}, "
             f"L = {header['seq_len']}")
    facts = (f"{len(frames[-1].rows) if frames else 0} traced sequence(s); "
             f"{header.get('observed_calls', '?')} network calls observed"
             + (f", every {header['stride']}th recorded" if header.get("stride", 1) > 1 else ""))
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>dslm trace: {html.escape(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1><p>{html.escape(facts)}</p>", LEGEND,
             slider_widget(frames)]
    if heatmap is not None:
        parts.append(f'<h2>Confidence over steps</h2><img alt="heat-map of the top-1 posterior '
                     f'probability per position over network calls" src="{png_uri(heatmap)}">')
    parts.append("</body></html>\n")
    return "\n".join(parts)
