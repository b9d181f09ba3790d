"""The report page: one self-contained HTML file (inline CSS and JS, plots as inline SVG, thumbnails as JPEG data
URIs). No network, no server, no framework; it opens from disk or an e-mail attachment.

Everything that comes from the data (class names, image ids, paths, messages) goes through :func:`html.escape`; no
data is ever placed inside the script. Tables sort by a click on their header (a few lines of vanilla JS; numeric
cells carry their value in ``data-v``). The gallery is filled last, thumbnail by thumbnail, until the page reaches
its byte budget, so a dataset of any size gives a page of bounded size.
"""
from __future__ import annotations

import base64
import math
import os
from html import escape
from pathlib import Path

from datatools.core import fs
from datatools.report import svg
from datatools.report.build import EXAMPLES_PER_CODE, ReportData
from datatools.report.gallery import Thumb

SECTIONS = (("summary", "Summary"), ("classes", "Classes"), ("splits", "Split balance"), ("boxes", "Box sizes"),
            ("objects", "Objects per image"), ("image-sizes", "Image sizes"), ("pixels", "Channel mean/std"),
            ("anchors", "Anchors"), ("findings", "Check findings"), ("duplicates", "Duplicates"),
            ("gallery", "Gallery"))
MAX_CLUSTERS = 200  # rows of the duplicates table (all clusters are counted)

CSS = """
:root{--fg:#1d232a;--mut:#5b6672;--bd:#d9dee4;--bg:#f5f7f9;--card:#fff;--acc:#2f6db3}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}header{background:#1d2b3a;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px}header .src{color:#b8c6d6;font-size:13px;word-break:break-all}
nav{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid var(--bd);padding:6px 24px;
display:flex;flex-wrap:wrap;gap:4px 14px}nav a{color:var(--acc);text-decoration:none;font-size:13px}
main{padding:12px 24px 40px;max-width:1400px}section{background:var(--card);border:1px solid var(--bd);
border-radius:6px;padding:12px 18px;margin:14px 0}section h2{margin:2px 0 10px;font-size:17px}
.kpis{display:flex;flex-wrap:wrap;gap:10px}.kpi{border:1px solid var(--bd);border-radius:5px;padding:6px 12px;
min-width:120px}.kpi b{display:block;font-size:19px}.kpi small{color:var(--mut);font-size:12px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}th,td{border-bottom:1px solid var(--bd);
padding:3px 9px;text-align:left;vertical-align:top}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer;user-select:none;white-space:nowrap}table.sortable th:after{content:" \\2195";
color:#aab}table.sortable th[data-dir=asc]:after{content:" \\2191"}table.sortable th[data-dir=desc]:after{
content:" \\2193"}.sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;
vertical-align:-1px}.bar{height:9px;background:var(--acc);border-radius:2px;min-width:1px}
.plots{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}svg.plot{background:#fff;border:1px solid #eef0f3;max-width:100%;
height:auto}svg .pt{font-size:12px;font-weight:600;fill:#333}svg .pl{font-size:10px;fill:#555}
.note{color:#8a5a00;background:#fff6e0;border:1px solid #f0deb0;padding:5px 10px;border-radius:4px}
.mut{color:var(--mut)}.err{color:#b3261e;font-weight:600}.warn{color:#a86400;font-weight:600}.info{color:#667}
.thumbs{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0;width:var(--tw);font-size:11px}
figure img{display:block;max-width:100%;border:1px solid var(--bd);border-radius:3px;background:#eee}
figure figcaption{color:var(--mut);overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
details{margin:6px 0}summary{cursor:pointer}code{background:#f0f2f5;padding:1px 4px;border-radius:3px}
h3{font-size:14px;margin:12px 0 6px}.scroll{max-height:640px;overflow:auto;display:inline-block}
"""

