"""Cython media kernels (G.711, RTP, jitter buffer, mixer, DTMF, tones) and their Python façades."""
