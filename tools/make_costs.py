"""Count the registered backbones at their native resolution (1000 classes) and write the
table effscale ships, effscale/reference/costs.json (effscale.cost.shipped_costs), so that
`effscale models` answers without tracing B7 at 600 px on a fresh machine.

    EFFSCALE_SHIPPED_COSTS=0 python tools/make_costs.py

tests/test_cost.py checks every shipped entry against the frozen table and fresh counts.
"""

import json
import os
from pathlib import Path

from effscale.cost import cost_key, count_cost
from effscale.scaling import make_variant
from effscale.zoo import list_backbones

OUT = Path(__file__).resolve().parent.parent / "effscale" / "reference" / "costs.json"


def main() -> None:
    assert os.environ.get("EFFSCALE_SHIPPED_COSTS") == "0", "set EFFSCALE_SHIPPED_COSTS=0"
    table = {}
    for name in list_backbones():
        variant = make_variant(name)
        table[cost_key(variant, 1000)] = count_cost(variant, 1000, cache=False).to_dict()
        print(name, table[cost_key(variant, 1000)])
    OUT.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