JS = """
(function(){
  function key(row, i){var c=row.cells[i];if(!c)return '';var v=c.hasAttribute('data-v')?c.getAttribute('data-v'):
    c.textContent.trim();return (v!==''&&!isNaN(Number(v)))?Number(v):v.toLowerCase();}
  document.querySelectorAll('table.sortable').forEach(function(t){
    t.querySelectorAll('thead th').forEach(function(th,i){th.addEventListener('click',function(){
      var dir=th.getAttribute('data-dir')==='asc'?'desc':'asc';
      t.querySelectorAll('thead th').forEach(function(h){h.removeAttribute('data-dir');});
      th.setAttribute('data-dir',dir);var body=t.tBodies[0];
      var rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){var x=key(a,i),y=key(b,i);
        var r=(typeof x==='number'&&typeof y==='number')?x-y:String(x).localeCompare(String(y));
        return dir==='asc'?r:-r;});
      rows.forEach(function(r){body.appendChild(r);});});});});
  function openTarget(){var id=decodeURIComponent(location.hash.slice(1));var d=id&&document.getElementById(id);
    if(d&&d.tagName==='DETAILS'){d.open=true;}}
  window.addEventListener('hashchange',openTarget);openTarget();
  var shown=[];document.querySelectorAll('section[data-section]').forEach(function(s){
    if(s.offsetHeight>0&&s.querySelector('h2')){shown.push(s.id);}});
  document.documentElement.setAttribute('data-rendered',shown.join(' '));
})();
"""


def e(value) -> str:
    """Text from the data, safe in HTML text and in quoted attributes."""
    return escape(str(value), quote=True)


def _num(v: float, digits: int = 0) -> str:
    return f'<td class="n" data-v="{v}">{v:,.{digits}f}</td>' if math.isfinite(v) else '<td class="n" data-v="">-</td>'


def _n(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _pct(part: int, whole: int) -> str:
    share = part / whole if whole else 0.0
    return f'<td class="n" data-v="{share:.6f}">{share:.1%}</td>'


def _href(path: str) -> str:
    """A link to a local file (``file://``, absolute, percent-encoded), or '' for a file behind a URL."""
    if not path or fs.is_url(path):
        return ""
    return Path(os.path.abspath(path)).as_uri()


def _path_cell(path: str) -> str:
    href = _href(path)
    return f'<td><a href="{e(href)}">{e(path)}</a></td>' if href else f"<td>{e(path)}</td>"


def _swatch(rgb) -> str:
    return f'<span class="sw" style="background:#{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}"></span>'


def _kpi(value: str, label: str) -> str:
    return f'<div class="kpi"><b>{value}</b><small>{e(label)}</small></div>'


def _note(text: str) -> str:
    return f'<p class="note">{e(text)}</p>'


def _table(headers: list[tuple[str, bool]], rows: list[str], *, sortable: bool = True) -> str:
    head = "".join(f'<th class="n">{e(h)}</th>' if num else f"<th>{e(h)}</th>" for h, num in headers)
    cls = ' class="sortable"' if sortable else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}" data-section><h2>{e(title)}</h2>{body}</section>'


def _summary(d: ReportData) -> str:
    lab, px, dup = d.labels, d.stats.pixels, d.dupes
    k = [_kpi(f"{lab.images:,}", "images"), _kpi(f"{lab.objects:,}", "objects"),
         _kpi(f"{len(lab.class_objects):,}", "classes"), _kpi(f"{lab.empty_images:,}", "images without objects"),
         _kpi(f"{len(d.splits):,}", "splits: " + (", ".join(d.splits) or "none")),
         _kpi(f'<span class="err">{d.errors:,}</span> / <span class="warn">{d.warnings:,}</span>',
              "check errors / warnings")]
    if dup is not None:
        k.append(_kpi(f"{len(dup.clusters):,}", f"duplicate clusters ({dup.duplicate_images:,} extra images)"))  # type: ignore[attr-defined]
    if px is not None and px.images:
        k.append(_kpi(", ".join(f"{v:.3f}" for v in px.mean), "pixel mean (R, G, B)"))
    dropped = d.objects_read - lab.objects
    if dropped > 0:
        k.insert(2, _kpi(f"{dropped:,}", "objects dropped while reading (see Check findings)"))
    body = f'<div class="kpis">{"".join(k)}</div>'
    body += f'<p class="mut">format <code>{e(d.format)}</code>; {lab.no_size:,} images without a known size. ' \
            "Every number on this page is computed over the whole dataset; only the gallery is a sample.</p>"
    return _section("summary", "Summary", body)


