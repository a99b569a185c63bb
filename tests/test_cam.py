"""effscale cam: class activation maps of trained runs, the grid, and what is refused."""

import json
import shutil

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from conftest import error_lines
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from effscale.cam import (
    centre_share,
    class_activation_maps,
    dataset_images,
    draw_grid,
    folder_images,
    map_agreement,
    map_run,
    measure,
)
from effscale.cli import app
from effscale.cost import count_cost
from effscale.data import load_dataset
from effscale.data.augment import eval_transform
from effscale.errors import EffscaleError
from effscale.recipe import budget
from effscale.scaling import make_variant
from effscale.trained import load_run, load_trained
from effscale.training.loop import train

runner = CliRunner()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny variants (base and r=1.5) trained briefly on the synthetic set."""
    root = tmp_path_factory.mktemp("cam")
    data = load_dataset("synthetic")
    recipe = budget("smoke", samples=512, batch_size=64)
    paths = {}
    for name, r in (("base", 1.0), ("res", 1.5)):
        v = make_variant("resnet18", w=0.25, d=0.5, r=r, base_resolution=32)
        train(v, data, recipe, root / name, device="cpu")
        paths[name] = root / name
    return paths


def test_maps_are_per_image_in_0_1_and_follow_the_prediction(runs):
    run = load_run(runs["res"])
    model, variant, classes = run.model, run.variant, run.classes
    assert variant.resolution == 48 and len(classes) == 10
    images = dataset_images("synthetic", count=5)
    cams, labels = class_activation_maps(model, images.pixels, images.mean, images.std, 48)
    assert cams.shape == (5, 32, 32)  # the images' own size, to overlay them
    assert torch.allclose(cams.amin((1, 2)), torch.zeros(5))
    assert torch.allclose(cams.amax((1, 2)), torch.ones(5))
    with torch.no_grad():
        logits = model(eval_transform(images.pixels, 48, images.mean, images.std))
    assert labels.tolist() == logits.argmax(1).tolist()


def test_dataset_images_take_one_per_class_first():
    images = dataset_images("synthetic", count=12)
    assert images.labels.tolist() == list(range(10)) + [0, 1]
    assert images.names[:2] == [images.classes[0], images.classes[1]]


def test_grid_png_has_a_row_per_image_and_a_column_per_run(runs, tmp_path):
    out = tmp_path / "cam.png"
    args = ["cam", str(runs["base"]), str(runs["res"] / "checkpoint.pt")]
    args += ["--label", "baseline", "--label", "resolution", "--count", "5"]
    r = runner.invoke(app, [*args, "--out", str(out), "--format", "json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["images"] == 5 and result["columns"] == 3
    assert [run["label"] for run in result["runs"]] == ["baseline", "resolution"]
    assert all(len(run["predictions"]) == 5 for run in result["runs"])
    assert all(0 <= run["right"] <= 5 for run in result["runs"])  # synthetic: default data
    first, second = result["runs"]
    assert first["agreement_with_first"] == 1.0  # a run agrees with itself
    assert -1 <= second["agreement_with_first"] <= 1
    assert all(0 <= run["centre_share"] <= 1 for run in result["runs"])
    assert first["flops"] > 0 and second["flops_ratio"] > 1  # r=1.5 costs more
    assert all(run["top1"] is not None for run in result["runs"])  # from their result.json
    assert json.loads((tmp_path / "cam.json").read_text()) == result  # measures beside the PNG
    with Image.open(out) as im:
        assert im.size == (result["width_px"], result["height_px"])
        assert 1.2 < im.size[1] / im.size[0] < 2.2  # 5 rows of 3 square cells, plus titles
        colours = len(np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0))
    assert colours > 1000  # images and jet maps drawn, not an empty canvas
    assert not list(tmp_path.glob(".cam.*"))  # written atomically, no temp left


def test_images_from_a_folder(runs, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    pixels = dataset_images("synthetic", count=2).pixels
    for i, p in enumerate(pixels):
        Image.fromarray(p.permute(1, 2, 0).numpy()).resize((64, 48)).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "cam.png"
    r = runner.invoke(app, ["cam", str(runs["base"]), "--images", str(folder), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 0
    r = runner.invoke(
        app,
        ["cam", str(runs["base"]), "--images", str(folder), "--format", "json", "--out", str(out)],
    )
    result = json.loads(r.stdout)
    assert result["images"] == 2 and result["runs"][0]["right"] is None


def test_a_checkpoint_of_another_variant_is_refused(runs):
    named = ["--model", "resnet18", "--width", "0.5", "--depth", "0.5", "--base-resolution", "32"]
    r = runner.invoke(app, ["cam", str(runs["base"]), *named, "--out", "x.png"])
    assert r.exit_code == 2
    assert "w 0.25 there, 0.5 named" in r.stderr
    assert len(error_lines(r.stderr)) == 1
    # the variant it does hold is accepted
    v = make_variant("resnet18", w=0.25, d=0.5, base_resolution=32)
    assert load_run(runs["base"], v).variant == v


def test_a_state_dict_that_does_not_fit_is_refused(runs, tmp_path):
    model = load_trained(runs["base"])
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(EffscaleError, match="no variant recorded"):
        load_trained(path)
    other = make_variant("resnet18", w=0.5, d=0.5, base_resolution=32)
    with pytest.raises(EffscaleError, match="do not fit"):
        load_trained(path, other)
    same = make_variant("resnet18", w=0.25, d=0.5, base_resolution=32)
    assert load_run(path, same).classes == [str(i) for i in range(10)]


@pytest.mark.parametrize(
    "head", [nn.Identity(), nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))]
)
def test_a_model_without_a_linear_head_is_refused(runs, head):
    model = load_trained(runs["base"])
    model.fc = head
    images = dataset_images("synthetic", count=2)
    with pytest.raises(EffscaleError, match="no global-average-pooling \\+ linear head"):
        class_activation_maps(model, images.pixels, images.mean, images.std, 32)


def test_a_study_directory_asks_for_its_points(tmp_path):
    (tmp_path / "study.json").write_text("{}")
    r = runner.invoke(app, ["cam", str(tmp_path), "--out", str(tmp_path / "x.png")])
    assert r.exit_code == 2
    assert "study's run directory" in r.stderr and "points/<key>" in r.stderr


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--label", "a", "--label", "b"], "2 --label values for 1 runs"),
        (["--images", ".", "--data", "synthetic"], "--images and --data both"),
        (["--count", "0"], "--count must be at least 1"),
        (["--width", "2"], "--model is needed with --width"),
    ],
)
def test_bad_options_are_one_line(runs, extra, says):
    r = runner.invoke(app, ["cam", str(runs["base"]), *extra])
    assert r.exit_code == 2
    assert says in r.stderr and len(error_lines(r.stderr)) == 1


def test_no_checkpoint_there(tmp_path):
    r = runner.invoke(app, ["cam", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "no checkpoint at" in r.stderr


# ---------------------------------------------------------------------------------------
# Measures, column heads and image size (issue 28 item 1)
# ---------------------------------------------------------------------------------------


def test_centre_share_of_a_map_inside_the_box_is_1_and_of_a_uniform_map_one_half():
    inside = torch.zeros(1, 32, 32)
    inside[0, 12:20, 10:22] = torch.rand(8, 12) + 0.1  # the box spans 4.7 to 27.3 px
    assert centre_share(inside).item() == pytest.approx(1.0)
    for h, w in ((32, 32), (224, 224), (7, 9), (5, 5)):  # edge pixels count in part
        assert centre_share(torch.ones(1, h, w)).item() == pytest.approx(0.5, abs=1e-9)
    corner = torch.zeros(1, 32, 32)
    corner[0, :3, :3] = 1.0
    assert centre_share(corner).item() == pytest.approx(0.0)
    assert torch.isnan(centre_share(torch.zeros(1, 8, 8))).all()  # a flat zero map: no share


def test_agreement_of_a_map_with_itself_is_1_and_with_its_opposite_minus_1():
    cams = torch.rand(4, 16, 16)
    assert torch.allclose(map_agreement(cams, cams), torch.ones(4, dtype=torch.float64))
    assert torch.allclose(map_agreement(cams, 1 - cams), -torch.ones(4, dtype=torch.float64))
    coarse = torch.rand(4, 8, 8)  # another size: compared at the first one's
    assert map_agreement(cams, coarse).shape == (4,)


def _point(root, name, checkpoint, result=None):
    """A point directory holding a copy of ``checkpoint`` and, when given, a result.json."""
    folder = root / name
    folder.mkdir()
    shutil.copy(checkpoint, folder / "checkpoint.pt")
    if result is not None:
        (folder / "result.json").write_text(json.dumps({"status": "done", **result}))
    return folder


def _heads(fig) -> list[str]:
    """The column heads of a drawn grid, left to right."""
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_column_heads_give_flops_and_top1_from_result_json(runs, tmp_path):
    ckpt = runs["base"] / "checkpoint.pt"
    a = _point(tmp_path, "a", ckpt, {"flops": 1_000_000, "top1": 55.0})
    b = _point(tmp_path, "b", ckpt, {"flops": 2_400_000, "top1": 61.3})
    images = dataset_images("synthetic", count=2)
    columns = [map_run(a, images, label="baseline"), map_run(b, images)]
    assert [(c.flops, c.top1) for c in columns] == [(1_000_000, 55.0), (2_400_000, 61.3)]
    fig = draw_grid(images, columns)
    heads = _heads(fig)
    plt.close(fig)
    assert heads[0] == "image"
    assert heads[1].splitlines() == ["baseline", "1.0x FLOPs", "top-1 55.0%"]
    assert "2.4x FLOPs" in heads[2] and "top-1 61.3%" in heads[2]
    rows = measure(columns)
    assert [r["top1"] for r in rows] == [55.0, 61.3] and rows[1]["flops_ratio"] == 2.4
    assert rows[0]["agreement_with_first"] == rows[1]["agreement_with_first"] == 1.0  # same net

    alone = [map_run(a, images)]  # one run: its FLOPs, not a ratio
    fig = draw_grid(images, alone)
    assert "1 MFLOPs" in _heads(fig)[1]
    plt.close(fig)


def test_without_result_json_flops_are_counted_and_top1_left_out(runs, tmp_path):
    bare = _point(tmp_path, "bare", runs["base"] / "checkpoint.pt")
    images = dataset_images("synthetic", count=2)
    column = map_run(bare, images)
    run = load_run(bare)
    variant, classes = run.variant, run.classes
    assert column.flops == count_cost(variant, len(classes)).flops and column.top1 is None
    fig = draw_grid(images, [column])
    assert "top-1" not in _heads(fig)[1] and "FLOPs" in _heads(fig)[1]
    plt.close(fig)


def test_images_are_drawn_at_their_stored_size_with_the_map_over_all_of_them(runs, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    pixels = dataset_images("synthetic", count=2).pixels
    for i, p in enumerate(pixels):
        Image.fromarray(p.permute(1, 2, 0).numpy()).resize((96, 96)).save(folder / f"{i}.png")
    images = folder_images(folder)
    assert images.pixels.shape == (2, 3, 96, 96)  # their own size, not the 32-px model's
    column = map_run(runs["base"], images)  # the model sees 32 px
    assert column.cams.shape == (2, 96, 96)
    fig = draw_grid(images, [column])
    image_axes, map_axes = fig.axes[0], fig.axes[1]
    assert image_axes.get_images()[0].get_array().shape == (96, 96, 3)
    photo, cam = map_axes.get_images()
    assert photo.get_array().shape == (96, 96, 3) and cam.get_array().shape == (96, 96)
    plt.close(fig)


def test_imagenet_class_folders_are_shown_as_words():
    from effscale.data.folder import class_label

    assert class_label("n01440764") == "tench" and class_label("n03888605") == "parachute"
    assert class_label("airplane") == "airplane"  # other folder names as they are


def test_the_maps_have_a_colour_scale_under_them_and_redraw_the_same(runs, monkeypatch):
    import io

    import effscale.cam

    images = dataset_images("synthetic", count=3)
    columns = [map_run(runs["base"], images, label="base"), map_run(runs["res"], images)]
    drawn = []
    for _ in range(2):
        fig = draw_grid(images, columns)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
        drawn.append((fig, buffer.getvalue()))
    fig = drawn[0][0]
    bar = fig.axes[-1]  # the colour bar's axes, after the grid's
    grid = fig.axes[:-1]
    assert len(grid) == 3 * 3 and hasattr(bar, "_colorbar")
    assert "minimum" in bar.get_xlabel() and "maximum" in bar.get_xlabel()
    assert [t.get_text() for t in bar.get_xticklabels()] == ["0.0", "0.5", "1.0"]
    lowest = min(ax.get_position().y0 for ax in grid)
    assert bar.get_position().y1 < lowest  # under the grid, not over a map
    maps = grid[1:3]  # the first row's map cells: as wide as the image's
    assert all(ax.get_position().width == pytest.approx(grid[0].get_position().width)
               for ax in maps)  # fmt: skip
    assert drawn[0][1] == drawn[1][1]  # the same maps draw the same picture
    monkeypatch.setattr(effscale.cam, "SCALE_INCHES", 0.0)  # the grid as drawn without it
    monkeypatch.setattr(effscale.cam, "colour_scale", lambda *args: None)
    bare = draw_grid(images, columns)
    inches = [f.axes[0].get_position().width * f.get_figwidth() for f in (fig, bare)]
    assert inches[0] >= 0.98 * inches[1]  # the images are not shrunk to make room for it
    for f in [bare] + [f for f, _ in drawn]:
        plt.close(f)
