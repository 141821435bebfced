"""The ``pdmer-stream`` command (the live stream is not implemented yet)."""

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--profile", help="Listener profile to stream for.")
def main(profile: str | None) -> None:
    """Stream valence/arousal of live audio over OSC. Not implemented yet."""
    click.echo("pdmer-stream: not implemented yet; `pdmer demo` runs the model on a clip meanwhile.", err=True)
    raise SystemExit(2)
