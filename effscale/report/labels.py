"""Point labels that collide neither with each other, the legend nor the markers, lines
that coincide drawn apart, and readable log ticks: what the plots share (plots.py,
search.py, lawplots.py).

place_labels  lays the figure out once and freezes it (settle: the layout and each legend
              where it fell), then puts each label at the first of a few offsets around its
              point that overlaps no label placed before, no legend, no marker, and stays
              inside the axes; where every offset overlaps something, the least overlap wins
overlapping   which of the lines drawn before a new one it lies on (the same points, within
              a small part of the axis range); dodge() then draws it a few points to the
              right, and the legend says which line it coincides with
log_axis      a log scale with at least three round, plainly written ticks across any
              range (4, 8, 16; 100k, 150k, 200k; 9.25, 9.5, 9.75 ms), no 10^x

All of it is computed from the drawn figure alone, so the same data give the same picture.
"""

import math

import numpy as np
from matplotlib.ticker import FuncFormatter, Locator, MaxNLocator, NullLocator
from matplotlib.transforms import Bbox, ScaledTranslation

# (dx, dy) in points from the point to the label's nearest corner (or edge's middle), in
# order of preference: right below (the paper's style), then around it, then further out.
_RING = [(1, -1), (1, 1), (-1, 1), (-1, -1), (0, 1.4), (0, -1.4), (1.4, 0), (-1.4, 0)]
OFFSETS = [(dx * r, dy * r) for r in (5, 10, 15) for dx, dy in _RING]
PAD = 1.5  # pixels around a label that must stay clear too
WEIGHTS = {"label": 100.0, "legend": 100.0, "outside": 40.0, "marker": 20.0, "line": 0.3,
           "nearer": 1.5}  # fmt: skip
DODGE_PT = 4.0  # a line on another is drawn this many points to the right
NEAR = 0.02  # points this part of the axis range apart (in log where log) coincide


def settle(fig) -> None:
    """Lay the figure out and freeze it: the layout engine's axes positions, and each
    legend at the place it took ("best" would move when labels are added; one outside the
    axes, anchored to the figure's box, would move when a tight save widens that box)."""
    fig.draw_without_rendering()
    for ax in fig.axes:
        if ax.get_legend() is not None and ax.get_legend()._loc == 0:  # "best": ours instead
            _clear_of_points(ax, ax.get_legend())
    for parent in fig.axes + [fig]:
        legends = parent.legends if parent is fig else [parent.get_legend()]
        to_parent = parent.transSubfigure if parent is fig else parent.transAxes
        for legend in [leg for leg in legends if leg is not None]:
            box = legend.get_window_extent().transformed(to_parent.inverted())
            legend.set_bbox_to_anchor(Bbox.unit(), transform=to_parent)
            legend.set_loc((box.x0, box.y0))
    fig.set_layout_engine("none")


LABEL_ROOM = 14.0  # points around each marker a legend leaves free for its label


def _clear_of_points(ax, legend) -> None:
    """Put ``legend`` at the corner or side of ``ax`` (matplotlib's nine places, in its
    order) that covers the least of the markers with room for their labels (LABEL_ROOM)
    and of the lines and error bars; matplotlib's "best" counts the points alone, so its
    legend may sit right on top of a point, leaving its label no room."""
    renderer = ax.figure.canvas.get_renderer()
    boxes, points = obstacles(ax)
    room = LABEL_ROOM * ax.figure.dpi / 72
    boxes = boxes + np.array([-room, -room, room, room])
    best = None
    for code in range(1, 11):
        legend.set_loc(code)
        box = legend.get_window_extent(renderer)
        inside = ((points[:, 0] > box.x0) & (points[:, 0] < box.x1)
                  & (points[:, 1] > box.y0) & (points[:, 1] < box.y1)).sum()  # fmt: skip
        cost = _overlap(box, boxes) / max(box.width * box.height, 1.0) + 0.05 * inside
        if best is None or cost < best[0] - 1e-9:
            best = (cost, code)
    legend.set_loc(best[1])


def legend_below(fig, ax, **style):
    """The legend of ``ax``'s lines under the figure's axes, in two columns: for a plot
    whose axes are full of points and labels. (settle() keeps it there on a tight save.)"""
    return fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2,
                      **{"fontsize": 7, **style})  # fmt: skip


def _align(dx: float, dy: float) -> dict:
    ha = "left" if dx > 0 else "right" if dx < 0 else "center"
    va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
    return {"ha": ha, "va": va}


