"""Scaling laws fitted to a study's points: how should this network grow?

The field's answer since 2019 (Hoffmann et al. 2022, "Chinchilla", approach 3; Besiroglu et
al. 2024, its replication; Alabdulmohsin et al. 2023, "Getting ViT in Shape") is to fit a
saturating law to measured points and read the compute-optimal shape off it. Here:

    points.py     a study's finished points as rows (top-1 error per seed), checked to be
                  one backbone, base, data and protocol
    forms.py      the candidate laws F1, F2, F3 (Chinchilla extended to shape)
    fit.py        a robust fit: Huber on log error, variable projection, many starts
    bootstrap.py  cluster bootstrap over configurations: intervals on everything
    shape.py      what a law says: optimal FLOP shares, alpha/beta/gamma, saturation
    validate.py   held-out extrapolation scores, and choosing a form by them
    recommend.py  the best realisable network at a FLOPs target, against the alternatives
    plan.py       a study file that trains a recommendation to verify it

The library needs no CLI and no rich; ``effscale fit``, ``predict`` and ``recommend`` are
thin commands over it. The README section "How should I grow my network?" says how to use
it and what it found on the stored studies.
"""

from effscale.law.bootstrap import Bootstrap, bootstrap
from effscale.law.fit import Fit, fit_form
from effscale.law.forms import FORMS, Form
from effscale.law.points import Points, load_points

__all__ = [
    "FORMS",
    "Bootstrap",
    "Fit",
    "Form",
    "Points",
    "bootstrap",
    "fit_form",
    "load_points",
]
