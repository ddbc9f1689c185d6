"""The stages of a run, each a unit over ranges of frames (`base.Stage`), run by `base.run_stage`.

- `align`: faces detected by parts, then one face followed and its FFHQ crop smoothed over the clip;
- `crops`: the aligned crops of a clip, read for inversion and tuning;
- `invert`: W+ pivots of every frame with a face, one warm-started part per run of frames;
- `tune`: ONE pivotal-tuning pass of the generator over the clip (one part, checkpointed);
- `render`: latents rendered to crops by parts;
- `output`: the rendered crops pasted back and encoded: the output file (not a workspace entry).
"""
