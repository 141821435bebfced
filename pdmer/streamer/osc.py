"""OSC out (python-osc over UDP): one frame of V-A at a time, to one or more receivers, and a heartbeat.

Per frame, under the prefix (default ``/pdmer``; DESIGN.md §8):

    /pdmer/va       f f    valence, arousal in [-1, 1] (the model's output, clipped to that range)
    /pdmer/valence  f      valence in [-1, 1]
    /pdmer/arousal  f      arousal in [-1, 1]
    /pdmer/va01     f f    both mapped onto [0, 1] ((x + 1) / 2): what lighting desks and DAW controls take
    /pdmer/valence01, /pdmer/arousal01  f   each on [0, 1] on its own: one control per address (MIDI/OSC learn)
    /pdmer/frame    f f f  stream time in seconds, valence, arousal: the same frame, time-stamped
and, about once a second, ``/pdmer/status s f i``: state ("running", "silence", "no input" while the input device
is gone, "stopped"), stream time, overruns.

``only`` limits a frame to some of these (by name: ``va``, ``valence01``, ...): a DAW's OSC learn binds the first
address it hears, so it should hear one. The status always goes out.

With ``bundle`` the frame's messages travel as one bundle (timetag "immediately"), so a receiver gets them
together. Sending never blocks and never raises: UDP gives no delivery promise, a receiver that is not listening
makes the kernel report "connection refused" on a later send, and the stream must go on either way. Failed sends
are counted (``send_errors``) for the status line and the stats.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

from pdmer.errors import InputError

DEFAULT_TARGET = "127.0.0.1:9000"
DEFAULT_PREFIX = "/pdmer"
FRAME_ADDRESSES = ("va", "valence", "arousal", "va01", "valence01", "arousal01", "frame")


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    family: int  # socket.AF_INET or AF_INET6
    address: tuple  # what getaddrinfo resolved, for sendto

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_target(text: str) -> Target:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6), resolved now, so that a bad host fails at start, not mid-show."""
    host, separator, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not separator or not host:
        raise InputError(f"OSC target {text!r} must be HOST:PORT, e.g. {DEFAULT_TARGET}")
    try:
        port = int(port_text)
    except ValueError:
        raise InputError(f"OSC target {text!r}: port {port_text!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise InputError(f"OSC target {text!r}: port {port} is outside 1-65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as error:
        raise InputError(f"OSC target {text!r}: cannot resolve host {host!r} ({error.strerror}); give an IP "
                         "address or a name this machine can resolve") from None
    family, _, _, _, address = infos[0]
    return Target(host, port, family, address)


def check_prefix(prefix: str) -> str:
    if not prefix.startswith("/") or prefix.endswith("/") or any(c in prefix for c in " #*,?[]{}"):
        raise InputError(f"OSC prefix {prefix!r} must start with '/', not end with '/', and hold no spaces or "
                         "OSC pattern characters (# * , ? [ ] { })")
    return prefix


class OscOut:
    def __init__(self, targets: list[Target], *, prefix: str = DEFAULT_PREFIX, bundle: bool = False,
                 only: list[str] | None = None):
        if not targets:
            raise InputError("no OSC target: give --osc HOST:PORT")
        unknown = sorted(set(only or ()) - set(FRAME_ADDRESSES))
        if unknown:
            raise InputError(f"unknown OSC address {', '.join(unknown)}: choose from {', '.join(FRAME_ADDRESSES)}")
        self.targets, self.prefix, self.bundle = targets, check_prefix(prefix), bundle
        self.only = set(only) if only else set(FRAME_ADDRESSES)
        self.sockets = {}  # one non-blocking socket per address family
        for family in {target.family for target in targets}:
            self.sockets[family] = socket.socket(family, socket.SOCK_DGRAM)
            self.sockets[family].setblocking(False)
        self.sent = self.send_errors = 0
        self.lock = threading.Lock()  # frames may go out from a pacing thread while the status goes from the main one

    def frame(self, time_s: float, valence: float, arousal: float) -> None:
        """One frame; values are clipped to [-1, 1], the range receivers are told to expect."""
        valence, arousal = clip(valence), clip(arousal)
        p = self.prefix
        messages = {
            "va": [valence, arousal],
            "valence": [valence],
            "arousal": [arousal],
            "va01": [unit(valence), unit(arousal)],
            "valence01": [unit(valence)],
            "arousal01": [unit(arousal)],
            "frame": [time_s, valence, arousal],
        }
        self.send([(f"{p}/{name}", values) for name, values in messages.items() if name in self.only])

    def status(self, state: str, time_s: float, overruns: int) -> None:
        self.send([(f"{self.prefix}/status", [state, float(time_s), int(overruns)])])

    def send(self, messages: list[tuple[str, list]]) -> None:
        from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
        from pythonosc.osc_message_builder import OscMessageBuilder

        built = []
        for address, values in messages:
            builder = OscMessageBuilder(address=address)
            for value in values:
                builder.add_arg(float(value) if isinstance(value, float) else value)
            built.append(builder.build())
        if self.bundle:
            bundle = OscBundleBuilder(IMMEDIATELY)
            for message in built:
                bundle.add_content(message)
            datagrams = [bundle.build().dgram]
        else:
            datagrams = [message.dgram for message in built]
        with self.lock:
            for target in self.targets:
                sock = self.sockets[target.family]
                for datagram in datagrams:
                    try:
                        sock.sendto(datagram, target.address)
                        self.sent += 1
                    except OSError:  # refused (nobody listening), no route, buffer full: count it, carry on
                        self.send_errors += 1

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()


def clip(value: float) -> float:
    return min(1.0, max(-1.0, float(value)))


def unit(value: float) -> float:
    """[-1, 1] -> [0, 1], clipped."""
    return min(1.0, max(0.0, (float(value) + 1.0) / 2.0))
