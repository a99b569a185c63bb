"""Experiment trackers: each point's run logged to TensorBoard, MLflow or Weights & Biases
beside effscale's own metrics.jsonl (`--log tensorboard`, several at once; `log = [...]` in a
study file).

One tracker run per point, grouped by study: its parameters (the variant's d, w, r and
resolution, its counted FLOPs and parameters, the recipe, seed and data) when it starts, its
metrics at every epoch (step: the epoch), its final result when it ends. Where each writes:

- tensorboard: RUN_DIR/tensorboard/<point>/ (``tensorboard --logdir RUN_DIR/tensorboard``);
- mlflow: the server MLFLOW_TRACKING_URI names, else a local store in RUN_DIR/mlruns
  (``mlflow ui --backend-store-uri RUN_DIR/mlruns``); the experiment is the study's name;
- wandb: the project is the study's name; offline unless you are logged in (WANDB_MODE).

The packages are optional extras (``pip install "effscale[track]"`` for TensorBoard and
MLflow, ``"effscale[wandb]"``); a tracker whose package is missing is refused before anything
trains. Trackers only listen: a tracker that fails to log never stops a run.
"""

import importlib.util
import math
import os
from pathlib import Path

from effscale.errors import EffscaleError

TRACKERS = {  # name -> (the module it needs, the extra that installs it)
    "tensorboard": ("tensorboard", "track"),
    "mlflow": ("mlflow", "track"),
    "wandb": ("wandb", "wandb"),
}


def check_trackers(names) -> tuple[str, ...]:
    """The trackers asked for, each known and installed, or one line saying what to do."""
    names = tuple(dict.fromkeys(names or ()))
    for name in names:
        if name not in TRACKERS:
            raise EffscaleError(f"unknown tracker {name!r}", f"use {', '.join(TRACKERS)}")
        module, extra = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise EffscaleError(
                f"`log`={name} needs the {module} package, which is not installed",
                f'pip install "effscale[{extra}]"',
            )
    return names


def tracked(names, run_dir, study: str, point: str, params: dict, emit=None):
    """An ``on_event(kind, payload)`` that logs each "epoch" to the trackers ``names`` (then
    passes every event to ``emit``), and a ``finish(result)`` to call when the run ends."""
    trackers = []
    for name in names:
        try:
            trackers.append(_OPEN[name](Path(run_dir), study, point, params))
        except Exception as e:  # a tracker that cannot start does not stop training
            if emit:
                emit("message", f"`log`={name}: could not start ({e}); training goes on")

    def on_event(kind, payload):
        if kind == "epoch":
            metrics = {k: float(v) for k, v in payload.items() if _number(v) and k != "epoch"}
            for t in trackers:
                _quietly(t.epoch, metrics, int(payload.get("epoch", 0)))
        if emit:
            emit(kind, payload)

    def finish(result: dict) -> None:
        final = {f"final_{k}": float(v) for k, v in result.items() if _number(v)}
        for t in trackers:
            _quietly(t.finish, final)

    return on_event, finish


def point_params(variant, recipe, seed: int, data: str, cost) -> dict:
    """A point's parameters as a tracker shows them."""
    return {
        "model": variant.backbone,
        "d": variant.d,
        "w": variant.w,
        "r": variant.r,
        "resolution": variant.resolution,
        "flops": cost.flops,
        "params": cost.params,
        "seed": seed,
        "data": data,
        **{f"recipe.{k}": v for k, v in recipe.to_dict().items()},
    }


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _quietly(call, *args) -> None:
    try:
        call(*args)
    except Exception:  # a tracker's failure is its own: the run and its files go on
        pass


class _TensorBoard:
    def __init__(self, run_dir: Path, study: str, point: str, params: dict):
        from torch.utils.tensorboard import SummaryWriter

        self.params = {k: v if _number(v) else str(v) for k, v in params.items()}
        self.writer = SummaryWriter(str(run_dir / "tensorboard" / point))
        self.writer.add_text("params", "\n".join(f"{k}: {v}" for k, v in params.items()))

    def epoch(self, metrics: dict, step: int) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def finish(self, final: dict) -> None:
        self.writer.add_hparams(self.params, final, run_name=".")
        self.writer.close()


class _MLflow:
    def __init__(self, run_dir: Path, study: str, point: str, params: dict):
        import mlflow

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:  # a local store in the run directory (MLflow keeps such stores readable)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            uri = (run_dir / "mlruns").resolve().as_uri()
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(study)
        eid = experiment.experiment_id if experiment else self.client.create_experiment(study)
        self.run = self.client.create_run(eid, run_name=point, tags={"effscale.point": point})
        for k, v in params.items():
            self.client.log_param(self.run.info.run_id, k, v)

    def epoch(self, metrics: dict, step: int) -> None:
        for k, v in metrics.items():
            self.client.log_metric(self.run.info.run_id, k, v, step=step)

    def finish(self, final: dict) -> None:
        for k, v in final.items():
            self.client.log_metric(self.run.info.run_id, k, v)
        self.client.set_terminated(self.run.info.run_id)


class _WandB:
    def __init__(self, run_dir: Path, study: str, point: str, params: dict):
        import wandb

        os.environ.setdefault("WANDB_MODE", "offline")
        self.run = wandb.init(project=study, name=point, config=params, dir=str(run_dir),
                              reinit=True)  # fmt: skip

    def epoch(self, metrics: dict, step: int) -> None:
        self.run.log(metrics, step=step)

    def finish(self, final: dict) -> None:
        self.run.summary.update(final)
        self.run.finish()


_OPEN = {"tensorboard": _TensorBoard, "mlflow": _MLflow, "wandb": _WandB}
