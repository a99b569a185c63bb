"""effscale: model-scaling studies in PyTorch (Tan & Le, EfficientNet, ICML 2019)."""

__version__ = "0.1.0"