def _classes(d: ReportData) -> str:
    lab = d.labels
    splits = list(d.splits)
    top = max(lab.class_objects.values(), default=0) or 1
    rows = []
    for c, n in lab.class_objects.items():
        cells = [f"<td>{_swatch(d.colours[c])}{e(c)}</td>", _num(n), _pct(n, lab.objects),
                 f'<td data-v="{n}"><div class="bar" style="width:{120 * n / top:.1f}px"></div></td>',
                 _num(lab.class_images[c])]
        for s in splits:
            m = d.splits[s].class_objects.get(c, 0)
            cells += [_num(m), _pct(m, n)]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    headers = [("class", False), ("objects", True), ("share", True), ("", False), ("images", True)]
    for s in splits:
        headers += [(f"{s} objects", True), (f"{s} share of class", True)]
    body = _table(headers, rows) if rows else _note("no objects")
    return _section("classes", "Classes", body)


def _splits(d: ReportData) -> str:
    if not d.splits:
        return _section("splits", "Split balance", _note("the dataset names no splits (no ImageSets lists, or one "
                                                          "part only): nothing to compare"))
    rows = []
    for s, st in d.splits.items():
        rows.append(f"<tr><td>{e(s)}</td>{_num(st.images)}{_pct(st.images, d.labels.images)}{_num(st.objects)}"
                    f"{_num(st.empty_images)}{_num(st.objects_per_image['mean'], 2)}</tr>")
    body = _table([("split", False), ("images", True), ("share of images", True), ("objects", True),
                   ("without objects", True), ("objects per image", True)], rows)
    shares = {s: st.class_objects for s, st in d.splits.items()}
    body += svg.stacked_shares(shares, d.colours, title="class shares per split")
    return _section("splits", "Split balance", body)


def _dist_rows(items: list[tuple[str, dict, int]]) -> str:
    cols = ("min", "p5", "median", "mean", "p95", "max")
    rows = [f"<tr><td>{e(name)}</td>{''.join(_num(q[c], dg) for c in cols)}</tr>" for name, q, dg in items]
    return _table([("", False)] + [(c, True) for c in cols], rows, sortable=False)


def _boxes(d: ReportData) -> str:
    lab, a = d.labels, d.labels.arrays
    plots = [svg.histogram(a["width"], title="box width", xlabel="px", log_x=True),
             svg.histogram(a["height"], title="box height", xlabel="px", log_x=True),
             svg.histogram(a["area"], title="box area", xlabel="px²", log_x=True),
             svg.histogram(a["aspect"], title="box aspect ratio", xlabel="width / height", log_x=True),
             svg.histogram(a["rel_area"], title="box area / image area", xlabel="share of the image", log_x=True)]
    body = f'<div class="plots">{"".join(plots)}</div>'
    body += _dist_rows([("width (px)", lab.boxes_abs["width"], 1), ("height (px)", lab.boxes_abs["height"], 1),
                        ("area (px²)", lab.boxes_abs["area"], 0), ("aspect (w/h)", lab.boxes_abs["aspect"], 2),
                        ("width / image", lab.boxes_rel["width"], 3), ("height / image", lab.boxes_rel["height"], 3)])
    cs = lab.coco_sizes
    tot = max(1, sum(cs.values()))
    body += "<p>COCO size classes (box area): " + ", ".join(f"{k} {v:,} ({v / tot:.1%})" for k, v in cs.items()) + \
            "; zero-size boxes are left out of the log-scale plots.</p>"
    return _section("boxes", "Box sizes", body)


def _objects(d: ReportData) -> str:
    lab = d.labels
    body = f'<div class="plots">{svg.counts_bars(lab.objects_per_image_counts, title="objects per image", xlabel="objects")}</div>'
    body += _dist_rows([("objects per image", lab.objects_per_image, 2)])
    if any(lab.flags.values()):
        body += "<p>flags: " + ", ".join(f"{e(k)} {v:,}" for k, v in lab.flags.items()) + "</p>"
    return _section("objects", "Objects per image", body)


