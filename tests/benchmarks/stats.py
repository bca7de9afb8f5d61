"""Figures every benchmark prints the same way."""

from dataclasses import dataclass
from statistics import quantiles


@dataclass(frozen=True)
class Figures:
    name: str
    count: int
    seconds: float
    latencies_ms: list[float]

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    def percentile(self, p: int) -> float:
        return quantiles(self.latencies_ms, n=100, method="inclusive")[p - 1]

    def row(self) -> str:
        return (
            f"| {self.name} | {self.count} | {self.per_second:,.0f}/s "
            f"| {self.percentile(50):.1f} ms | {self.percentile(99):.1f} ms |"
        )


HEADER = "| run | messages | throughput | p50 latency | p99 latency |\n|---|---|---|---|---|"


def ratio_line(subject: Figures, baseline: Figures) -> str:
    throughput = subject.per_second / baseline.per_second
    return (
        f"{subject.name} vs {baseline.name}: throughput x{throughput:.2f}, "
        f"p50 x{subject.percentile(50) / baseline.percentile(50):.1f}, "
        f"p99 x{subject.percentile(99) / baseline.percentile(99):.1f}"
    )


def progress(label: str, done: int, total: int) -> None:
    step = max(total // 10, 1)
    if done % step == 0 or done == total:
        print(f"  {label}: {done}/{total}", flush=True)
