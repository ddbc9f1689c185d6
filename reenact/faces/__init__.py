"""Faces in video: 68-point landmark backends, one-face tracking with scene cuts, FFHQ alignment."""
