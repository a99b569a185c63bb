"""effscale: model-scaling studies in PyTorch (Tan & Le, EfficientNet, ICML 2019).

The main calls, at the top level (as ``timm.create_model`` is)::

    import effscale

    v = effscale.make_variant("efficientnet-b0", w=0.5)
    effscale.describe(v)
    model = effscale.build_model(v, num_classes=10)

Each name loads its module on first use, so ``import effscale`` does not import torch.
The training call is ``train_variant`` (``effscale.training.loop`` is the training module).
"""

import importlib

__version__ = "0.1.0"

# name -> (module, attribute)
_API = {
    "Variant": ("effscale.scaling", "Variant"),
    "make_variant": ("effscale.scaling", "make_variant"),
    "compound_variants": ("effscale.scaling", "compound_variants"),
    "describe": ("effscale.cost", "describe"),
    "count_cost": ("effscale.cost", "count_cost"),
    "build_model": ("effscale.zoo", "build_model"),
    "list_backbones": ("effscale.zoo", "list_backbones"),
    "load_dataset": ("effscale.data", "load_dataset"),
    "budget": ("effscale.recipe", "budget"),
    "train_variant": ("effscale.training.loop", "train"),
    "measure_latency": ("effscale.latency", "measure_latency"),
    "load_trained": ("effscale.trained", "load_trained"),
    "load_run": ("effscale.trained", "load_run"),
    "export": ("effscale.trained", "export"),
    "Study": ("effscale.study.plan", "Study"),
    "Point": ("effscale.study.plan", "Point"),
    "plan_sweep": ("effscale.study.plan", "plan_sweep"),
    "plan_compound": ("effscale.study.plan", "plan_compound"),
    "study_setting": ("effscale.study.kinds", "study_setting"),
    "sweep_study": ("effscale.study.kinds", "sweep_study"),
    "compound_study": ("effscale.study.kinds", "compound_study"),
    "search_study": ("effscale.study.kinds", "search_study"),
    "load_study": ("effscale.study.files", "load_study"),
    "run_study": ("effscale.study.engine", "run_study"),
    "run_search": ("effscale.study.engine", "run_search"),
    "write_report": ("effscale.report", "write_report"),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        module, attr = _API[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))
