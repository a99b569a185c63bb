import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True, scope="session")
def _cost_cache(tmp_path_factory):
    """Tests count into their own cache unless CI gives a persistent one."""
    if "EFFSCALE_CACHE" not in os.environ:
        os.environ["EFFSCALE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
