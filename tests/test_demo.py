"""The web demo (`python -m gigagan_jax.demo`), driven by a real headless browser: the page shows the
model's image for its prompt, a new prompt typed into the box brings the new prompt's image, and the
interpolation button lays out a strip. Skipped, with the reason, where no browser is installed
(`.ci/run` installs Debian's chromium and chromium-driver)."""

import importlib.util
import io
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import jax
import numpy as np
import pytest
from flax.core import meta
from PIL import Image

from gigagan_jax.tools import local_cluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
FIRST = "a red ring in the center on a black background"  # the demo's default prompt
SECOND = "a blue cross in the center on a white background"
pytestmark = pytest.mark.skipif(importlib.util.find_spec("gradio") is None,
                                reason="gradio is not installed (the demo extra)")
needs_selenium = pytest.mark.skipif(importlib.util.find_spec("selenium") is None,
                                    reason="selenium is not installed (test extra)")
needs_browser = pytest.mark.skipif(not (BROWSER and DRIVER), reason="no headless browser: install Debian's "
                                                                    "chromium and chromium-driver (.ci/run does)")


@pytest.fixture(scope="module")
def model(tiny_clip, tmp_path_factory):
    """configs/tiny.py at initialisation, exported: the page must show what the model draws, trained or not."""
    from configs.tiny import get_config
    from gigagan_jax.generate.model_folder import export_model
    from gigagan_jax.generate.restore import TrainedGenerator
    from gigagan_jax.models.build import build_generator
    from gigagan_jax.models.generator import init_generator
    from gigagan_jax.pretrained.clip import load_clip

    config = get_config()
    config.clip.path = tiny_clip
    generator = build_generator(config)
    init = jax.jit(lambda key: init_generator(generator, key))  # one executable, not ~360 op by op
    params = meta.unbox(init(jax.random.PRNGKey(0))["params"])
    out = str(tmp_path_factory.mktemp("demo") / "model")
    export_model(TrainedGenerator(config, generator, params, load_clip(tiny_clip, text_only=True), 0), out, "init")
    return out


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    """The demo on a free localhost port, on 8 devices as this test process (same images, same bytes).
    Stopped as a service manager stops it (SIGTERM), it must exit cleanly and leave no image folder."""
    port = local_cluster.free_port()
    temp = tmp_path_factory.mktemp("demo_tmp")
    proc = subprocess.Popen([sys.executable, "-m", "gigagan_jax.demo", "--model", model, "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**local_cluster.process_env(8), "PYTHONPATH": ROOT, "TMPDIR": str(temp)})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 300
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"the demo did not come up:\n{proc.stdout.read()[-3000:]}")
            time.sleep(1)
    yield url
    assert [p.name for p in temp.glob("gigagan-demo-*")]  # the page's images, while it serves
    proc.terminate()
    assert proc.wait(timeout=30) == 0, proc.stdout.read()[-3000:]
    assert not list(temp.glob("gigagan-demo-*")), "the demo left its image folder behind"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = BROWSER
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def shown_image(driver, elem_id: str, not_src=None, timeout=120):
    """(src, uint8 pixels) of the image in the component `elem_id`, once it has one other than `not_src`."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def current(d):
        images = d.find_elements(By.CSS_SELECTOR, f"#{elem_id} img")
        src = images[0].get_attribute("src") if images else None
        return src if src and src != not_src else False

    src = WebDriverWait(driver, timeout).until(current)
    with urllib.request.urlopen(src, timeout=30) as response:
        return src, np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"))


@needs_selenium
@needs_browser
def test_the_page_draws_the_prompt_typed_into_it(model, server, browser, tmp_path, capsys):
    from selenium.webdriver.common.by import By

    from gigagan_jax.generate.grid import nearest_resize
    from gigagan_jax.generate.pipeline import GigaGANPipeline

    def for_display(images):  # the page shows 16 px images at 256 px (gigagan_jax.demo_page.DISPLAY_PX)
        return np.asarray(nearest_resize(images, 256))

    pipe = GigaGANPipeline.from_pretrained(model)
    expected = {p: for_display(pipe.sample([p], seeds=[0]))[0] for p in (FIRST, SECOND)}
    assert not np.array_equal(expected[FIRST], expected[SECOND])  # the model reads its prompt

    browser.get(server)
    first_src, first = shown_image(browser, "sample")
    np.testing.assert_array_equal(first, expected[FIRST])
    assert first.shape == (256, 256, 3)  # 16 px shown at 256 px by pixel repetition

    box = browser.find_element(By.CSS_SELECTOR, "#prompt textarea")
    box.clear()
    box.send_keys(SECOND)
    deadline = time.time() + 120
    while True:  # the page may show the images of partly typed prompts on the way
        src, second = shown_image(browser, "sample", not_src=first_src)
        if np.array_equal(second, expected[SECOND]) or time.time() > deadline:
            break
        first_src = src
    np.testing.assert_array_equal(second, expected[SECOND])

    browser.find_element(By.CSS_SELECTOR, "#interpolate").click()
    _, strip = shown_image(browser, "strip")
    assert strip.shape == (256, 8 * 257 - 1, 3)  # 8 frames in a row, 1 px apart
    frames = [np.asarray(im) for im in pipe.interpolate(FIRST, SECOND, 0, 1, 8)]
    np.testing.assert_array_equal(strip[:, :256], for_display(np.stack(frames[:1]))[0])

    folder = os.environ.get("GIGAGAN_JAX_ARTIFACTS") or str(tmp_path)
    os.makedirs(folder, exist_ok=True)
    screenshot = os.path.join(folder, "demo_page.png")
    browser.save_screenshot(screenshot)
    with capsys.disabled():
        print(f"\nweb demo screenshot: {screenshot}")


def test_an_image_drawn_again_is_served_from_its_file_untouched(tmp_path, monkeypatch):
    """Drawing an image the page already shows (the same prompt and seed again) must not rewrite the file
    a browser may be fetching: gradio's own array saving truncated and refilled it, and a fetch caught in
    between arrived empty (an IncompleteRead in this file's browser test)."""
    import types

    from gradio_client import Client

    from gigagan_jax.demo_page import ServedImages, build_app

    def sample(prompts, seeds, truncation):  # one fixed 16 px image per prompt
        return np.random.default_rng(len(prompts[0])).integers(0, 256, (1, 16, 16, 3), dtype=np.uint8)

    spec = types.SimpleNamespace(text_conditioned=True, conditioning="text")
    pipe = types.SimpleNamespace(resolution=16, sample=sample,
                                 base=types.SimpleNamespace(generator=types.SimpleNamespace(spec=spec)))
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    (tmp_path / "drawn").mkdir()
    app = build_app(pipe, FIRST, ServedImages(str(tmp_path / "drawn")))
    port = local_cluster.free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
        served = client.predict(FIRST, 1.0, 0, api_name="/draw")["path"]
        before = os.stat(served)
        time.sleep(0.01)  # a rewrite now would carry a later mtime
        again = client.predict(FIRST, 1.0, 0, api_name="/draw")["path"]
        other = client.predict(SECOND, 1.0, 0, api_name="/draw")["path"]
    finally:
        app.close()
    after = os.stat(served)
    assert again == served and other != served
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    shown = np.asarray(Image.open(served).convert("RGB"))
    np.testing.assert_array_equal(shown, np.repeat(np.repeat(sample([FIRST], [0], 1.0)[0], 16, 0), 16, 1))
    assert not [p for p in os.listdir(tmp_path / "drawn") if not p.endswith(".png")]  # no partial file left
