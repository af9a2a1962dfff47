"""The PyTorch reference (gigagan-pytorch) at DESIGN §13's shape, timed on request in its own process.

`benchmarks.reference_speed` starts this module as a child process and interleaves its timings with
ours, so both are measured on one machine in one run. Each side has the machine to itself while it
is timed: the process that waits blocks on a pipe (and OpenMP's threads are told to sleep).

The reference is built as its README builds a text-conditioned GigaGAN, sized to §13: G 64 channels
at every level 4..64, N = 4 kernels, self- and cross-attention at 8 and 16 px (4 heads x 16),
mapping 4 layers, z = w = 64, a 2-layer text transformer 64 wide over CLIP-B/32's 512-wide tokens;
D 64 channels, attention at 8 and 16 px, multi-scale inputs 32/16/8, its own defaults otherwise
(matching-aware loss, its auxiliary reconstruction). The CLIP is randomly initialised (no weights
can be downloaded here) and each caption list is encoded once and cached, so neither side times a
CLIP; G's contrastive (CLIP) loss is off, as in our bench64 steps, which run without a CLIP.

Protocol (JSON lines): the child prints {"ready": ...} once built, then answers each request
{"what": name, "calls": k} with {"seconds": [k wall times]}; the first request of a name also
runs it once untimed (warm-up).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time


def import_torchvision() -> None:
    """torchvision from PyPI is linked against CUDA torch; under a CPU-only torch its C ops do not
    load and torchvision 0.28's import then fails registering a fake kernel for `torchvision::nms`.
    The reference uses only its Python parts (image utilities), so that one registration is skipped."""
    import torch.library

    try:
        import torchvision  # noqa: F401
        return
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    register_fake = torch.library.register_fake
    torch.library.register_fake = lambda *args, **kwargs: (lambda fn: fn)
    try:
        import torchvision  # noqa: F401,F811
    finally:
        torch.library.register_fake = register_fake


def build(sample_batch: int):
    """(gan, {name: callable}) at §13's shape, batch 8, fp32."""
    import torch

    import_torchvision()
    from gigagan_pytorch import GigaGAN
    from gigagan_pytorch.open_clip import OpenClipAdapter

    clip = OpenClipAdapter(pretrained=None)  # CLIP-B/32's shapes, random weights
    encode, encoded = clip.embed_texts, {}

    def embed_once(texts):
        key = tuple(texts)
        if key not in encoded:
            encoded[key] = encode(texts)
        return encoded[key]

    clip.embed_texts = embed_once
    text = dict(dim=64, depth=2, clip=clip, dim_head=16, heads=4)
    folder = tempfile.mkdtemp(prefix="gigagan_pytorch-")
    gan = GigaGAN(
        generator=dict(image_size=64, dim_capacity=64, dim_max=64, dim_latent=64, num_conv_kernels=4,
                       style_network=dict(dim=64, depth=4, dim_text_latent=64), text_encoder=text,
                       self_attn_resolutions=(8, 16), self_attn_dim_head=16, self_attn_heads=4,
                       cross_attn_resolutions=(8, 16), cross_attn_dim_head=16, cross_attn_heads=4),
        discriminator=dict(image_size=64, dim_capacity=64, dim_max=64, attn_resolutions=(8, 16), attn_dim_head=16,
                           attn_heads=4, text_encoder=text, multiscale_input_resolutions=(32, 16, 8)),
        generator_contrastive_loss_weight=0.0, model_folder=os.path.join(folder, "models"),
        results_folder=os.path.join(folder, "results"))
    batch = 8
    images, captions = torch.rand(batch, 3, 64, 64), [f"caption number {i}" for i in range(batch)]

    def loader():
        while True:
            yield images, captions

    data = loader()
    prompts = [f"prompt number {i}" for i in range(sample_batch)]

    def d_and_g(r1: bool):
        gan.train_discriminator_step(data, apply_gradient_penalty=r1)
        gan.train_generator_step(batch_size=batch, dl_iter=data)

    def sample():
        with torch.no_grad():
            return gan.generate(batch_size=sample_batch, texts=prompts)

    return gan, {"D+G (no R1)": lambda: d_and_g(False), "D+G (with R1)": lambda: d_and_g(True), "sample": sample}


def serve(sample_batch: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    replies = sys.stdout
    sys.stdout = sys.stderr  # the reference prints; only replies go to the pipe
    import importlib.metadata

    gan, calls = build(sample_batch)
    count = lambda module: sum(p.numel() for p in module.parameters() if p.requires_grad)  # noqa: E731
    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "gigagan_pytorch": importlib.metadata.version("gigagan-pytorch"),
                      "trained_params": {"G": count(gan.G), "D": count(gan.D)}}), file=replies, flush=True)
    warm = set()
    for line in sys.stdin:
        request = json.loads(line)
        call = calls[request["what"]]
        if request["what"] not in warm:
            call()
            warm.add(request["what"])
        seconds = []
        for _ in range(request["calls"]):
            t0 = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - t0)
        print(json.dumps({"seconds": seconds}), file=replies, flush=True)


if __name__ == "__main__":
    serve(sample_batch=int(sys.argv[1]), threads=int(sys.argv[2]))
