"""A web page for a trained model: type a prompt, move the truncation and seed sliders, see the image.

    python -m gigagan_jax.demo --model models/demo [--upsampler models/up256] [--port 7860] [--host 0.0.0.0]
    gigagan-demo ...   (the same, installed with the package; needs the `demo` extra: gradio)

The model is an exported folder (`python -m gigagan_jax.export`) or a training workdir. Every change
of the prompt or a slider draws one image (the newest request wins, so typing never queues stale
work); a second panel lays an interpolation strip between two (prompt, seed) pairs. Images are
shown at least 256 px wide by pixel repetition (gigagan_jax.demo_page), so a 32 px demo model is
visible as it is.
"""

from __future__ import annotations

import os
import signal

from absl import flags

from gigagan_jax.cli import check_folder_flag, fail, quiet_libraries, run_command

_MODEL = flags.DEFINE_string("model", None, "Exported model folder or training workdir to serve.")
_UPSAMPLER = flags.DEFINE_string("upsampler", None, "An upsampler (export or workdir) chained after the model.")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (0.0.0.0: every interface).")
_PORT = flags.DEFINE_integer("port", 7860, "Port to listen on.", lower_bound=1, upper_bound=65535)
_PROMPT = flags.DEFINE_string("prompt", "a red ring in the center on a black background", "The page's first prompt.")


def main(argv):
    del argv
    if not _MODEL.value:
        fail("--model is required: an exported model folder or a training workdir")
    check_folder_flag("--model", _MODEL.value)
    if not os.path.isdir(_MODEL.value):
        fail(f"--model {_MODEL.value} does not exist")
    try:
        import gradio  # noqa: F401  (checked before the model is loaded)
    except ImportError:
        fail("the web demo needs gradio: pip install -e \".[demo]\"")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine
    quiet_libraries()
    from gigagan_jax.checkpoint import CheckpointError
    from gigagan_jax.demo_page import build_app
    from gigagan_jax.generate.pipeline import GigaGANPipeline

    try:
        pipe = GigaGANPipeline.from_pretrained(_MODEL.value, upsampler=_UPSAMPLER.value)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        fail(str(e), code=1)
    pipe.sample(prompts=[_PROMPT.value] if pipe.base.generator.spec.text_conditioned else None,
                class_ids=None if pipe.base.generator.spec.text_conditioned else [0])  # compile before serving
    print(f"serving step {pipe.base.step} of {_MODEL.value} on http://{_HOST.value}:{_PORT.value}", flush=True)
    # A terminate (SIGTERM) closes the server as Ctrl-C does, so the exit handlers run and the page's
    # image folder is removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    build_app(pipe, _PROMPT.value).launch(server_name=_HOST.value, server_port=_PORT.value, share=False,
                                          show_error=True)


def run() -> None:
    """Console entry point `gigagan-demo` (and `python -m gigagan_jax.demo`)."""
    run_command(main, __doc__)


if __name__ == "__main__":
    run()
