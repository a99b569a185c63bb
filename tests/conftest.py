import os

import pytest
import torch

# One thread: tiny test models run faster single-threaded, and parallel test
# processes (subprocess tests) do not oversubscribe the cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _cost_cache(tmp_path_factory):
    """Tests count into their own cache unless CI gives a persistent one."""
    if "EFFSCALE_CACHE" not in os.environ:
        os.environ["EFFSCALE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
