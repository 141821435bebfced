"""Receive pdmer-stream's OSC in Python: print each frame, and plot what arrived when the stream stops.

    python examples/osc_receiver.py [--port 9000] [--prefix /pdmer] [--plot received.png]
    pdmer-stream --osc 127.0.0.1:9000        # in another terminal (or ./run.sh)

Each /pdmer/frame (stream time, valence, arousal) prints one line; /pdmer/status says whether the music plays. With
--plot, the received curve is drawn as a PNG when the stream sends "stopped" or on Ctrl-C. With --until-stopped
it exits when the stream stops (as the test does). Only python-osc (a pdmer dependency) and matplotlib are used.
"""

from __future__ import annotations

import argparse
import sys

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--prefix", default="/pdmer", help="pdmer-stream's --osc-prefix")
    parser.add_argument("--plot", help="write the received curve to this PNG at the end")
    parser.add_argument("--until-stopped", action="store_true", help="exit when the stream sends status stopped")
    args = parser.parse_args()

    frames: list[tuple[float, float, float]] = []  # (stream time s, valence, arousal), both in [-1, 1]
    stopped = []

    def on_frame(address: str, time_s: float, valence: float, arousal: float) -> None:
        frames.append((time_s, valence, arousal))
        print(f"{time_s:8.2f} s  valence {valence:+.4f}  arousal {arousal:+.4f}", flush=True)

    def on_status(address: str, state: str, time_s: float, overruns: int) -> None:
        if state != "running":  # "silence", "no input" or "stopped": worth a line; "running" comes every second
            print(f"{time_s:8.2f} s  status {state}", flush=True)
        if state == "stopped":
            stopped.append(time_s)

    dispatcher = Dispatcher()
    dispatcher.map(f"{args.prefix}/frame", on_frame)
    dispatcher.map(f"{args.prefix}/status", on_status)
    server = BlockingOSCUDPServer((args.host, args.port), dispatcher)
    server.timeout = 0.5
    print(f"listening on {args.host}:{args.port} for {args.prefix}/frame and {args.prefix}/status", flush=True)
    try:
        while not (args.until_stopped and stopped):
            server.handle_request()  # one message, or nothing for server.timeout seconds
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print(f"received {len(frames)} frames", flush=True)
    if args.plot and frames:
        plot(frames, args.plot)
        print(f"wrote {args.plot}", flush=True)


def plot(frames, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    times, valence, arousal = zip(*frames)
    figure, axes = pyplot.subplots(figsize=(9, 4))
    axes.plot(times, valence, label="valence", color="tab:blue")
    axes.plot(times, arousal, label="arousal", color="tab:red")
    axes.set_ylim(-1.05, 1.05)
    axes.set_xlabel("stream time (s)")
    axes.set_ylabel("value (-1 .. 1)")
    axes.set_title("pdmer-stream over OSC, as received")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
