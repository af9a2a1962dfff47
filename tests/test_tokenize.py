"""The offline CLIP tokenizer gives OpenAI's ids exactly.

Expected ids come from OpenAI's own tokenizer (`clip/simple_tokenizer.py` of the clip-anytorch
2.6.0 wheel, with `clip.tokenize(..., truncate=True)` semantics), recorded once; the table does
not depend on any package being installed, and a live cross-check against transformers'
`CLIPTokenizer` built from the same vocabulary guards the BPE loop itself.
"""

import json
import warnings

import numpy as np
import pytest

from gigagan_jax.pretrained.tokenize import BPE_SHA256, EOT_ID, SOT_ID, VOCAB_SIZE, ClipTokenizer, clean_text

_SUPER = [1642, 2857, 13093, 2076, 5868, 26850, 835, 639, 38466, 3120, 4262, 7726, 12658, 1585, 44351]  # 'supercalifragilisticexpialidocious antidisestablishmentarianism '

# (prompt, OpenAI ids without padding)
OPENAI_IDS = [
    ('a photo of a cat',
     [49406, 320, 1125, 539, 320, 2368, 49407]),
    ('',
     [49406, 49407]),
    ('   A  PHOTO\tof\na   Cat!!  ',
     [49406, 320, 1125, 539, 320, 2368, 748, 49407]),
    ('Tom &amp; Jerry &lt;3 &quot;classic&quot; &#39;cartoon&#39;',
     [49406, 2435, 261, 9164, 283, 274, 257, 2713, 257, 262, 7651, 262, 49407]),
    ('double-escaped &amp;amp; entity',
     [49406, 3200, 268, 18707, 261, 28455, 49407]),
    ("don't you've they'll I'm we'd it's she's THEY'RE",
     [49406, 847, 713, 592, 1200, 889, 1342, 328, 880, 649, 1896, 585, 568, 1043, 568, 889, 982, 49407]),
    ('café naïve résumé façade Ångström',
     [49406, 15304, 1097, 35689, 563, 29106, 7054, 4166, 778, 10067, 1928, 23176, 10352, 807, 7255, 332, 49407]),
    ('日本語のテキスト 中文 한국어',
     [49406, 39121, 44353, 34002, 252, 21575, 2429, 228, 47121, 32421, 486, 19759, 255, 29032, 485, 15197, 250, 31871, 255, 31625, 368, 49407]),
    ('emoji 🐱🐶🎉 and ❤️ hearts 👍🏽',
     [49406, 16327, 35710, 14466, 3986, 537, 1752, 5516, 43722, 49407]),
    ('mojibake: The Mona Lisa doesnâ€™t have eyebrows.',
     [49406, 617, 3252, 11878, 281, 518, 19143, 7424, 2503, 713, 720, 19923, 269, 49407]),
    ('numbers 1234567890 3.14159 $99.99 50% #1 @user',
     [49406, 6121, 272, 273, 274, 275, 276, 277, 278, 279, 280, 271, 274, 269, 272, 275, 272, 276, 280, 259, 280, 280, 269, 280, 280, 276, 271, 260, 258, 272, 287, 7031, 49407]),
    ('punctuation... ?!?! --- ((brackets)) [x] {y} <z> ~`^|\\/',
     [49406, 47051, 678, 16349, 11079, 13796, 36183, 5167, 314, 343, 316, 346, 344, 348, 283, 345, 285, 93, 63, 61, 91, 59, 270, 49407]),
    ('http://example.com/path?query=1&b=2 user@mail.org',
     [49406, 15066, 12441, 6228, 269, 2464, 270, 5035, 286, 27464, 284, 272, 261, 321, 284, 273, 7031, 287, 2614, 269, 5593, 49407]),
    ('ǅungla ﬁne ligature ＦＵＬＬＷＩＤＴＨ',
     [49406, 67, 129, 122, 10439, 1210, 3797, 19915, 4490, 9407, 23571, 49407]),
    ('<|endoftext|> inside text <|startoftext|>',
     [49406, 49407, 2912, 4160, 49406, 49407]),
    ("a " * 100,  # > 77 tokens: cut to 75 + EOT
     [SOT_ID] + [320] * 75 + [EOT_ID]),
    ("supercalifragilisticexpialidocious antidisestablishmentarianism " * 10,
     [SOT_ID] + (_SUPER * 10)[:75] + [EOT_ID]),
    ("\U0001f680" * 60,  # 60 rockets: 31 ids, BPE merges pairs of them
     [49406, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 49033, 22400, 13542, 49407]),
]