def _sample(xy: np.ndarray, step: float = 3.0) -> np.ndarray:
    """Points every ``step`` pixels along a polyline given in pixels."""
    xy = xy[np.isfinite(xy).all(axis=1)]
    out = [xy]
    for a, b in zip(xy[:-1], xy[1:]):
        n = int(math.hypot(*(b - a)) // step)
        if n > 1:
            t = np.linspace(0.0, 1.0, n + 1)[1:-1, None]
            out.append(a + t * (b - a))
    return np.concatenate(out) if out else np.empty((0, 2))


def _no_marker(line) -> bool:
    return line.get_marker() in (None, "None", "", " ") or not line.get_visible()


def obstacles(ax) -> tuple[np.ndarray, np.ndarray]:
    """What a label should not cover, in pixels: the markers' boxes (x0, y0, x1, y1) and
    points along the lines and error bars."""
    scale = ax.figure.dpi / 72
    boxes, points = [np.empty((0, 4))], [np.empty((0, 2))]
    for line in ax.get_lines():
        if not line.get_visible():
            continue
        xy = line.get_transform().transform(line.get_xydata())
        if line.get_linestyle() not in ("None", "", " "):
            points.append(_sample(xy))
        if not _no_marker(line):
            half = line.get_markersize() * scale / 2 + 1.0
            xy = xy[np.isfinite(xy).all(axis=1)]
            boxes.append(np.hstack([xy - half, xy + half]))
    for coll in ax.collections:  # error bars
        if hasattr(coll, "get_segments") and coll.get_visible():
            for seg in coll.get_segments():
                points.append(_sample(coll.get_transform().transform(np.asarray(seg))))
    return np.concatenate(boxes), np.concatenate(points)


def _overlap(box: Bbox, others: np.ndarray) -> float:
    """Summed intersection area of ``box`` with each row (x0, y0, x1, y1) of ``others``."""
    if not len(others):
        return 0.0
    w = np.minimum(box.x1, others[:, 2]) - np.maximum(box.x0, others[:, 0])
    h = np.minimum(box.y1, others[:, 3]) - np.maximum(box.y0, others[:, 1])
    return float((w.clip(0) * h.clip(0)).sum())


def _distance(box: Bbox, xy: np.ndarray) -> np.ndarray:
    """Pixels from ``box`` to each point (row) of ``xy``: 0 inside."""
    dx = np.maximum.reduce([box.x0 - xy[:, 0], np.zeros(len(xy)), xy[:, 0] - box.x1])
    dy = np.maximum.reduce([box.y0 - xy[:, 1], np.zeros(len(xy)), xy[:, 1] - box.y1])
    return np.hypot(dx, dy)


class _Scene:
    """What the labels of one axes must stay clear of, in pixels: the labels placed so far,
    the legend, the markers and lines, the axes' edges; and the labelled points, since a
    label should be nearer its own point than any other."""

    def __init__(self, ax, anchors: np.ndarray):
        renderer = ax.figure.canvas.get_renderer()
        self.boxes, self.points = obstacles(ax)
        legends = [leg for leg in [ax.get_legend(), *ax.figure.legends] if leg is not None]
        self.legends = np.array([leg.get_window_extent(renderer).extents for leg in legends])
        self.legends = self.legends.reshape(-1, 4)
        self.ax_box = np.array([ax.get_window_extent(renderer).extents])
        self.anchors, self.placed = anchors, np.empty((0, 4))

    def marker_half(self, i: int) -> float:
        """Half the size (pixels) of the largest marker drawn at labelled point ``i``."""
        centres = (self.boxes[:, :2] + self.boxes[:, 2:]) / 2
        at = np.hypot(*(centres - self.anchors[i]).T) < 1.0
        return float(((self.boxes[at, 2] - self.boxes[at, 0]) / 2).max()) if at.any() else 0.0

    def cost(self, box: Bbox, i: int) -> float:
        box = box.padded(PAD)
        area = max(box.width * box.height, 1.0)
        pts = self.points
        inside_pts = (pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (
            pts[:, 1] < box.y1)  # fmt: skip
        return (
            WEIGHTS["label"] * _overlap(box, self.placed) / area
            + WEIGHTS["legend"] * _overlap(box, self.legends) / area
            + WEIGHTS["outside"] * (area - _overlap(box, self.ax_box)) / area
            + WEIGHTS["marker"] * _overlap(box, self.boxes) / area
            + WEIGHTS["line"] * float(inside_pts.sum())
            + WEIGHTS["nearer"] * self.nearer(box, i)
        )

    def nearer(self, box: Bbox, i: int) -> bool:
        """Whether ``box`` is nearer another labelled point than its own, point ``i``."""
        far = _distance(box, self.anchors)
        others = np.abs(self.anchors - self.anchors[i]).sum(axis=1) > 0.5
        return bool((far[others] < far[i] + 2.0).any())


def _offsets(half_pt: float) -> list[tuple[float, float]]:
    """OFFSETS, moved out past a marker bigger than the usual (``half_pt`` points)."""
    extra = max(0.0, half_pt - 3.5)
    return [(dx + extra * np.sign(dx), dy + extra * np.sign(dy)) for dx, dy in OFFSETS]


def place_labels(ax, points, **style) -> list:
    """Annotate each (x, y, text) of ``points`` (data coordinates; a fourth item: that
    label's own style) beside its point where it covers the least (see the module's
    docstring); ``style``: the annotations' (fontsize, color, ...; fontsize 8 unless
    given). Draws the figure once first (settle), so call it after everything else in
    ``ax`` is drawn. Returns the annotations."""
    settle(ax.figure)
    renderer = ax.figure.canvas.get_renderer()
    points = list(points)
    anchors = ax.transData.transform(np.array([p[:2] for p in points], float).reshape(-1, 2))
    scene, style, made = _Scene(ax, anchors), {"fontsize": 8, **style}, []
    for i, (x, y, text, *own) in enumerate(points):
        kw = {**style, **(own[0] if own else {})}
        trial = ax.annotate(text, (x, y), OFFSETS[0], textcoords="offset points", **kw)
        half = scene.marker_half(i) * 72 / ax.figure.dpi
        offsets, best = _offsets(half), None
        for rank, (dx, dy) in enumerate(offsets):
            trial.set_position((dx, dy))
            trial.set(**_align(dx, dy))
            box = trial.get_window_extent(renderer)
            cost = scene.cost(box, i) + 1e-3 * rank
            if best is None or cost < best[0]:
                best = (cost, rank, box)
            if cost < 1e-3 * (rank + 1):  # nothing covered: the first free offset
                break
        trial.remove()
        _, rank, box = best
        scene.placed = np.vstack([scene.placed, box.padded(PAD).extents])
        far = rank >= len(_RING) or scene.nearer(box, i)  # a line then joins it to its point
        arrow = {"arrowstyle": "-", "lw": 0.6, "color": "0.45", "shrinkA": 1,
                 "shrinkB": half + 1} if far else None  # fmt: skip
        made.append(ax.annotate(text, (x, y), offsets[rank], textcoords="offset points",
                                annotation_clip=False, arrowprops=arrow,
                                **_align(*offsets[rank]), **kw))  # fmt: skip
    return made


# ---------------------------------------------------------------------------------------
# Lines on lines
# ---------------------------------------------------------------------------------------


def spans(xs, ys, log_x: bool = True) -> tuple[float, float]:
    """The ranges NEAR is a part of: of log10 x (or x) and of y, over every plotted point."""
    xs = np.asarray([v for v in xs if v is not None and math.isfinite(v)], float)
    ys = np.asarray([v for v in ys if v is not None and math.isfinite(v)], float)
    xs = np.log10(xs[xs > 0]) if log_x else xs
    x_span = float(xs.max() - xs.min()) if len(xs) else 1.0
    y_span = float(ys.max() - ys.min()) if len(ys) else 1.0
    return x_span or 1.0, y_span or 1.0


def overlapping(xs, ys, drawn: list, span: tuple[float, float], log_x: bool = True):
    """The name of the first line in ``drawn`` ([(name, xs, ys)], in drawing order) that a
    line through (xs, ys) lies on, within NEAR of ``span`` (spans()): each of its points is
    one of that line's, in the same order, and each of its segments runs along that line
    (a segment that skips a point of it passes that point). None when it lies on none."""
    if len(xs) < 2:
        return None

    def scaled(x, y):  # coordinates in which NEAR is the tolerance
        x = np.log10(np.asarray(x, float)) if log_x else np.asarray(x, float)
        return np.column_stack([x / span[0], np.asarray(y, float) / span[1]])

    mine = scaled(xs, ys)
    for name, ex, ey in drawn:
        theirs = scaled(ex, ey)
        apart = np.abs(mine[:, None, :] - theirs[None, :, :]).max(axis=2)
        if not (apart <= NEAR).any(axis=1).all():
            continue
        index = [int(np.flatnonzero(row <= NEAR)[0]) for row in apart]
        if all(a < b and _on_chord(theirs[a : b + 1]) for a, b in zip(index, index[1:])):
            return name
    return None


def _on_chord(path: np.ndarray) -> bool:
    """Whether the inner points of ``path`` lie within NEAR of the segment joining its ends."""
    start, inner, step = path[0], path[1:-1], path[-1] - path[0]
    if not len(inner) or not step.any():
        return not len(inner)
    t = ((inner - start) @ step / (step @ step)).clip(0.0, 1.0)
    return bool((np.hypot(*(inner - start - t[:, None] * step).T) <= NEAR).all())


def dodge(ax, artists, points: float = DODGE_PT) -> None:
    """Move ``artists`` (a line's, its error bars') ``points`` to the right on the page,
    after they are drawn, so that the data limits stay those of the data."""
    shift = ScaledTranslation(points / 72, 0, ax.figure.dpi_scale_trans)
    for artist in artists:
        artist.set_transform(artist.get_transform() + shift)


# ---------------------------------------------------------------------------------------
# Log axes' ticks
# ---------------------------------------------------------------------------------------

# Round ticks by family, sparsest first: a log axis is ticked by the first that puts three
# or more inside its range, else by plain round steps (9, 9.2, 9.4 ms across 9-10 ms).
FAMILIES = {
    2: [(1.0,), (1.0, 1.5)],  # times powers of two: 4, 8, 16; then 4, 6, 8, 12
    10: [(1.0,), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)],  # of ten
}
MOST = 8  # more ticks than this: every second (or third ...) one


def number(v: float) -> str:
    """A tick label without scientific notation: 0.5, 3, 12, 1,024."""
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def readable_ticks(lo: float, hi: float, family: int = 2, slack: float = 1.0) -> list[float]:
    """Round ticks for a log axis from lo to hi (ticks up to ``slack`` times outside count
    as inside): the first of the family's series (FAMILIES) with three or more there, else
    plain round steps; at most MOST, thinned evenly."""
    if not (lo > 0 and hi > 0 and math.isfinite(lo) and math.isfinite(hi)):
        return []
    lo, hi = min(lo, hi), max(lo, hi)
    low, high = math.floor(math.log(lo, family)) - 1, math.ceil(math.log(hi, family)) + 1
    inside: list[float] = []
    for series in FAMILIES[family]:
        ticks = sorted({float(f"{m * family**k:.12g}") for k in range(low, high + 1)
                        for m in series})  # fmt: skip
        inside = [t for t in ticks if lo / slack <= t <= hi * slack]
        if len(inside) >= 3:
            break
    if len(inside) < 3:
        steps = MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
        plain = [float(f"{t:.12g}") for t in steps if lo / slack <= t <= hi * slack and t > 0]
        inside = plain if len(plain) > len(inside) else inside
    if len(inside) > MOST:
        every = math.ceil(len(inside) / MOST)
        inside = inside[::every]
    return inside


def log2_ticks(lo: float, hi: float) -> list[float]:
    """Round ticks for a log-2 axis over data from lo to hi: powers of two, with their
    halves-of-an-octave (x1.5) added when the range spans fewer than three of them, else
    plain round steps (readable_ticks)."""
    return readable_ticks(lo, hi, 2, slack=1.05)


class ReadableLocator(Locator):
    """Ticks from readable_ticks over the axis's view (after margins), and ``keep`` (values
    that must be ticked, such as the budgets trained) with the round ticks not too near
    them, when fewer than three are kept."""

    def __init__(self, family: int = 2, keep=()):
        self.family, self.keep = family, [float(k) for k in keep]

    def __call__(self):
        return self.tick_values(*self.axis.get_view_interval())

    def tick_values(self, vmin, vmax):
        lo, hi = min(vmin, vmax), max(vmin, vmax)
        fixed = sorted(k for k in self.keep if lo <= k <= hi)
        if len(fixed) >= 3:
            return fixed
        extra = [t for t in readable_ticks(lo, hi, self.family)
                 if all(abs(math.log(t / k)) > math.log(1.15) for k in fixed)]  # fmt: skip
        return sorted(fixed + extra)


def log_axis(ax, axis: str = "x", family: int = 2, label=number, keep=()) -> None:
    """A log scale on ``axis`` (base ``family``) with readable round ticks (12, 24, 48; not
    10^1, and at least three across a narrow range) labelled by ``label``, no minor ticks."""
    getattr(ax, f"set_{axis}scale")("log", base=family)
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(ReadableLocator(family, keep))
    target.set_major_formatter(FuncFormatter(lambda v, _: label(v)))
    target.set_minor_locator(NullLocator())
