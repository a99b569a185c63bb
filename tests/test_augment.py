"""The random-resized crop computed two ways, per image and batched, gives the same pixels;
the batched form makes as many torch calls for 4 images as for 16."""

import pytest
import torch
from torch.overrides import TorchFunctionMode

from effscale.data.augment import (
    crop_boxes,
    random_resized_crop,
    resized_crops_batched,
    resized_crops_per_image,
)


@pytest.mark.parametrize(
    "side, size, min_area",
    [(224, 64, 0.35), (224, 224, 0.35), (32, 84, 0.25), (96, 96, 0.05), (224, 57, 1.0)],
)
def test_the_batched_crop_equals_one_resize_per_image(side, size, min_area):
    x = torch.randint(0, 256, (24, 3, side, side), dtype=torch.uint8)
    boxes = crop_boxes(24, side, torch.Generator().manual_seed(1), min_area)
    one_by_one = resized_crops_per_image(x, boxes, size)
    batched = resized_crops_batched(x, boxes, size)
    assert batched.shape == one_by_one.shape == (24, 3, size, size)
    torch.testing.assert_close(batched, one_by_one, atol=5e-3, rtol=1e-5)  # of 0..255


def test_a_crop_that_shrinks_one_side_and_enlarges_the_other_matches_too():
    x = torch.randint(0, 256, (2, 3, 120, 120), dtype=torch.uint8)
    boxes = torch.tensor([[10.0, 3.0, 20.0, 117.0], [0.0, 0.0, 120.0, 7.0]])
    torch.testing.assert_close(
        resized_crops_batched(x, boxes, 50), resized_crops_per_image(x, boxes, 50),
        atol=5e-3, rtol=1e-5,
    )  # fmt: skip


class CountCalls(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def test_the_batched_crop_makes_as_many_torch_calls_for_any_batch():
    counts = []
    for batch in (4, 16):
        x = torch.randint(0, 256, (batch, 3, 64, 64), dtype=torch.uint8)
        boxes = crop_boxes(batch, 64, torch.Generator().manual_seed(0), 0.35)
        with CountCalls() as mode:
            resized_crops_batched(x, boxes, 32)
        counts.append(mode.calls)
        with CountCalls() as loop:
            resized_crops_per_image(x, boxes, 32)
        assert loop.calls > 3 * batch  # what the batched form saves a GPU
    assert counts[0] == counts[1]


def test_random_resized_crop_draws_the_same_crops_as_before():
    """The crops a seed draws are those of the per-image code the stored points trained
    with (reference values taken before the batched form was added)."""
    g = torch.Generator().manual_seed(0)
    boxes = crop_boxes(3, 224, g, 0.35)
    assert boxes.tolist() == REFERENCE_BOXES
    x = torch.randint(0, 256, (3, 3, 224, 224), dtype=torch.uint8)
    out = random_resized_crop(x, 64, torch.Generator().manual_seed(0), 0.35)
    torch.testing.assert_close(out, resized_crops_per_image(x, boxes, 64))


REFERENCE_BOXES = [
    [10.0, 37.0, 204.0, 165.0],
    [6.0, 10.0, 218.0, 195.0],
    [39.0, 30.0, 138.0, 149.0],
]
