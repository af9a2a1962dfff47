"""The demo's web page (Gradio Blocks) around a GigaGANPipeline, and the image files it serves.

No flags here (`python -m gigagan_jax.demo` owns them), so the page can be built inside any process:
a test, a notebook, another app.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import os
import shutil
import tempfile

import numpy as np

from gigagan_jax.workdir import write_bytes

DISPLAY_PX = 256
MAX_SEED_SLIDER = 9999


def for_display(images: np.ndarray) -> np.ndarray:
    """uint8 [N, R, R, 3] -> [N, S, S, 3], S the first multiple of R >= DISPLAY_PX (pixel repetition)."""
    from gigagan_jax.generate.grid import nearest_resize

    return np.asarray(nearest_resize(images, -(-DISPLAY_PX // images.shape[1]) * images.shape[1]))


class ServedImages:
    """The page's images as PNG files named by their content, each written once and never rewritten.

    Gradio saves a returned array by truncating and refilling a content-named file, so drawing an image
    again (the same prompt and seed, or typing back to an earlier prompt) rewrote a file the browser
    could be reading, which then arrived empty. Here a new image is written beside its name and renamed
    into place; an image already on disk is served as it is.
    """

    def __init__(self, folder: str):
        self.folder = folder

    def save(self, image: np.ndarray) -> str:
        """uint8 [H, W, 3] -> the path of its PNG file."""
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="png")
        data = buffer.getvalue()
        path = os.path.join(self.folder, hashlib.sha256(data).hexdigest() + ".png")
        if not os.path.exists(path):
            write_bytes(path, data)
        return path


def build_app(pipe, first_prompt: str, images: ServedImages | None = None):
    """The Gradio page around `pipe` (a GigaGANPipeline); its images are written into `images`' folder
    (by default a temporary one removed at exit)."""
    import gradio as gr

    from gigagan_jax.generate.grid import make_grid

    if images is None:
        folder = tempfile.mkdtemp(prefix="gigagan-demo-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        images = ServedImages(folder)
    spec = pipe.base.generator.spec
    text = spec.text_conditioned

    def draw(condition, truncation, seed):
        kwargs = {"prompts": [condition]} if text else {"class_ids": [int(condition)]}
        return images.save(for_display(pipe.sample(seeds=[int(seed)], truncation=float(truncation), **kwargs))[0])

    def strip(prompt_a, prompt_b, seed_a, seed_b, frames):
        frames = np.stack([np.asarray(im) for im in pipe.interpolate(prompt_a, prompt_b, int(seed_a), int(seed_b),
                                                                     int(frames))])
        return images.save(make_grid(for_display(frames), rows=1))

    with gr.Blocks(title="GigaGAN") as app:
        gr.Markdown(f"## GigaGAN: {pipe.resolution} px, {spec.conditioning}-conditioned")
        if text:
            condition = gr.Textbox(value=first_prompt, label="Prompt", elem_id="prompt")
        else:
            condition = gr.Slider(0, spec.num_classes - 1, value=0, step=1, label="Class", elem_id="class_id")
        with gr.Row():
            truncation = gr.Slider(0.0, 1.5, value=1.0, step=0.05, label="Truncation ψ (1 = none)",
                                   elem_id="truncation", interactive=text)
            seed = gr.Slider(0, MAX_SEED_SLIDER, value=0, step=1, label="Seed", elem_id="seed")
        image = gr.Image(label="Sample", elem_id="sample", type="filepath", interactive=False)
        inputs = [condition, truncation, seed]
        for control in inputs:
            control.change(draw, inputs, image, trigger_mode="always_last")
        app.load(draw, inputs, image)
        if text:
            gr.Markdown("### Interpolation: (prompt A, seed A) → (prompt B, seed B) in w and text space")
            with gr.Row():
                prompt_a = gr.Textbox(value=first_prompt, label="Prompt A", elem_id="prompt_a")
                prompt_b = gr.Textbox(value="a blue cross in the center on a white background", label="Prompt B",
                                      elem_id="prompt_b")
            with gr.Row():
                seed_a = gr.Slider(0, MAX_SEED_SLIDER, value=0, step=1, label="Seed A")
                seed_b = gr.Slider(0, MAX_SEED_SLIDER, value=1, step=1, label="Seed B")
                frames = gr.Slider(2, 16, value=8, step=1, label="Frames")
            run_strip = gr.Button("Interpolate", elem_id="interpolate")
            strip_image = gr.Image(label="Interpolation", elem_id="strip", type="filepath", interactive=False)
            run_strip.click(strip, [prompt_a, prompt_b, seed_a, seed_b, frames], strip_image)
    return app
