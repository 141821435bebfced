"""Live audio in, personalized valence/arousal out over OSC: ``engine`` (hops, caches, global refresh), ``osc``
(python-osc out), ``sources`` (a file so far; input devices next), ``cli`` (pdmer-stream)."""
