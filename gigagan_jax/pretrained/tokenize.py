"""OpenAI CLIP's byte-level BPE tokenizer, offline, with the vendored merge list.

Every CLIP checkpoint (OpenAI's, or the small one `gigagan_jax.tools.train_clip` writes) was
trained on these exact ids, so the text pipeline and `load_clip(...).tokenize` share this one
implementation, and no model has to be loaded to tokenize.

Ids follow OpenAI: text is repaired with ftfy, HTML-unescaped twice, whitespace-collapsed and
lower-cased; each sequence is `<|startoftext|> tokens <|endoftext|>` zero-padded to the context
length. Longer prompts are cut, keeping `<|endoftext|>` as the last id, with a warning.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import html
import os
import warnings
from typing import Iterable

import ftfy
import numpy as np
import regex

BPE_PATH = os.path.join(os.path.dirname(__file__), "clip_bpe", "bpe_simple_vocab_16e6.txt.gz")
BPE_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
NUM_MERGES = 49152 - 256 - 2  # OpenAI keeps the first 48,894 merges of the file
SOT_ID = 49406  # <|startoftext|>
EOT_ID = 49407  # <|endoftext|>; the largest id, so argmax(ids) finds it
VOCAB_SIZE = 49408
CONTEXT_LENGTH = 77

# Special tokens, English contractions, letter runs, single digits, runs of other non-space chars.
_WORD_PATTERN = regex.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
    regex.IGNORECASE,
)
_WHITESPACE = regex.compile(r"\s+")


def _byte_alphabet() -> list[str]:
    """One printable character per byte value, so BPE never sees whitespace or control chars.

    Bytes that are already visible Latin-1 characters stand for themselves; the other 68 bytes
    are given the code points 256, 257, ... in byte order.
    """
    visible = set(range(ord("!"), ord("~") + 1)) | set(range(ord("¡"), ord("¬") + 1)) | set(
        range(ord("®"), ord("ÿ") + 1))
    alphabet, extra = [], 0
    for b in range(256):
        if b in visible:
            alphabet.append(chr(b))
        else:
            alphabet.append(chr(256 + extra))
            extra += 1
    return alphabet


def clean_text(text: str) -> str:
    """OpenAI's normalisation: ftfy repair, double HTML unescape, collapsed whitespace, lower case."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return _WHITESPACE.sub(" ", text).strip().lower()


@functools.lru_cache(maxsize=1)
def _load_merges() -> tuple[tuple[str, str], ...]:
    with open(BPE_PATH, "rb") as f:
        raw = f.read()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != BPE_SHA256:
        raise RuntimeError(f"{BPE_PATH} has sha256 {digest}, expected {BPE_SHA256}: the vendored "
                           "CLIP vocabulary is damaged; reinstall gigagan_jax")
    lines = gzip.decompress(raw).decode("utf-8").split("\n")[1:NUM_MERGES + 1]  # line 0: header
    return tuple(tuple(line.split()) for line in lines)


class ClipTokenizer:
    """Callable `list[str] -> np.int32 [n, context_length]` giving OpenAI CLIP ids."""

    def __init__(self, context_length: int = CONTEXT_LENGTH):
        if context_length < 2:
            raise ValueError(f"context_length must be >= 2 (room for SOT and EOT), got {context_length}")
        self.context_length = context_length
        merges = _load_merges()
        self._byte_chars = _byte_alphabet()
        # Vocabulary order (fixed by the checkpoints): the visible byte-characters, then the
        # remapped ones, each alone and with '</w>', then the merges, then the two specials.
        base = sorted(self._byte_chars, key=ord)
        vocab = base + [c + "</w>" for c in base]
        vocab += ["".join(pair) for pair in merges] + ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {token: i for i, token in enumerate(vocab)}
        self.decoder = {i: token for token, i in self.encoder.items()}
        self._rank = {pair: i for i, pair in enumerate(merges)}
        self._cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}
        assert len(self.encoder) == VOCAB_SIZE and self.encoder["<|endoftext|>"] == EOT_ID

    def _bpe(self, word: str) -> str:
        """Merge the byte-characters of one word, lowest merge rank first; '</w>' marks its end."""
        if word in self._cache:
            return self._cache[word]
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            ranks = [self._rank.get(pair, len(self._rank)) for pair in zip(parts, parts[1:])]
            best = min(ranks)
            if best == len(self._rank):
                break
            at = ranks.index(best)
            first, second = parts[at], parts[at + 1]
            merged, i = [], 0
            while i < len(parts):  # merge every occurrence of the best pair, left to right
                if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        result = " ".join(parts)
        self._cache[word] = result
        return result

    def encode(self, text: str) -> list[int]:
        """BPE ids of one prompt, without SOT/EOT."""
        ids = []
        for word in _WORD_PATTERN.findall(clean_text(text)):
            chars = "".join(self._byte_chars[b] for b in word.encode("utf-8"))
            ids.extend(self.encoder[piece] for piece in self._bpe(chars).split(" "))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of a list of ids (padding zeros and SOT/EOT dropped); for debugging and samples."""
        byte_of = {c: b for b, c in enumerate(self._byte_chars)}
        raw = bytearray()
        for i in ids:
            if int(i) in (0, SOT_ID, EOT_ID):
                continue
            piece = self.decoder[int(i)]
            raw += bytes(byte_of[c] for c in piece.removesuffix("</w>"))
            if piece.endswith("</w>"):  # end of a word
                raw += b" "
        return raw.decode("utf-8", errors="replace").strip()

    def __call__(self, texts: str | list[str]) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, (list, tuple)):
            raise TypeError(f"ClipTokenizer expects a list of str, got {type(texts).__name__}")
        out = np.zeros((len(texts), self.context_length), np.int32)  # [n, 77], 0 = padding
        truncated = 0
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"prompt {row} is a {type(text).__name__}, not a str: {text!r:.80}")
            ids = [SOT_ID] + self.encode(text) + [EOT_ID]
            if len(ids) > self.context_length:
                ids = ids[:self.context_length - 1] + [EOT_ID]
                truncated += 1
            out[row, :len(ids)] = ids
        if truncated:
            warnings.warn(f"{truncated} of {len(texts)} prompt(s) exceed {self.context_length} CLIP "
                          "tokens and were truncated (the end-of-text token is kept)", stacklevel=2)
        return out

