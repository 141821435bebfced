"""What happens to the model's frames on their way out: optional smoothing, and optional interpolation to a higher
output rate for lighting (a desk fading between two values every 0.5 s looks like steps). ``hop_s`` is the time
between frames: 0.5 s, or less with ``pdmer-stream --hop``.

Both work in stream time, so ``--fast`` and a live input send the same values; only the pacing differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pdmer.data.curves import STEP_SECONDS
from pdmer.errors import InputError

MAX_OUTPUT_RATE = 200.0  # Hz: beyond what lighting protocols refresh (DMX runs at most ~44 Hz)


@dataclass
class Point:
    time_s: float  # stream time the values describe
    valence: float
    arousal: float


class Smoother:
    """Exponential smoothing with time constant ``seconds`` (0: off). After silence it restarts from the next frame,
    so that music after a pause does not fade in from the music before it."""

    def __init__(self, seconds: float, hop_s: float = STEP_SECONDS):
        if not seconds >= 0 or math.isinf(seconds):
            raise InputError(f"--smooth must be a time constant >= 0 seconds, got {seconds}")
        self.keep = math.exp(-hop_s / seconds) if seconds > 0 else 0.0  # weight of the past per frame
        self.last: Point | None = None

    def __call__(self, point: Point) -> Point:
        if self.last is not None and self.keep > 0:
            point = Point(point.time_s, self.keep * self.last.valence + (1 - self.keep) * point.valence,
                          self.keep * self.last.arousal + (1 - self.keep) * point.arousal)
        self.last = point
        return point

    def reset(self) -> None:
        self.last = None


class Interpolator:
    """Turns frames every ``hop_s`` into ``rate`` Hz points by linear interpolation from the previous frame to the
    new one. A frame can only be approached once it exists, so the interpolated output runs one hop behind the
    frames: the points between frames n-1 and n go out during the hop after frame n arrives, the last one equal to
    frame n. ``rate`` is rounded to a whole number of points per hop (25 Hz gives 12 per 0.5 s hop, 24 Hz); 0 (or
    the frame rate) sends the frames as they are."""

    def __init__(self, rate: float, hop_s: float = STEP_SECONDS):
        if not 0 <= rate <= MAX_OUTPUT_RATE:
            raise InputError(f"--out-rate must be 0 (off) or up to {MAX_OUTPUT_RATE:.0f} Hz, got {rate}")
        self.hop_s = hop_s
        self.per_hop = max(1, round(rate * hop_s)) if rate else 1  # points per hop
        self.last: Point | None = None

    @property
    def interval_s(self) -> float:
        return self.hop_s / self.per_hop

    def __call__(self, point: Point) -> list[Point]:
        last, self.last = self.last, point
        if last is None or self.per_hop == 1 or point.time_s - last.time_s > self.hop_s + 1e-9:
            return [point]  # the first frame, or the first after silence: nothing to come from
        points = []
        for k in range(1, self.per_hop + 1):
            w = k / self.per_hop
            points.append(Point(last.time_s + w * (point.time_s - last.time_s),
                                last.valence + w * (point.valence - last.valence),
                                last.arousal + w * (point.arousal - last.arousal)))
        return points


class Pacer:
    """Sends points ``interval_s`` apart in wall time on its own thread, so that interpolated output is even
    whatever block size the audio arrives in. It falls back to sending at once when it is more than a hop behind
    (a slow machine), rather than letting a backlog grow."""

    def __init__(self, send, interval_s: float, hop_s: float = STEP_SECONDS):
        import queue
        import threading

        self.send, self.interval_s, self.hop_s = send, interval_s, hop_s
        self.points: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self.run, name="pdmer-pacer", daemon=True)
        self.thread.start()

    def put(self, points: list[Point]) -> None:
        for point in points:
            self.points.put(point)

    def run(self) -> None:
        import time

        due = None
        while (point := self.points.get()) is not None:
            now = time.monotonic()
            if due is None or due < now - self.hop_s:
                due = now
            if due > now:
                time.sleep(due - now)
            self.send(point)
            due += self.interval_s

    def close(self) -> None:
        """Sends what is queued (at most about a hop), then stops."""
        self.points.put(None)
        self.thread.join(timeout=2 * self.hop_s + 1)


class Shaper:
    """The way out for frames: smoothing, interpolation and, for a live stream, pacing, in front of ``send``."""

    def __init__(self, send, *, smooth: float = 0.0, out_rate: float = 0.0, paced: bool = True,
                 hop_s: float = STEP_SECONDS):
        self.smoother, self.interpolator = Smoother(smooth, hop_s), Interpolator(out_rate, hop_s)
        self.send = send
        paced = paced and self.interpolator.per_hop > 1
        self.pacer = Pacer(send, self.interpolator.interval_s, hop_s) if paced else None

    def frame(self, time_s: float, valence: float, arousal: float) -> None:
        points = self.interpolator(self.smoother(Point(time_s, valence, arousal)))
        if self.pacer:
            self.pacer.put(points)
        else:
            for point in points:
                self.send(point)

    def silence(self) -> None:
        """Music stopped: what comes after it neither fades from nor ramps across what came before."""
        self.smoother.reset()
        self.interpolator.last = None

    def close(self) -> None:
        if self.pacer:
            self.pacer.close()
