"""effscale's command line: each command parses, calls the library, and prints.

The app lives in cli/app.py; each module here registers one command on it (run.py also
`studies`, report.py also `plot`); running.py, results.py and options.py are shared.

Examples:
    effscale models
    effscale cost resnet50 --width 2
    effscale table efficientnet
    effscale sweep --model resnet50 --dim width
    effscale compound --model efficientnet-b0 --phi 0..7 --cost-only
"""

from effscale.cli import cost, train, sweep, compound, run, speed, status, report  # noqa: F401, I001  (registers, in help order)
from effscale.cli import search, latency, cam, export  # noqa: F401, I001
from effscale.cli import fit, predict, recommend, verify, metrics  # noqa: F401, I001
from effscale.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
