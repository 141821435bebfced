"""The live view of ``pdmer-stream --view``: a local web page with the point on the valence-arousal plane, the last
60 s as line charts, the profile, the input level and the per-hop compute, pushed over a WebSocket. The page ships
inside the package (``page/``: plain HTML, CSS and canvas drawing, no CDN), so it works with no internet."""
