"""Backbones from other packages arrive through the ``effscale.backbones`` entry points."""

import subprocess
import sys
import textwrap

import pytest

from effscale.zoo import registry


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """A real installed distribution (dist-info with entry_points.txt) on sys.path."""
    pkg = tmp_path / "tinynet_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent("""
        from effscale.spec import BackboneSpec, StageSpec

        def tinynet():
            return BackboneSpec(
                name="tinynet", family="tiny",
                stages=(StageSpec("basic", 1, 16, 1, mid=16),
                        StageSpec("mbconv", 2, 24, 2, expand=4)),
                stem_channels=8, resolution=32)
    """)
    )
    info = tmp_path / "tinynet_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinynet-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[effscale.backbones]\ntinynet = tinynet_plugin:tinynet\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    yield tmp_path
    registry._BACKBONES.pop("tinynet", None)


def test_entry_point_backbone_is_listed_built_and_scaled(plugin_dist):
    from effscale.cost import describe
    from effscale.scaling import make_variant
    from effscale.zoo import build_model

    assert "tinynet" in registry.list_backbones()
    row = describe(make_variant("tinynet", w=2, base_resolution=32))
    assert row["realised_flops_ratio"] > 2.5
    assert build_model(make_variant("tinynet", base_resolution=32), 10)


def test_entry_point_backbone_reaches_the_command_line(plugin_dist):
    out = subprocess.run(
        [sys.executable, "-m", "effscale", "cost", "tinynet", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"model": "tinynet"' in out.stdout
