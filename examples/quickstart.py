"""Quick start: valence and arousal every 0.5 s for an audio file, with the public API.

    python examples/quickstart.py song.mp3 [--imagebind imagebind_huge.pth] [--authors-checkpoint epoch_N.pt]

Without --authors-checkpoint the DSAML weights are untrained (a seeded init): the output shows the shapes and the
pipeline, not emotion. The global feature comes from the embedded musicnn encoder, or ImageBind with --imagebind.
"""

import argparse

import torch

from pdmer.audio import load_audio
from pdmer.metrics import va_scores
from pdmer.model import DSAML
from pdmer.model.encoders import load_global_encoder, model_config_for
from pdmer.model.preprocess import LogMelSlicer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio")
    parser.add_argument("--imagebind", help="imagebind_huge.pth (user-supplied, CC BY-NC-SA 4.0)")
    parser.add_argument("--authors-checkpoint", help="a checkpoint written by the authors' training code")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()

    waveform, sample_rate = load_audio(args.audio)
    waveform = waveform[: int(args.seconds * sample_rate)]

    if args.imagebind:
        encoder = load_global_encoder("imagebind", imagebind_checkpoint=args.imagebind)
    else:
        encoder = load_global_encoder("musicnn")
    if args.authors_checkpoint:
        from pdmer.model.authors import load_authors_checkpoint

        model = load_authors_checkpoint(args.authors_checkpoint)  # trained on ImageBind: pass --imagebind too
    else:
        torch.manual_seed(0)
        model = DSAML(model_config_for(encoder)).eval()  # global_dim follows the encoder

    with torch.no_grad():
        mel = LogMelSlicer()(waveform, sample_rate)[None]  # (1, T, 51, 128)
        global_feat = encoder.embed(waveform, sample_rate)[None]  # (1, encoder.dim)
        out = model(mel, global_feat)

    for step, (valence, arousal) in enumerate(out.va[0].tolist()):
        print(f"{step * 0.5:5.1f} s  valence {valence:+.3f}  arousal {arousal:+.3f}")
    # How strongly each pass attends to the step itself (the diagonal the attention loss shapes):
    print(f"mean self-attention: local {out.attn_local.diagonal(dim1=-2, dim2=-1).mean():.3f}, "
          f"global {out.attn_global.diagonal(dim1=-2, dim2=-1).mean():.3f}")
    # Scoring against a curve works the same way; here the prediction against itself shifted by one step:
    shifted = torch.roll(out.va, 1, dims=1)
    print({name: round(value.item(), 3) for name, value in va_scores(out.va, shifted).items()})


if __name__ == "__main__":
    main()