def _image_sizes(d: ReportData) -> str:
    sizes = d.labels.image_sizes
    common = sizes["most_common"]
    pts = [(s["width"], s["height"], s["images"]) for s in common]  # type: ignore[index]
    body = f'<div class="plots">{svg.size_scatter(pts, title="image sizes (10 most common)")}' \
           f'{svg.histogram(d.labels.arrays["image_width"], title="image width", xlabel="px")}</div>'
    rows = [f"<tr>{_num(s['width'])}{_num(s['height'])}{_num(s['images'])}</tr>" for s in common]  # type: ignore[index]
    body += f"<p>{sizes['distinct']:,} distinct sizes; {d.labels.no_size:,} images without a known size.</p>"
    if rows:
        body += _table([("width", True), ("height", True), ("images", True)], rows)
    return _section("image-sizes", "Image sizes", body)


def _pixels(d: ReportData) -> str:
    px = d.stats.pixels
    if px is None or not px.images:
        return _section("pixels", "Channel mean/std", _note(d.notes.get("pixels", "no pixel statistics")))
    rows = [f"<tr><td>{name}</td>{''.join(_num(v, 6) for v in vals)}</tr>"
            for name, vals in (("mean", px.mean), ("std", px.std))]
    body = _table([("", False), ("R", True), ("G", True), ("B", True)], rows, sortable=False)
    what = "estimate from a sample" if px.estimate else "exact"
    body += f"<p>{what} over {px.images:,} images, {px.pixels:,} pixels per channel ([0, 1] scale); modes: " + \
            ", ".join(f"{e(k)} {v:,}" for k, v in px.modes.items()) + f"</p><p><code>{e(px.normalize)}</code></p>"
    if px.failed:
        body += _note(f"{len(px.failed):,} images could not be read and are left out (see Check findings)")
    body += f'<div class="plots">{svg.pixel_histogram(px.histogram, title="pixel values")}</div>'
    return _section("pixels", "Channel mean/std", body)


def _anchors(d: ReportData) -> str:
    r = d.anchors
    if r is None:
        return _section("anchors", "Anchors", _note("no anchors: " + d.notes.get("anchors", "not computed")))
    rows = [f"<tr>{_num(i)}{_num(w, 1)}{_num(h, 1)}{_num(w * h)}{_num(w / h, 2)}{_num(n)}</tr>"
            for i, ((w, h), n) in enumerate(zip(r.anchors, r.cluster_sizes))]  # type: ignore[attr-defined]
    size = f"at input size {r.img_size}" if r.img_size else "in original pixels"  # type: ignore[attr-defined]
    body = f"<p>{len(r.anchors)} anchors {size} (k-means, 1 - IoU), mean best IoU <b>{r.mean_iou:.4f}</b>, " \
           f"BPR at IoU >= {r.iou_thr:g} <b>{r.bpr:.4f}</b> over {r.boxes:,} boxes.</p>"  # type: ignore[attr-defined]
    body += '<div class="plots">' + _table([("#", True), ("width", True), ("height", True), ("area", True),
                                            ("aspect", True), ("boxes", True)], rows)
    body += svg.anchor_boxes(r.anchors, title="anchors to scale") + "</div>"  # type: ignore[attr-defined]
    if "anchors" in d.notes:
        body = _note(d.notes["anchors"]) + body
    return _section("anchors", "Anchors", body)


_SEV_CLASS = {"error": "err", "warning": "warn", "info": "info"}


def _anchor_id(code: str) -> str:
    return "f-" + "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in code)


def _thumbs(thumbs: list[Thumb], width: int) -> str:
    figs = []
    for t in thumbs:
        if t.jpeg:
            src = "data:image/jpeg;base64," + base64.b64encode(t.jpeg).decode("ascii")
            img = f'<img src="{src}" alt="{e(t.image_id)}" loading="lazy">'
        else:
            img = f'<div class="note">{e(t.error)}</div>'
        figs.append(f'<figure title="{e(t.path)}">{img}<figcaption>{e(t.caption)}</figcaption></figure>')
    return f'<div class="thumbs" style="--tw:{width}px">{"".join(figs)}</div>'


