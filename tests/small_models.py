"""configs/tiny.py at 8 px, for tests of the steps' and the loop's mechanics rather than of a level.

Levels 4 and 8 with self- and cross-attention at 8 px, D reading 8 and 4 px: every layer kind that
16 px has, in steps that compile in ~60 % of the time (`python -m benchmarks.compile_time` at the
suite's -O0, 2-core AMD EPYC: to step 0 in 15.5 s against 25.5 s).
"""

RESOLUTION = 8
D_INPUT_RESOLUTIONS = (4,)
# The same as train.py's command-line overrides.
CLI_ARGS = (f"--config.model.resolution={RESOLUTION}", f"--config.model.d.input_resolutions={D_INPUT_RESOLUTIONS}")

# configs/upsampler_tiny.py chained after the 8 px model: 8 -> 16 px (encoder 8 -> 2 px, decoder
# levels 4, 8, 16), D reading 16 and 8 px.
UPSAMPLER_RESOLUTION = 2 * RESOLUTION
UPSAMPLER_CLI_ARGS = (f"--config.model.resolution={UPSAMPLER_RESOLUTION}",
                      f"--config.model.upsampler.input_resolution={RESOLUTION}",
                      f"--config.model.d.input_resolutions=({RESOLUTION},)")


def at_8px(config):
    """`config` (configs/tiny.py's model) set to 8 px, in place; returns it."""
    config.model.resolution = RESOLUTION
    config.model.d.input_resolutions = D_INPUT_RESOLUTIONS
    return config
