"""A self-contained HTML report: headings, tables, matplotlib figures embedded as PNG, text.

:class:`Report` collects sections in order and writes one HTML file that needs nothing else (no
script, no style sheet, no image file: figures are ``data:image/png;base64`` URIs), so it can be
mailed, archived or opened from any folder. The plot helpers (:func:`bar_chart`,
:func:`line_chart`, :func:`image_grid`) take plain names and numbers, so every benchmark (DAVIS
video, image few-shot) builds its report from the same pieces. Figures are drawn with
matplotlib's Agg renderer, without pyplot's global state (safe in threads and headless).
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from samic_vos.runtime.atomic import atomic_write_text

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# A table cell: text, a number (formatted by the table's ``number``), or None (shown as "–").
Cell = str | float | int | None
# Figures are rendered at this many dots per inch.
DPI = 100
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1.5em;
       max-width: 1250px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f2f2f2; } td.num { text-align: right; }
tr.secondary td { color: #666; font-style: italic; }
caption { caption-side: bottom; color: #666; font-size: 0.9em; padding-top: 0.3em; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f7f7f7; border: 1px solid #ddd; padding: 0.8em; overflow-x: auto; }
"""


def _default_number(value: float) -> str:
    return f"{value:.3f}"


class Report:
    """An HTML document built section by section; :meth:`write` saves it atomically."""

    def __init__(self, title: str) -> None:
        self.title = title
        self._parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]

    def heading(self, text: str) -> None:
        """A section heading."""
        self._parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str) -> None:
        """A paragraph of plain text (escaped)."""
        self._parts.append(f"<p>{html.escape(text)}</p>")

    def table(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[Cell]],
        *,
        number: Callable[[float], str] = _default_number,
        secondary: Sequence[bool] | None = None,
        caption: str | None = None,
        table_id: str | None = None,
    ) -> None:
        """A table with a header row.

        Numbers are shown as ``number(value)`` and carry their exact value in a ``data-value``
        attribute (``repr`` of the float), so programs read them back without rounding; NaN
        and ``None`` show as "–". ``secondary[i]`` shows row ``i`` greyed (e.g. figures
        quoted from papers beside measured ones).
        """
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = []
        for i, row in enumerate(rows):
            if len(row) != len(columns):
                raise ValueError(f"row {i} has {len(row)} cells for {len(columns)} columns")
            css = ' class="secondary"' if secondary is not None and secondary[i] else ""
            body.append(f"<tr{css}>" + "".join(_cell(c, number) for c in row) + "</tr>")
        ident = f' id="{html.escape(table_id)}"' if table_id else ""
        note = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self._parts.append(
            f"<table{ident}>{note}<thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
        )

    def figure(self, figure: Figure, caption: str | None = None) -> None:
        """A matplotlib ``Figure``, embedded as a PNG (``caption`` below it)."""
        self.image(figure_png(figure), caption or "figure", caption)

    def image(self, png: bytes, alt: str, caption: str | None = None) -> None:
        """PNG bytes embedded as a ``data:`` URI."""
        data = base64.b64encode(png).decode("ascii")
        note = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._parts.append(
            f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f"{note}</figure>"
        )

    def links(self, label: str, targets: Sequence[tuple[str, str]]) -> None:
        """A paragraph: ``label`` then each ``(text, href)`` as a link (relative hrefs reach
        files beside the report)."""
        anchors = ", ".join(
            f'<a href="{html.escape(href)}">{html.escape(text)}</a>' for text, href in targets
        )
        self._parts.append(f"<p>{html.escape(label)} {anchors}</p>")

    def preformatted(self, text: str) -> None:
        """Text shown as is, in a fixed-width block (configurations, logs)."""
        self._parts.append(f"<pre>{html.escape(text)}</pre>")

    def html(self) -> str:
        """The whole document."""
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
            "<body>\n" + "\n".join(self._parts) + "\n</body></html>\n"
        )

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the document to ``path`` atomically (never half a file); returns the path."""
        path = Path(path)
        atomic_write_text(path, self.html())
        return path


def _cell(value: Cell, number: Callable[[float], str]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '<td class="num">–</td>'
    if isinstance(value, str):
        return f"<td>{html.escape(value)}</td>"
    return f'<td class="num" data-value="{float(value)!r}">{html.escape(number(value))}</td>'


def new_figure(width: float, height: float, *, constrained: bool = True) -> Figure:
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches on the Agg canvas.

    ``constrained``: matplotlib's constrained layout places the axes (else the caller does).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained" if constrained else None)
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure: Figure) -> bytes:
    """The figure rendered as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def bar_chart(
    names: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    title: str,
    xlim: tuple[float, float] | None = None,
) -> Figure:
    """Horizontal bars: one row per name, one bar per series (side by side), first name on top.

    ``series`` maps a label (a method) to one value per name (NaN: no bar). Returns the
    ``Figure``.
    """
    count, labels = len(names), list(series)
    height = 1.0 + 0.18 * count * max(1, len(labels)) ** 0.5
    figure = new_figure(9.0, max(2.5, height))
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(labels))
    rows = np.arange(count)
    for k, label in enumerate(labels):
        values = np.asarray(series[label], dtype=np.float64)
        if values.shape != (count,):
            raise ValueError(f"series {label!r} has {values.size} values for {count} names")
        axes.barh(rows - 0.4 + width * (k + 0.5), values, height=width, label=label)
    axes.set_yticks(rows, list(names), fontsize=8 if count > 30 else 9)
    axes.set_ylim(count - 0.5, -0.5)
    axes.set_xlabel(xlabel)
    axes.set_title(title)
    if xlim is not None:
        axes.set_xlim(*xlim)
    axes.grid(axis="x", alpha=0.3)
    if len(labels) > 1:
        _legend(figure, axes, "upper")
    return figure


