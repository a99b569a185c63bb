"""Figure 8 matched by measured latency (``effscale compound --match latency``): each
network timed once at batch 1 on the run's device, one thread on a CPU, as Table 4."""

from effscale.latency import measure_latency

LATENCY_REPEATS = 30  # timed passes per network (after 10 untimed ones)


def latency_metric(num_classes: int, device: str = "cpu"):
    """``variant -> median seconds per batch of 1``, each network measured once."""
    measured: dict = {}

    def latency(v) -> float:
        if v not in measured:
            measured[v] = measure_latency(
                v, num_classes=num_classes, device=device, threads=1, repeats=LATENCY_REPEATS
            )["median_s"]
        return measured[v]

    return latency
