"""Datasets as uint8 tensors (or streamed files): sources, and the ImageDataset they return."""

from effscale.data.dataset import ImageDataset
from effscale.data.sources import load_dataset
from effscale.data.streaming import StreamingImages, stream_batches

__all__ = ["ImageDataset", "StreamingImages", "load_dataset", "stream_batches"]
