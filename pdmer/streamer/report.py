"""What ``pdmer-stream`` tells the person running it, on stderr: a status line while it streams, the outage of an
input device, and, when the stream sent no frame, why. A stream is never silent about what it did."""

from __future__ import annotations

import math
import time

import click

PLAIN_STATUS_EVERY = 5.0  # seconds between plain status lines when stderr is a log, a pipe or journald
NO_INPUT = "no input"  # the /status state while the input device is gone


def say(text: str) -> None:
    click.echo(f"pdmer-stream: {text}", err=True)


class StatusLine:
    """On a terminal, one line rewritten in place every hop; elsewhere (a log keeps every line, and a rewritten one
    would fill it with carriage returns) a plain line every ``every`` seconds of wall time. ``every`` 0: none."""

    def __init__(self, every: float, *, live: bool, profile: str):
        self.every, self.live, self.profile = every, live, profile
        self.due = time.monotonic() + every
        self.drawn = False  # a live line is on screen: a note must start on a line of its own

    def frame(self, frame, overruns: int, frames: int, silent: int) -> None:
        va = "  silence     " if frame.silent else f"V {frame.valence:+.2f} A {frame.arousal:+.2f}"
        if self.live:
            click.echo(f"\r{frame.time_s:7.1f} s  {va}  hop {frame.compute_ms:5.1f} ms  overruns {overruns}  "
                       f"profile {self.profile}", nl=False, err=True)
            self.drawn = True
        elif self.is_due():
            say(f"{frame.time_s:.1f} s streamed, {frames} frames sent, {silent} silent; now {va.strip()}, hop "
                f"{frame.compute_ms:.1f} ms, overruns {overruns}")

    def no_input(self, name: str, gone_s: float) -> None:
        if self.is_due():
            say(f"no input for {gone_s:.0f} s: waiting for {name!r} to come back")

    def is_due(self) -> bool:
        now = time.monotonic()
        if self.every <= 0 or now < self.due:
            return False
        self.due = now + self.every
        return True

    def note(self, text: str) -> None:
        """A line that stays (an event, a warning), below the live line if there is one."""
        self.close()
        say(text)

    def close(self) -> None:
        if self.drawn:
            click.echo("", err=True)
            self.drawn = False


class Outage:
    """An input device gone mid-stream: said once on stderr, ``tell(NO_INPUT)`` (OSC, the live view) once a second
    while it lasts, and said again when the device is back."""

    def __init__(self, status: StatusLine, tell):
        self.status, self.tell = status, tell
        self.since: float | None = None  # wall clock at the loss; None: the device is there
        self.told = -math.inf

    def gone(self, reason: str, name: str, prefix: str) -> bool:
        """The device is gone (``reason``); True the first time, when what came before is over."""
        now, first = time.monotonic(), self.since is None
        if first:
            self.since = now
            self.status.note(f"{reason}: sending {prefix}/status \"{NO_INPUT}\" and reopening it (every 0.5 s, "
                             "then up to every 5 s) until it is back; --exit-on-device-loss ends the stream instead")
        elif not self.status.live:  # on a terminal, the note above stays in view
            self.status.no_input(name, now - self.since)
        if now - self.told >= 1.0:
            self.tell(NO_INPUT)
            self.told = now
        return first

    def back(self, name: str) -> bool:
        """True if the device had been gone (and now delivers again)."""
        if self.since is None:
            return False
        self.status.note(f"input device {name!r} is back after {time.monotonic() - self.since:.1f} s: streaming "
                         "again")
        self.since, self.told = None, -math.inf
        return True


def nothing_sent(audio, engine, silent: int, lookahead: int) -> str:
    """Why a stream sent no frame: what the input held, and what to do about it."""
    seconds = (engine.skipped + engine.received) / engine.rate
    raw = hasattr(audio, "bytes_read")
    if raw and audio.bytes_read == 0:
        return ("standard input was empty: pipe raw PCM into it (e.g. parec --format=s16le --channels=1 "
                "--rate=44100 | pdmer-stream --source -), or give --source FILE")
    if engine.skipped + engine.received == 0:
        size = f"{audio.bytes_read} byte" + ("s" if audio.bytes_read > 1 else "")
        return f"{audio.name} held no whole sample ({size}): pipe raw PCM into it"
    bad = getattr(audio, "nonfinite", 0)
    if bad:  # made silence, so the silence below would be the wrong story
        fix = f"is it really {audio.sample_format}? (--format)" if raw else "check the file, or export it again"
        total = engine.skipped + engine.received
        share = f"all {bad}" if bad == total else f"{bad} of the {total}"
        return f"{share} samples of {audio.name} were NaN or infinite (streamed as silence): {fix}"
    if engine.waiting or (engine.step and silent == engine.step):
        return (f"all {seconds:.1f} s of {audio.name} were silence (below {engine.silence_db:.0f} dBFS): check that "
                "the input carries sound (its level, the right device or file)")
    if engine.step == 0:
        return (f"{audio.name} held {engine.received / engine.rate:.2f} s of sound, less than the 0.5 s one frame "
                "needs: give a longer input")
    return (f"the {engine.step} hops heard were fewer than --lookahead {lookahead} needs before its first frame: "
            "give a longer input or a smaller --lookahead")


def status_line(quiet: bool, every: float | None, profile: str) -> StatusLine:
    """--quiet: none; --status-every S: a plain line every S s; else live on a terminal, plain every 5 s elsewhere."""
    if quiet:
        return StatusLine(0.0, live=False, profile=profile)
    if every is not None:
        return StatusLine(every, live=False, profile=profile)
    live = click.get_text_stream("stderr").isatty()
    return StatusLine(0.0 if live else PLAIN_STATUS_EVERY, live=live, profile=profile)


def nonfinite_warning(audio) -> str:
    fix = f": is it really {audio.sample_format}? (--format)" if hasattr(audio, "sample_format") else ""
    return f"warning: {audio.name} holds NaN or infinite samples; they are streamed as silence{fix}"