def line_chart(
    panels: Sequence[tuple[str, Mapping[str, Sequence[float]]]],
    *,
    xlabel: str,
    title: str,
    x: Sequence[float] | None = None,
    ylim: tuple[float, float] | None = None,
) -> Figure:
    """Side-by-side line plots sharing the y axis: ``panels`` is ``[(y label, {line label:
    values})]``, every line's values at ``x`` (default 0, 1, ...). Returns the ``Figure``."""
    figure = new_figure(4.5 * len(panels), 2.8)
    axes_all = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for axes, (ylabel, lines) in zip(axes_all, panels, strict=True):
        for label, values in lines.items():
            at = np.arange(len(values)) if x is None else np.asarray(x, dtype=np.float64)
            axes.plot(at, values, label=label, linewidth=1.2)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
        if ylim is not None:
            axes.set_ylim(*ylim)
    if panels and len(panels[0][1]) > 1:
        _legend(figure, axes_all[0], "lower")  # above would cover the title
    figure.suptitle(title)
    return figure


def _legend(figure: Figure, axes: Axes, side: str) -> None:
    """The labels of ``axes``'s artists in rows of up to 5, outside the plots (never on data),
    on the ``side`` ``"upper"`` or ``"lower"``."""
    handles, labels = axes.get_legend_handles_labels()
    ncols = min(5, len(labels))
    figure.legend(handles, labels, loc=f"outside {side} center", ncols=ncols, fontsize=8)


def image_grid(
    images: Sequence[Sequence[np.ndarray]],
    *,
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    title: str,
) -> Figure:
    """A grid of ``uint8`` RGB images ``(H, W, 3)`` of one size: ``images[row][column]``.

    Each image is drawn pixel for pixel (no resampling), with its column's label above the top
    row and its row's label left of the first column. Returns the ``Figure``.
    """
    height, width = images[0][0].shape[:2]
    left, top, gap = 22, 44, 6  # pixels: row labels, title + column labels, between tiles
    rows, columns = len(images), len(column_labels)
    fig_w = left + columns * (width + gap)
    fig_h = top + rows * (height + gap)
    figure = new_figure(fig_w / DPI, fig_h / DPI, constrained=False)
    for r, row in enumerate(images):
        for c, image in enumerate(row):
            if image.shape[:2] != (height, width):
                raise ValueError(f"image [{r}][{c}] is {image.shape[:2]}, not {(height, width)}")
            x0, y0 = left + c * (width + gap), top + r * (height + gap)
            box = [x0 / fig_w, 1.0 - (y0 + height) / fig_h, width / fig_w, height / fig_h]
            axes = figure.add_axes(box)
            axes.imshow(image, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            if r == 0:
                axes.set_title(column_labels[c], fontsize=9, pad=3)
            if c == 0:
                axes.set_ylabel(row_labels[r], fontsize=9, labelpad=3)
    figure.suptitle(title, y=1.0 - 4 / fig_h, va="top")
    return figure