@pytest.fixture(scope="module")
def tok():
    return ClipTokenizer()


@pytest.mark.parametrize("text,expected", OPENAI_IDS, ids=range(len(OPENAI_IDS)))
def test_ids_equal_openai(tok, text, expected):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = tok([text])
    assert ids.dtype == np.int32 and ids.shape == (1, 77)
    want = np.zeros(77, np.int32)
    want[:len(expected)] = expected
    np.testing.assert_array_equal(ids[0], want)
    # Every table entry of 77 ids is a cut prompt, and only those warn.
    assert ["truncated" in str(w.message) for w in caught] == ([True] if len(expected) == 77 else [])


def test_batch_matches_rows_and_eot_is_argmax(tok):
    texts = [t for t, e in OPENAI_IDS if len(e) < 77]
    ids = tok(texts)  # [n, 77]
    assert ids.shape == (len(texts), 77)
    for row, (text, expected) in enumerate((t, e) for t, e in OPENAI_IDS if len(e) < 77):
        assert ids[row, :len(expected)].tolist() == expected
        assert not ids[row, len(expected):].any()
    # The first EOT is where OpenAI pools; argmax finds it because EOT is the largest id.
    first_eot = np.array([row.tolist().index(EOT_ID) for row in ids])
    np.testing.assert_array_equal(np.argmax(ids, axis=-1), first_eot)


def test_empty_prompt_is_sot_eot(tok):
    np.testing.assert_array_equal(tok([""])[0, :3], [SOT_ID, EOT_ID, 0])
    assert tok([]).shape == (0, 77)


def test_single_string_is_one_prompt(tok):
    np.testing.assert_array_equal(tok("a photo of a cat"), tok(["a photo of a cat"]))


@pytest.mark.parametrize("bad", [[None], ["ok", 3], [b"bytes"], 7, {"a": 1}])
def test_non_string_input_is_a_type_error(tok, bad):
    with pytest.raises(TypeError):
        tok(bad)


def test_clean_text_unescapes_twice_and_fixes_mojibake():
    assert clean_text("  Tom &amp;amp;   JERRY  ") == "tom & jerry"
    assert clean_text("doesn\u00e2\u20ac\u2122t") == "doesn't"


def test_vocabulary_layout(tok):
    assert len(tok.encoder) == VOCAB_SIZE
    assert tok.encoder["!"] == 0 and tok.encoder["a</w>"] == 320
    assert tok.encoder["<|startoftext|>"] == SOT_ID and tok.encoder["<|endoftext|>"] == EOT_ID
    assert len(BPE_SHA256) == 64
    assert tok.decode(tok(["a photo of a cat!"])[0]) == "a photo of a cat !"


def test_context_length_option():
    short = ClipTokenizer(context_length=5)
    with pytest.warns(UserWarning, match="truncated"):
        ids = short(["a photo of a cat"])
    np.testing.assert_array_equal(ids, [[SOT_ID, 320, 1125, 539, EOT_ID]])


def test_agrees_with_transformers_clip_tokenizer(tok, tmp_path):
    """An independent BPE (transformers' slow CLIPTokenizer) over the same merges gives the same ids."""
    transformers = pytest.importorskip("transformers")
    from gigagan_jax.pretrained.tokenize import _load_merges

    (tmp_path / "vocab.json").write_text(json.dumps(tok.encoder))
    (tmp_path / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(" ".join(m) for m in _load_merges()) + "\n")
    hf = transformers.CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    # transformers skips the HTML unescape, so compare on text without entities.
    for text, _ in OPENAI_IDS[:3] + OPENAI_IDS[5:10] + OPENAI_IDS[11:14]:
        n = len(hf(text)["input_ids"])
        assert hf(text)["input_ids"] == tok([text])[0, :n].tolist(), text
