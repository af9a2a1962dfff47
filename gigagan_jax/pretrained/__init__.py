"""Frozen third-party networks and their weight converters: CLIP (+ its BPE tokenizer), the FID
Inception-v3 and LPIPS. GigaGAN reads them, never trains them."""