def _thumb_cost(t: Thumb) -> int:
    """About the bytes one thumbnail adds to the page (its JPEG in base64, the caption and the markup)."""
    return len(t.jpeg) * 4 // 3 + len(t.caption) + len(t.path) + 160


def _fitting(thumbs: list[Thumb], room: int) -> tuple[list[Thumb], int]:
    """The thumbnails, in order, that fit in ``room`` bytes, and the bytes they leave."""
    out = []
    for t in thumbs:
        if _thumb_cost(t) > room:
            break
        room -= _thumb_cost(t)
        out.append(t)
    return out, room


def _findings(d: ReportData, thumb: int, room: int) -> tuple[str, int]:
    """The findings by code, with their example thumbnails while they fit in ``room`` bytes of the page budget, and
    the bytes they leave (the gallery's)."""
    if "findings" in d.notes:
        return _section("findings", "Check findings", _note(d.notes["findings"])), room
    if not d.findings:
        return _section("findings", "Check findings", "<p>no findings: <code>datatools check</code> is clean.</p>"), room
    by_code: dict[str, list] = {}
    for f in d.findings:
        by_code.setdefault(f.code, []).append(f)
    sev_order = {"error": 0, "warning": 1, "info": 2}
    order = sorted(by_code, key=lambda c: (sev_order[by_code[c][0].severity.value], -len(by_code[c]), c))
    rows = []
    for c in order:
        sev = by_code[c][0].severity.value
        rows.append(f'<tr><td><a href="#{_anchor_id(c)}">{e(c)}</a></td><td class="{_SEV_CLASS[sev]}" data-v="'
                    f'{sev_order[sev]}">{sev}</td>{_num(len(by_code[c]))}</tr>')
    body = f"<p>{_n(d.errors, 'error')}, {_n(d.warnings, 'warning')} (as <code>datatools check</code> reports them; codes " \
           "are described in docs/check.md). Click a code for examples.</p>"
    body += _table([("code", False), ("severity", False), ("findings", True)], rows)
    for c in order:
        fs = by_code[c]
        ex = [f"<tr>{_path_cell(f.path)}<td>{e(f.field)}</td><td>{e(f.message)}</td></tr>"
              for f in fs[:EXAMPLES_PER_CODE]]
        more = f'<p class="mut">... and {len(fs) - EXAMPLES_PER_CODE:,} more (all with <code>datatools check ' \
               "--json</code>)</p>" if len(fs) > EXAMPLES_PER_CODE else ""
        shown, room = _fitting(d.finding_thumbs.get(c, []), room)
        pics = _thumbs(shown, thumb) if shown else ""
        body += f'<details id="{_anchor_id(c)}"><summary><b>{e(c)}</b> ({len(fs):,})</summary>' \
                f'{_table([("file", False), ("field", False), ("message", False)], ex)}{more}{pics}</details>'
    return _section("findings", "Check findings", body), room


