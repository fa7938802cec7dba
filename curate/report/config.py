"""The report's configuration, kept free of heavy imports so that `curate --help` stays fast."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReportConfig:
    """What `curate report` shows; written beside the page as report_config.json."""

    db: str
    out: str
    run: str | None = None
    student: str | None = None  # its latest finished run, when no run is given
    selections: tuple[str, ...] = ()  # none given: every selection of the run
    questions: int = 5  # viewer: questions per data set
    samples: int = 10  # viewer: samples per question with token detail
    seed: int = 0
    model: str | None = None  # viewer: model folder when the run's student cannot be loaded here
    device: str = "cpu"
    rule: str = "quantile"  # curate.analysis.DEFAULT_RULE

    def __post_init__(self) -> None:
        for name in ("questions", "samples"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name} must be at least 0, got {getattr(self, name)}")
