"""The ``pdmer-stream`` command: audio in (an input device, or a file), V-A frames out over OSC, a live status
line, statistics at exit. Ctrl-C and SIGTERM end it cleanly (a last "stopped" status, the stats written)."""

from __future__ import annotations

import json
import math
import signal
import sys
import time

import click

DEFAULT_TARGET = "127.0.0.1:9000"  # pdmer.streamer.osc.DEFAULT_TARGET


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "model_path", type=click.Path(dir_okay=False),
              help="A .onnx export or .safetensors checkpoint (the base model; default: the embedded one).")
@click.option("--profile", "profile_name", help="Listener profile to stream for (default: the base model).")
@click.option("--source", type=click.Path(dir_okay=False, allow_dash=True),
              help="Play this audio file into the stream instead of a device (real-time pace; --fast: no pacing); "
                   "'-' reads raw PCM from standard input (--rate, --channels, --format).")
@click.option("--fast", is_flag=True, help="With --source FILE: no real-time pacing (tests, batch use).")
@click.option("--device", help="Input device name or index (default: the system's default input; without one, a "
              "bundled music excerpt, looped).")
@click.option("--rate", type=click.IntRange(min=1), help="Device sample rate (default: the device's own); raw PCM's "
              "rate (default 44100).")
@click.option("--channels", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Raw PCM: interleaved channels (downmixed to mono).")
@click.option("--format", "sample_format", type=click.Choice(["s16le", "s32le", "f32le"]), default="s16le",
              show_default=True, help="Raw PCM: sample format.")
@click.option("--list-devices", is_flag=True, help="List the input devices and exit.")
@click.option("--start-at-sound/--no-start-at-sound", default=True, show_default=True,
              help="Start the stream's clock at the first sound above -60 dBFS.")
@click.option("--osc", "targets", multiple=True, default=[DEFAULT_TARGET], show_default=True,
              help="HOST:PORT to send OSC to (repeatable).")
@click.option("--osc-prefix", default="/pdmer", show_default=True, help="Address prefix of every message.")
@click.option("--only", help="Send only these of each frame's addresses, comma-separated (e.g. valence01): for a "
              "DAW's OSC learn, which binds the first address it hears. Default: all.")
@click.option("--bundle", is_flag=True, help="Send each frame's messages as one OSC bundle.")
@click.option("--lookahead", type=click.IntRange(0, 59), default=0, show_default=True,
              help="Emit the step this many hops back (more context, lookahead x 0.5 s later).")
@click.option("--smooth", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Smooth the values with this time constant in seconds (0: off).")
@click.option("--out-rate", type=click.FloatRange(0, 200), default=0.0, show_default=True,
              help="Send values at this rate in Hz, interpolated between frames (0: the frames' 2 Hz); the "
                   "interpolated output runs one hop (0.5 s) behind.")
@click.option("--hop", type=click.Choice(["0.1", "0.25", "0.5"]), default="0.5", show_default=True,
              help="Seconds between frames. Under 0.5: 0.5 s slices on interleaved grids, each frame from the newest "
                   "complete slice, so changes reach OSC sooner, for 0.5/hop times the model's compute.")
@click.option("--global-every", type=click.FloatRange(0.5, 30), help="Refresh the global (30 s) vector every this "
              "many seconds, a multiple of 0.5 (default: the model's training period, 3 s for the default model); "
              "for musicnn's 3 s patches, a multiple of 3.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPU threads for each hop's model call. One costs the least CPU per second of audio; two shorten "
                   "each hop a little on a busy machine.")
@click.option("--view", "view_address", is_flag=False, flag_value="127.0.0.1:8765", metavar="[HOST:PORT]",
              help="Serve a live view (a web page) on HOST:PORT (default 127.0.0.1:8765); open it in a browser.")
@click.option("--stats-json", type=click.Path(dir_okay=False), help="Write the run's statistics here at exit.")
@click.option("--quiet", is_flag=True, help="No status line.")
@click.option("--status-every", type=click.FloatRange(min=0), metavar="S",
              help="A plain status line every S seconds (0: none). Default: on a terminal, a line rewritten every "
                   "hop; otherwise (a log, a pipe) a plain line every 5 s.")
@click.option("--exit-on-device-loss", is_flag=True,
              help="End the stream (exit code 2) when the input device goes away, instead of sending /status \"no "
                   "input\" and reopening it until it is back (for scripts with a supervisor that restarts them).")
def main(list_devices, **options) -> None:
    """Stream valence and arousal of audio over OSC, twice a second, as one listener hears it.

    Messages (prefix /pdmer): /va f f, /valence f, /arousal f, /va01 f f and /valence01 f, /arousal01 f (mapped
    to 0..1), /frame f f f (stream time, valence, arousal) per 0.5 s frame (or per --out-rate point), and
    /status s f i (state, stream time, overruns) every second. --view serves a live page of the same values. An
    input device that goes away mid-stream (unplugged, its sound server restarted) does not end the stream: the
    state is "no input" while it is gone, and the stream reopens it (every 0.5 s, then up to every 5 s) and goes on
    when it is back; --exit-on-device-loss ends it instead (exit code 2, the statistics still written).

    Exit codes: 0 when the stream ends (end of the source, SIGTERM) having sent frames; 1 when the source ended
    before any frame could be sent (empty, silent, too short: the reason is printed); 2 for bad input or options
    (compressed audio piped into --source -, a file that is not audio, a device lost with --exit-on-device-loss);
    130 on Ctrl-C."""
    from pdmer.cli_common import user_errors

    if list_devices:
        from pdmer.streamer.sources import list_devices as devices

        lines = user_errors(devices, "pdmer-stream")()
        for line in lines:
            click.echo(line)
        if not lines:  # an empty list would look like a hung or broken command
            click.echo("pdmer-stream: PortAudio sees no input device: check that the sound server runs (pactl info "
                       "for PulseAudio, arecord -l for ALSA), that PULSE_SERVER, if set, names a running server, "
                       "and that this user may open the sound devices (the audio group)", err=True)
            sys.exit(1)
        return
    if options["fast"] and not (options["source"] and options["source"] != "-"):
        raise click.UsageError("--fast needs --source FILE")
    every = options["global_every"]
    if every is not None and abs(every * 2 - round(every * 2)) > 1e-9:
        raise click.BadParameter(f"{every} s is not a multiple of the 0.5 s hop", param_hint="--global-every")
    user_errors(run, "pdmer-stream")(**options)


def open_source(source, fast, device, rate, channels, sample_format, reconnect=True):
    """(the audio source, a note for the user or None). Without --source or --device, a machine whose default input
    cannot be opened streams the bundled music excerpt, looped, so that the main command always shows the stream.
    ``reconnect``: a device that goes away mid-stream is reopened (at start, one that cannot open is an error)."""
    from pdmer.streamer.sources import DeviceSource, FileSource, NoInputDevice, StdinSource

    if source == "-":
        return StdinSource(rate or 44100, channels=channels, sample_format=sample_format), None
    if source:
        return FileSource(source, fast=fast), None
    try:
        return DeviceSource(int(device) if device and device.isdigit() else device, rate=rate,
                            reconnect=reconnect), None
    except NoInputDevice as error:
        if device is not None or rate is not None:  # the user asked for this device: say why it failed
            raise
        from pdmer.defaults import EXCERPT_CREDIT, MUSIC_EXCERPT

        return FileSource(MUSIC_EXCERPT, loop=True), (
            f"no input device ({error}); streaming a bundled excerpt instead, looped: {EXCERPT_CREDIT} "
            f"({MUSIC_EXCERPT.parent / 'ATTRIBUTION.md'})")


def claim_outputs(view_address, stats_json):
    """Refuse at once what would otherwise fail late: a --stats-json path that cannot be written (at exit, after the
    whole stream) or a busy --view port (after the model loads). Returns the view's bound socket, or None."""
    from pdmer.fileio import check_output

    check_output(stats_json, "--stats-json")
    if not view_address:
        return None
    from pdmer.view.server import bind_view

    return bind_view(view_address)


def run(model_path, profile_name, source, fast, device, rate, channels, sample_format, start_at_sound, targets,
        osc_prefix, only, bundle, lookahead, smooth, out_rate, hop, global_every, threads, view_address, stats_json,
        quiet, status_every, exit_on_device_loss) -> None:
    view_socket = claim_outputs(view_address, stats_json)  # before the imports and the model: seconds
    import numpy as np

    from pdmer.errors import PdmerError
    from pdmer.export.predict import load_deployed, use_threads
    from pdmer.fileio import atomic_path
    from pdmer.streamer.engine import Engine
    from pdmer.streamer.osc import OscOut, parse_target
    from pdmer.streamer.report import Outage, nonfinite_warning, nothing_sent, say, status_line
    from pdmer.streamer.shaping import Shaper

    out = OscOut([parse_target(t) for t in targets], prefix=osc_prefix, bundle=bundle,  # bad targets: fail first
                 only=[name.strip() for name in only.split(",") if name.strip()] if only else None)
    view = None

    def send(point) -> None:  # each shaped value: OSC, and the live view when there is one
        out.frame(point.time_s, point.valence, point.arousal)
        if view is not None:
            view.point(point.time_s, point.valence, point.arousal)

    hop = float(hop)
    shaper = Shaper(send, smooth=smooth, out_rate=out_rate, paced=not fast, hop_s=hop)
    # The encoder refreshes on one thread, between the hops: the hop path keeps the other core to itself.
    use_threads(threads)
    deployed = load_deployed(model_path, profile=profile_name, threads=threads, encoder_threads=1)
    audio, note = open_source(source, fast, device, rate, channels, sample_format,
                              reconnect=not exit_on_device_loss)
    if note:
        click.echo(f"pdmer-stream: {note}", err=True)
    if view_address:
        from pdmer.view.server import LiveView

        view = LiveView(view_address, profile=deployed.profile, model=deployed.name, source=audio.name,
                        osc=[str(t) for t in out.targets], sock=view_socket)
        click.echo(f"pdmer-stream: live view at {view.url}", err=True)
    engine = Engine(deployed, audio.rate, lookahead=lookahead, start_at_sound=start_at_sound, hop=hop,
                    global_every=None if global_every is None else round(global_every * 2))
    click.echo(f"pdmer-stream: {audio.name} at {audio.rate} Hz -> OSC {', '.join(map(str, out.targets))} "
               f"({osc_prefix}), profile {deployed.profile}", err=True)
    status = status_line(quiet, status_every, deployed.profile)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append("SIGTERM"))
    compute, frames, silent, last_status, failure = [], 0, 0, -1.0, None
    cpu_from = None  # (process CPU time, stream time) at the first frame: start-up is not the stream's running cost

    def tell(state: str, time_s: float) -> None:  # the stream's state, to every receiver
        out.status(state, time_s, audio.overruns)
        if view is not None:
            view.status(state)

    outage, warned = Outage(status, lambda state: tell(state, engine.processed_s)), False
    try:
        for chunk in audio.chunks(lambda: bool(stopping)):
            if getattr(audio, "lost", None):  # the input device is gone: no audio until it is back
                if outage.gone(audio.lost, audio.name, osc_prefix):
                    shaper.silence()  # what comes after the gap neither fades from nor ramps across what came before
                continue
            if outage.back(audio.name):
                last_status = -math.inf  # "running" again with the next frame
            if not warned and getattr(audio, "nonfinite", 0):
                warned = True
                status.note(nonfinite_warning(audio))
            for frame in engine.push(chunk):
                if cpu_from is None:
                    cpu_from = (time.process_time(), engine.processed_s)
                compute.append(frame.compute_ms)
                if view is not None:
                    view.hop(frame.time_s, frame.level_db, frame.compute_ms, frame.silent)
                if frame.silent:
                    silent += 1
                    shaper.silence()
                else:
                    frames += 1
                    shaper.frame(frame.time_s, frame.valence, frame.arousal)
                if frame.time_s - last_status >= 1.0:
                    tell("silence" if frame.silent else "running", frame.time_s)
                    last_status = frame.time_s
                status.frame(frame, audio.overruns, frames, silent)
    except KeyboardInterrupt:
        stopping.append("SIGINT")
    except PdmerError as error:  # the source failed mid-stream: end cleanly, say why, keep the statistics
        failure = error
        stopping.append(f"error: {error}")
    finally:
        engine.close()
        shaper.close()
        out.status("stopped", engine.processed_s, audio.overruns)
        out.close()
        if view is not None:
            view.status("stopped")
            view.close()
    status.close()
    streamed_s = engine.processed_s - cpu_from[1] if cpu_from else 0.0
    stats = {
        "source": audio.name, "rate": audio.rate, "profile": deployed.profile, "model": deployed.name,
        "hop_s": engine.hop_s, "steps": engine.step,
        "frames_sent": frames, "osc_messages_sent": out.sent, "silent_steps": silent, "osc_send_errors": out.send_errors,
        "overruns": audio.overruns, "skipped_before_sound_s": engine.skipped / audio.rate,
        "stopped_by": stopping[0] if stopping else "end of source",
        # The first hop waits for the first global vector (a one-off start-up cost): it is reported on its own.
        "first_hop_ms": compute[0] if compute else math.nan,
        "hop_compute_ms": {name: float(np.percentile(compute[1:], q)) if compute[1:] else math.nan
                           for name, q in (("median", 50), ("p90", 90), ("p99", 99), ("max", 100))},
        # Process CPU (every thread: hops, global refreshes, I/O) per second of audio after the first frame.
        "cpu_per_audio_s": (time.process_time() - cpu_from[0]) / streamed_s if streamed_s > 0 else math.nan,
    }
    if view is not None:
        stats["view_messages_dropped"] = view.dropped  # a page that could not keep up
    if hasattr(audio, "losses"):
        stats["device_losses"], stats["no_input_s"] = audio.losses, audio.lost_s
    why = nothing_sent(audio, engine, silent, lookahead) if frames == 0 and failure is None else None
    if why:
        stats["nothing_sent"] = why
    if stats_json:
        with atomic_path(stats_json) as temporary:
            temporary.write_text(json.dumps(stats, indent=1) + "\n")
    if failure is not None:
        raise failure
    if why:
        say(f"no frame sent: {why}")
    if stopping and stopping[0] == "SIGINT":
        sys.exit(130)
    if why and not stopping:  # the source ended without one usable frame: a script must not take that for success
        sys.exit(1)
