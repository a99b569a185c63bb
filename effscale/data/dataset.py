"""What every data source returns: labelled images as uint8 tensors, plus provenance.

Small sets live in memory as one uint8 NCHW tensor per split (airbench's CifarLoader);
augmentation happens later, on the training device, in batches (effscale.data.augment).
Sets too big for memory are ``StreamingImages``: a torch Dataset of files decoded by
DataLoader workers into the same uint8 CHW form.
"""

from dataclasses import dataclass, field

import torch

from effscale.data.pixels import channel_stats


@dataclass
class ImageDataset:
    name: str  # "embedded", "cifar10", "synthetic", or the folder's path
    classes: list[str]  # class names, index = label
    train_images: torch.Tensor | torch.utils.data.Dataset  # uint8 [N, 3, H, W], or streaming
    train_labels: torch.Tensor  # int64 [N]
    test_images: torch.Tensor | torch.utils.data.Dataset
    test_labels: torch.Tensor
    mean: tuple[float, float, float]  # per channel, on the 0..1 scale, of the training images
    std: tuple[float, float, float]
    source: str = ""  # provenance: where the images came from, for results and reports
    notes: list[str] = field(default_factory=list)  # e.g. "skipped 2 unreadable images: ..."
    resized: bool = False  # stored at a chosen size (images of mixed sizes), not their own

    @classmethod
    def in_memory(cls, name: str, classes: list[str], train, test, source: str):
        """A set held in memory, from (images, labels) per split; the mean and std are the
        training images' own."""
        mean, std = channel_stats(train[0])
        return cls(name, classes, *train, *test, mean=mean, std=std, source=source)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def streaming(self) -> bool:
        return not isinstance(self.train_images, torch.Tensor)

    @property
    def resolution(self) -> int:
        """Stored image side in pixels (images are square once stored)."""
        if self.streaming:
            return self.train_images.size
        return int(self.train_images.shape[-1])

    def describe(self) -> dict:
        return {
            "dataset": self.name,
            "classes": self.num_classes,
            "train_images": len(self.train_labels),
            "test_images": len(self.test_labels),
            "stored_px": self.resolution,
            "streaming": self.streaming,
            "source": self.source,
        }
