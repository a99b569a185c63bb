"""Budgets as branches of one WSD run (recipe schedule "wsd").

Before its cool-down a WSD run does not depend on its budget: the warm-up is counted in
samples, the rate is then constant, the EMA follows the weights, and the epochs, their
evaluations and the checkpoints are the same. So a run to the longest budget writes, where
each shorter budget's cool-down starts, its checkpoint into that budget's directory; the
shorter budget then resumes from there and trains only its cool-down, which is the same
training as a run to that budget alone (tests/test_branches.py checks it to float
tolerance). The study engine plans which run seeds which (effscale.study.branches).
"""

from dataclasses import dataclass

from effscale.rundir import PointDir
from effscale.training.checkpoint import Progress, save_checkpoint


@dataclass
class Branch:
    """A shorter budget of a WSD run: its directory gets the run's checkpoint where its
    cool-down starts (effscale.recipe.cooldown_start), so it trains only the cool-down."""

    start: float  # in samples
    point: PointDir
    config: dict  # its config.json
    total: int  # the samples it trains (its budget in whole epochs)


def seed_branch(branch: Branch, model, optimizer, ema, at: Progress, variant, data, prep) -> None:
    """Where the run stands, written as the branch's checkpoint, unless the branch has
    started (then its own checkpoints are at least as far)."""
    if branch.point.config_file.exists():
        return
    save_checkpoint(branch.point, model, optimizer, ema, at, variant, data, prep)
    branch.point.write_metrics(at.metrics)  # as a run to its budget alone, stopped here,
    branch.point.write_progress(at.samples, branch.total)  # would have: what status reads
    branch.point.write_config(branch.config)  # last: a config says the checkpoint is whole
