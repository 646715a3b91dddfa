"""One sink for metrics (JSON lines) and progress with an ETA.

The library never prints: training loops call a `Reporter`, and the experiment binary
decides where the text goes (absl logging by default).
"""

import dataclasses
import json
import math
import pathlib
import time
from typing import Callable, Optional


class MetricSink:
  """Appends one JSON object per line to `<workdir>/metrics.jsonl`."""

  def __init__(self, path: Optional[pathlib.Path]):
    self.path = pathlib.Path(path) if path else None
    if self.path:
      self.path.parent.mkdir(parents=True, exist_ok=True)

  def write(self, **record) -> None:
    if not self.path:
      return
    record.setdefault("time", time.time())
    with self.path.open("a") as f:
      f.write(json.dumps(record, default=_json_default) + "\n")


def _json_default(x):
  try:
    return float(x)
  except (TypeError, ValueError):
    return str(x)


@dataclasses.dataclass
class Progress:
  """Counts steps of a long loop and formats `stage: i/n (x steps/s, ETA m:ss)` lines."""
  stage: str
  total: int
  log: Callable[[str], None]
  every_seconds: float = 10.0

  def __post_init__(self):
    self._t0 = time.time()
    self._first = None
    self._last = -math.inf

  def update(self, step: int, extra: str = "", force: bool = False) -> None:
    now = time.time()
    if self._first is None:  # the first step includes compilation: time from its end
      self._first, self._t0 = step, now
    if not force and now - self._last < self.every_seconds and step < self.total:
      return
    self._last = now
    done = max(step - self._first, 0)
    rate = done / max(now - self._t0, 1e-9)
    left = (self.total - step) / rate if rate > 0 else float("nan")
    eta = "?" if math.isnan(left) else f"{int(left // 60)}:{int(left % 60):02d}"
    self.log(f"{self.stage}: {step}/{self.total} ({rate:.1f} steps/s, ETA {eta})"
             + (f" {extra}" if extra else ""))
