"""The report of a run: plots (matplotlib, Agg backend, PNG) and a Markdown + HTML summary
that links them, from the result document alone (so a saved ``result.json`` can be re-plotted
with ``write_report``).

Plots: throughput over time and window occupancy over time (pool, e2e, api runs; from
``BindPool.statistics()`` samples), latency distributions as CDFs (pool submit -> resp, API
requests), API latency over time, and the ratios of each fast path to its baseline.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Any

DISTRIBUTION_Y = "percentile"
#: timelines of more series than this get one small panel each (overlaid they are unreadable)
SMALL_MULTIPLES_ABOVE = 3


def human(value: float | None, unit: str = "") -> str:
    """6120000 -> '6.12 M', 61234 -> '61.2 k', 0.01234 -> '0.0123'."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    a = abs(value)
    if a >= 1e6:
        text = f"{value / 1e6:.3g} M"
    elif a >= 1e4:
        text = f"{value / 1e3:.3g} k"
    elif a >= 100 or value == int(value):
        text = f"{value:,.0f}"
    else:
        text = f"{value:.3g}"
    if unit in ("x",):
        return text + "x"
    return f"{text} {unit}".strip()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _groups(doc: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for section in doc["sections"].values():
        for s in section.get("series", []):
            if s["y"]:
                groups.setdefault((s["group"] or s["name"], s["kind"]), []).append(s)
    return groups


def _small_multiples(plt: Any, group: str, series: list[dict[str, Any]], path: Path) -> None:
    cols = 2
    rows = (len(series) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(9, 1.9 * rows + 0.6), dpi=100,
                             squeeze=False)
    unit = series[0]["unit"]
    for ax, s in zip(axes.flat, series, strict=False):
        ax.plot(s["x"], s["y"], linewidth=1.0)
        ax.set_title(s["name"], fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=7)
        if unit == "%":
            ax.set_ylim(0, 105)
    for ax in list(axes.flat)[len(series):]:
        ax.set_visible(False)
    fig.suptitle(f"{group} ({unit}; x: seconds since start)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def make_plots(doc: dict[str, Any], out: Path) -> list[dict[str, str]]:
    """Write the PNGs; returns ``[{"title", "file"}]`` in display order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: list[dict[str, str]] = []
    for (group, kind), series in _groups(doc).items():
        name = f"{_slug(group)}.png"
        unit = series[0]["unit"]
        scatter = group.endswith("over time") and unit == "ms"
        if kind == "timeline" and not scatter and len(series) > SMALL_MULTIPLES_ABOVE:
            _small_multiples(plt, group, series, out / name)
            plots.append({"title": group, "file": name})
            continue
        fig, ax = plt.subplots(figsize=(8, 4.2), dpi=100)
        if kind == "timeline":
            for s in series:
                if scatter:
                    ax.plot(s["x"], s["y"], ".", markersize=2, label=s["name"])
                else:
                    ax.plot(s["x"], s["y"], linewidth=1.2, label=s["name"])
            ax.set_xlabel("seconds since start")
            ax.set_ylabel(unit)
            if unit == "%":
                ax.set_ylim(0, 105)
        else:  # distribution: CDF with a log latency axis
            for s in series:
                ys = s["y"]
                n = len(ys)
                ax.plot(ys, [100.0 * (i + 1) / n for i in range(n)], linewidth=1.2,
                        label=s["name"])
            ax.set_xscale("log")
            ax.set_xlabel(unit)
            ax.set_ylabel(DISTRIBUTION_Y)
            ax.axhline(99, color="grey", linewidth=0.6, linestyle=":")
        ax.set_title(group)
        ax.grid(True, alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=7, ncol=2 if len(series) > 6 else 1)
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)
        plots.append({"title": group, "file": name})
    ratios = [(f"{r['metric']}: {r['numerator']} / {r['denominator']}", r["value"])
              for section in doc["sections"].values() for r in section.get("ratios", [])
              if r["value"]]
    if ratios:
        fig, ax = plt.subplots(figsize=(8, 0.4 * len(ratios) + 1.2), dpi=100)
        ax.barh([label for label, _ in ratios], [v for _, v in ratios])
        ax.set_xscale("log")
        ax.axvline(1, color="grey", linewidth=0.8)
        ax.set_xlabel("ratio (log scale; > 1: ours faster)")
        ax.set_title("fast path vs baseline, same run")
        ax.tick_params(axis="y", labelsize=7)
        fig.tight_layout()
        fig.savefig(out / "ratios.png")
        plt.close(fig)
        plots.append({"title": "ratios", "file": "ratios.png"})
    return plots


def _met(value: bool | None) -> str:
    return {True: "met", False: "**not met**", None: "-"}[value]


def markdown(doc: dict[str, Any]) -> str:
    m, cfg = doc["machine"], doc["config"]
    lines = [
        "# dispatch bench report", "",
        f"- command: `{doc.get('command', 'dispatch bench')}`",
        f"- started {doc['started_at']}, took {doc['duration_s']:.1f} s, profile "
        f"**{cfg['profile']}**",
        f"- machine: {m['cpu_count']} CPU ({m['cpu_model']}), {m['os']}, Python {m['python']}, "
        f"load average at start {m.get('load_average_at_start')}",
        f"- fast path in use: **{doc['fastpath']['implementation']}** "
        f"(available: {', '.join(doc['fastpath']['available'])})",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items() if v),
        "", "## DESIGN.md targets", "",
        "| bar | target | measured | |", "|---|---|---|---|",
    ]
    for row in doc["targets"]:
        lines.append(f"| {row['label']} | {row['target']} | {human(row['measured'], row['unit'])}"
                     f" | {_met(row['met'])} |")
    for name, section in doc["sections"].items():
        lines += ["", f"## {name}", ""]
        if section["status"] != "ok":
            lines.append(f"Status: **{section['status']}**"
                         + (f": {section['reason']}" if section["reason"] else ""))
            lines.append("")
        if section["figures"]:
            lines += ["| metric | variant | value |", "|---|---|---|"]
            for f in section["figures"]:
                lines.append(f"| {f['metric']} | {f['variant']} | {human(f['value'], f['unit'])} |")
        if section["ratios"]:
            lines += ["", "| ratio | value |", "|---|---|"]
            for r in section["ratios"]:
                lines.append(f"| {r['metric']}: {r['numerator']} / {r['denominator']} | "
                             f"{human(r['value'], 'x')} |")
        for note in section.get("notes", []):
            lines += ["", f"> {note}"]
        if section.get("duration_s"):
            lines += ["", f"({section['duration_s']:.1f} s; config: `{section['config']}`)"]
    if doc.get("plots"):
        lines += ["", "## Plots", ""]
        for p in doc["plots"]:
            lines += [f"### {p['title']}", "", f"![{p['title']}]({p['file']})", ""]
    return "\n".join(lines) + "\n"


def html_report(doc: dict[str, Any]) -> str:
    """The same content as ``markdown`` as one self-contained-but-for-images HTML page."""
    esc = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>dispatch bench</title>",
             "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
             "td.n{text-align:right}.bad{color:#b00;font-weight:bold}</style></head><body>",
             "<h1>dispatch bench report</h1>"]
    m = doc["machine"]
    parts.append(f"<p>{esc(doc['started_at'])}, {doc['duration_s']:.1f} s, profile "
                 f"<b>{esc(doc['config']['profile'])}</b>; {m['cpu_count']} CPU "
                 f"({esc(str(m['cpu_model']))}), {esc(m['os'])}, Python {esc(m['python'])}; "
                 f"fast path <b>{esc(doc['fastpath']['implementation'])}</b></p>")
    parts.append("<h2>DESIGN.md targets</h2><table><tr><th>bar</th><th>target</th>"
                 "<th>measured</th><th></th></tr>")
    for row in doc["targets"]:
        met = row["met"]
        cls = " class='bad'" if met is False else ""
        parts.append(f"<tr><td>{esc(row['label'])}</td><td>{esc(row['target'])}</td>"
                     f"<td class='n'>{esc(human(row['measured'], row['unit']))}</td>"
                     f"<td{cls}>{ {True: 'met', False: 'not met', None: '-'}[met]}</td></tr>")
    parts.append("</table>")
    for name, section in doc["sections"].items():
        parts.append(f"<h2>{esc(name)}</h2>")
        if section["status"] != "ok":
            parts.append(f"<p class='bad'>{esc(section['status'])}: {esc(section['reason'])}</p>")
        if section["figures"]:
            parts.append("<table><tr><th>metric</th><th>variant</th><th>value</th></tr>")
            for f in section["figures"]:
                parts.append(f"<tr><td>{esc(f['metric'])}</td><td>{esc(f['variant'])}</td>"
                             f"<td class='n'>{esc(human(f['value'], f['unit']))}</td></tr>")
            parts.append("</table>")
        if section["ratios"]:
            parts.append("<table><tr><th>ratio</th><th>value</th></tr>")
            for r in section["ratios"]:
                parts.append(f"<tr><td>{esc(r['metric'])}: {esc(r['numerator'])} / "
                             f"{esc(r['denominator'])}</td>"
                             f"<td class='n'>{esc(human(r['value'], 'x'))}</td></tr>")
            parts.append("</table>")
        for note in section.get("notes", []):
            parts.append(f"<p><i>{esc(note)}</i></p>")
    for p in doc.get("plots", []):
        parts.append(f"<h3>{esc(p['title'])}</h3><img src='{esc(p['file'])}' "
                     f"alt='{esc(p['title'])}'>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(doc: dict[str, Any], out: Path, *, plots: bool = True) -> list[Path]:
    """Plots (when asked and matplotlib is importable), report.md and report.html."""
    written: list[Path] = []
    if plots:
        try:
            doc["plots"] = make_plots(doc, out)
        except ImportError:
            doc.setdefault("notes", []).append("matplotlib is not installed: no plots")
            doc["plots"] = []
        written += [out / p["file"] for p in doc["plots"]]
    (out / "report.md").write_text(markdown(doc))
    (out / "report.html").write_text(html_report(doc))
    return [*written, out / "report.md", out / "report.html"]