def _duplicates(d: ReportData) -> str:
    rep = d.dupes
    if rep is None:
        return _section("duplicates", "Duplicates", _note(d.notes.get("duplicates", "not searched")))
    c = rep.counts()  # type: ignore[attr-defined]
    body = f"<p>{rep.hashed:,} of {_n(rep.images, 'image')} compared at a threshold of {rep.threshold} bits: " \
           f"{_n(len(rep.clusters), 'cluster')} ({c['exact_clusters']:,} exact, {c['near_clusters']:,} near), " \
           f"{_n(rep.duplicate_images, 'image')} beyond the first of their cluster, " \
           f"{_n(c['labels_disagree'], 'cluster')} whose labels disagree. <code>split --dedup</code> keeps each " \
           "cluster in one part.</p>"  # type: ignore[attr-defined]
    rows = []
    for k, cl in enumerate(rep.clusters[:MAX_CLUSTERS]):  # type: ignore[attr-defined]
        members = "<br>".join(f"{e(m.image_id)} <span class=\"mut\">({e(m.relation)}, {m.distance})</span>"
                              for m in cl.members[:8]) + (f"<br>... {len(cl.members) - 8} more" if len(cl.members) > 8 else "")
        agree = "yes" if cl.labels_agree else '<span class="warn">no</span>'
        rows.append(f"<tr>{_num(k + 1)}<td>{e(cl.kind)}</td>{_num(len(cl.members))}{_num(cl.max_distance)}"
                    f"<td>{agree}</td><td>{members}</td></tr>")
    if rows:
        body += '<div class="scroll">' + _table([("#", True), ("kind", False), ("images", True),
                                                  ("max distance", True), ("labels agree", False),
                                                  ("members (relation, bits)", False)], rows) + "</div>"
        if len(rep.clusters) > MAX_CLUSTERS:  # type: ignore[attr-defined]
            body += f'<p class="mut">the {MAX_CLUSTERS} largest of {len(rep.clusters):,} clusters (all with ' \
                    "<code>datatools dupes --json</code>)</p>"  # type: ignore[attr-defined]
    return _section("duplicates", "Duplicates", body)


def _gallery(d: ReportData, thumb: int, room: int) -> tuple[str, int]:
    """The gallery, as many thumbnails as fit in ``room`` bytes (in the sampled order: class by class, round
    robin); returns the HTML and the number shown."""
    groups: dict[str, list[Thumb]] = {}
    fitting, _ = _fitting(d.gallery, room)
    shown = len(fitting)
    for t in fitting:
        groups.setdefault(t.group, []).append(t)
    drawn = sum(1 for t in d.gallery if t.jpeg)
    head = f"<p>{_n(shown, 'thumbnail')}"
    if shown < d.gallery_candidates:
        head += f" of {d.gallery_candidates:,} sampled (seed {d.options.get('seed')}; up to " \
                f"{d.options.get('per_class')} per class, cut to keep the page under " \
                f"{int(d.options.get('budget_bytes', 0)) / 1e6:.0f} MB)"  # type: ignore[arg-type]
    head += ". Boxes in the class colours of <code>datatools visualize</code>; difficult objects dashed.</p>"
    if drawn < len(d.gallery):
        head += _note(f"{len(d.gallery) - drawn:,} sampled images could not be drawn (shown with the reason)")
    body = head
    for cls in d.labels.class_objects:
        if cls in groups:
            body += f"<h3>{_swatch(d.colours[cls])}{e(cls)}</h3>{_thumbs(groups[cls], thumb)}"
    if not groups:
        body += _note("no images with objects to show")
    return _section("gallery", "Gallery", body), shown


def render_page(d: ReportData) -> tuple[str, int]:
    """The whole page as text, and the number of gallery thumbnails it holds (the budget decides)."""
    thumb = int(d.options.get("thumb", 192))  # type: ignore[arg-type]
    nav = "".join(f'<a href="#{sid}">{e(title)}</a>' for sid, title in SECTIONS)
    name = os.path.basename(os.path.normpath(d.src)) or d.src
    parts = [_summary(d), _classes(d), _splits(d), _boxes(d), _objects(d), _image_sizes(d), _pixels(d), _anchors(d),
             _duplicates(d)]
    head = ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>datatools report: {e(name)}</title><style>{CSS}</style></head><body>"
            f'<header><h1>Dataset report: {e(name)}</h1><div class="src">{e(d.src)}</div></header>'
            f"<nav>{nav}</nav><main>")
    tail = f"</main><script>{JS}</script></body></html>\n"
    text = sum(len(p.encode()) for p in [head, *parts, tail, _findings(d, thumb, 0)[0]]) + 2000  # every picture out
    room = max(0, int(d.options.get("budget_bytes", 20_000_000)) - text)  # type: ignore[arg-type]
    findings, room = _findings(d, thumb, room)  # the findings' examples first, then the gallery in what is left
    parts.insert(-1, findings)
    gallery, shown = _gallery(d, thumb, room)
    return head + "".join(parts) + gallery + tail, shown
