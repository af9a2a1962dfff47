"""InputPipeline: seeded order, exact resume, disjoint host shards, flips, tokens, mesh arrays."""

import json

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec

from gigagan_jax.config import default_config
from gigagan_jax.data import InputPipeline
from gigagan_jax.data.shapes import NUM_CLASSES, ShapesSource


def make_config(num_examples=64, batch_size=16, seed=0, **data):
    config = default_config()
    config.model.resolution = 16
    config.data.num_examples = num_examples
    config.train.batch_size = batch_size
    config.train.seed = seed
    for key, value in data.items():
        config.data[key] = value
    return config


def take(pipe, n):
    return [next(pipe) for _ in range(n)]


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)


def test_same_seed_same_order_and_other_seed_differs():
    a = take(InputPipeline(make_config(seed=1)), 3)
    b = take(InputPipeline(make_config(seed=1)), 3)
    c = take(InputPipeline(make_config(seed=2)), 3)
    for x, y in zip(a, b):
        assert_same(x, y)
    assert any(not np.array_equal(x["label"], z["label"]) or list(x["caption"]) != list(z["caption"])
               for x, z in zip(a, c))


def test_epoch_is_a_permutation_and_epochs_differ():
    pipe = InputPipeline(make_config(num_examples=40, batch_size=8))
    epoch0 = np.concatenate([pipe.batch_indices(k) for k in range(5)])
    epoch1 = np.concatenate([pipe.batch_indices(k) for k in range(5, 10)])
    assert sorted(epoch0) == list(range(40)) and sorted(epoch1) == list(range(40))
    assert not np.array_equal(epoch0, epoch1)
    # A batch may straddle two epochs when N is not a multiple of B; no example is dropped.
    pipe = InputPipeline(make_config(num_examples=20, batch_size=8))
    stream = np.concatenate([pipe.batch_indices(k) for k in range(5)])  # 40 positions = 2 epochs
    assert sorted(stream[:20]) == list(range(20)) and sorted(stream[20:]) == list(range(20))


@pytest.mark.parametrize("prefetch,workers", [(0, 0), (2, 0), (3, 2)])
def test_resume_at_batch_k_gives_the_unbroken_run(prefetch, workers):
    config = make_config(random_flip=True, prefetch=prefetch, num_workers=workers)
    unbroken = take(InputPipeline(config), 9)  # crosses an epoch boundary (64 / 16 = 4 per epoch)
    first = InputPipeline(config)
    take(first, 5)
    state = json.loads(json.dumps(first.get_state()))  # what a checkpoint stores
    assert state["batch"] == 5
    first.close()
    resumed = InputPipeline(config)
    resumed.set_state(state)
    for k, batch in enumerate(take(resumed, 4), start=5):
        assert_same(batch, unbroken[k])
    assert resumed.get_state()["batch"] == 9


def test_set_state_rejects_a_different_dataset_or_seed():
    state = InputPipeline(make_config(seed=0)).get_state()
    with pytest.raises(ValueError, match="seed"):
        InputPipeline(make_config(seed=1)).set_state(state)
    with pytest.raises(ValueError, match="num_examples"):
        InputPipeline(make_config(num_examples=65)).set_state(state)


def test_two_hosts_get_disjoint_shards_covering_the_dataset():
    config = make_config(num_examples=64, batch_size=16)
    hosts = [InputPipeline(config, process_index=p, process_count=2) for p in range(2)]
    single = InputPipeline(config, process_index=0, process_count=1)
    seen = [set(), set()]
    for k in range(4):  # one epoch
        parts = [h.batch(k) for h in hosts]
        assert parts[0]["image"].shape == (8, 16, 16, 3)
        for p in range(2):
            seen[p].update(hosts[p].batch_indices(k).tolist())
        # The hosts' rows, stacked, are the single-host global batch.
        whole = single.batch(k)
        np.testing.assert_array_equal(np.concatenate([x["image"] for x in parts]), whole["image"])
        assert list(parts[0]["caption"]) + list(parts[1]["caption"]) == list(whole["caption"])
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(64))
    with pytest.raises(ValueError, match="divisible"):
        InputPipeline(make_config(batch_size=15), process_index=0, process_count=2)


def test_random_flip_mirrors_about_half_the_images():
    plain = InputPipeline(make_config(batch_size=64, prefetch=0)).batch(0)
    flipped = InputPipeline(make_config(batch_size=64, prefetch=0, random_flip=True)).batch(0)
    mirrored = np.all(flipped["image"] == plain["image"][:, :, ::-1], axis=(1, 2, 3))  # [B]
    same = np.all(flipped["image"] == plain["image"], axis=(1, 2, 3))
    assert np.all(mirrored | same)
    assert 16 <= np.sum(mirrored & ~same) <= 48


def test_tokens_are_int32_and_each_caption_is_tokenized_once():
    calls = []

    def tokenizer(captions):
        calls.extend(captions)
        return np.asarray([[len(c), 7] + [0] * 75 for c in captions], np.int64)  # [n, 77]

    pipe = InputPipeline(make_config(num_examples=32, batch_size=16), tokenizer=tokenizer)
    for _ in range(6):  # three epochs
        batch = next(pipe)
        assert batch["tokens"].dtype == np.int32 and batch["tokens"].shape == (16, 77)
        np.testing.assert_array_equal(batch["tokens"][:, 0], [len(c) for c in batch["caption"]])
    assert len(calls) == 32


def test_batch_shapes_and_types_without_mesh():
    batch = next(InputPipeline(make_config(batch_size=8)))
    assert batch["image"].dtype == np.uint8 and batch["image"].shape == (8, 16, 16, 3)
    assert batch["label"].dtype == np.int32 and batch["label"].shape == (8,)
    assert batch["caption"].shape == (8,) and isinstance(batch["caption"][0], str)
    assert "tokens" not in batch


def test_mesh_batches_are_global_arrays_sharded_over_data_and_fsdp():
    devices = np.asarray(jax.devices()[:8]).reshape(2, 4)
    mesh = Mesh(devices, ("data", "fsdp"))
    config = make_config(batch_size=16)
    tokenizer = lambda caps: np.ones((len(caps), 77), np.int32)  # noqa: E731
    batch = next(InputPipeline(config, mesh=mesh, tokenizer=tokenizer))
    host = InputPipeline(config, tokenizer=tokenizer).batch(0)
    for key in ("image", "label", "tokens"):
        assert isinstance(batch[key], jax.Array)
        assert batch[key].sharding.spec == PartitionSpec(("data", "fsdp"))
        assert batch[key].shape[0] == 16
        np.testing.assert_array_equal(np.asarray(batch[key]), host[key])
    assert len(batch["image"].addressable_shards) == 8
    assert batch["image"].addressable_shards[0].data.shape == (2, 16, 16, 3)
    assert isinstance(batch["caption"], np.ndarray)


def test_source_errors_reach_the_caller():
    class Broken(ShapesSource):
        def get_batch(self, indices):
            raise OSError("disk gone")

    pipe = InputPipeline(make_config(), source=Broken(64, 16))
    with pytest.raises(OSError, match="disk gone"):
        next(pipe)


class Unlabelled(ShapesSource):
    """Shapes as a caption folder serves them: every label -1."""

    def get_batch(self, indices):
        return {**super().get_batch(indices), "label": np.full(len(indices), -1, np.int32)}


@pytest.mark.parametrize("prefetch,workers", [(0, 0), (2, 2)])
def test_class_conditioning_refuses_labels_outside_the_classes(prefetch, workers):
    config = make_config(prefetch=prefetch, num_workers=workers)
    config.model.conditioning, config.model.num_classes = "class", NUM_CLASSES
    assert next(InputPipeline(config))["label"].max() < NUM_CLASSES  # the shapes labels fit
    config.model.num_classes = 2
    with pytest.raises(ValueError, match=r"label \d+ of example \d+ in the 'shapes' dataset .* outside \[0, 2\): "
                                         r"class-conditional training .* needs every label in \[0, "
                                         r"config.model.num_classes\)"):
        next(InputPipeline(config))  # raised in the prefetch thread, re-raised here
    config.model.num_classes = NUM_CLASSES
    with pytest.raises(ValueError, match=r"label -1 of example \d+ .*caption folders carry no labels: -1"):
        next(InputPipeline(config, source=Unlabelled(64, 16)))
    config.model.conditioning = "text"  # labels are not read: -1 is fine
    assert np.all(next(InputPipeline(config, source=Unlabelled(64, 16)))["label"] == -1)


class RefusingTokenizer:
    """A CLIP tokenizer's shape that must not be called: the dataset's stored tokens serve."""

    context_length = 16

    def __call__(self, texts):
        raise AssertionError("captions were tokenized again although the dataset stores tokens")


def test_prepared_folder_reads_with_worker_processes_and_its_stored_tokens(tmp_path):
    from PIL import Image

    from gigagan_jax.data import builders
    from gigagan_jax.pretrained.tokenize import ClipTokenizer

    root = tmp_path / "raw"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), np.uint8)).save(root / f"{i}.jpg", quality=90)
        (root / f"{i}.txt").write_text(f"picture number {i} " + "with words " * (i % 5))
    dataset_dir = builders.prepare(builders.GigaganCaptionFolder(src=str(root), resolution=16,
                                                                 data_dir=str(tmp_path / "out")))
    config = make_config(batch_size=8, random_flip=True, kind="folder", path=dataset_dir)
    runs = []
    for workers in (0, 2):
        config.data.num_workers = workers
        pipe = InputPipeline(config, tokenizer=RefusingTokenizer())
        runs.append(take(pipe, 4))  # 32 rows: crosses the 24-example epoch
        pipe.close()
    for a, b in zip(*runs):
        assert_same(a, b)
    for batch in runs[0]:
        np.testing.assert_array_equal(batch["tokens"], ClipTokenizer(16)(list(batch["caption"])))


class DiesInWorkers(ShapesSource):
    """Reads normally in the parent; a decode worker reading it dies, as one killed for memory would."""

    def get_batch(self, indices):
        import multiprocessing
        import os

        if multiprocessing.parent_process() is not None:
            os._exit(1)
        return super().get_batch(indices)


def test_a_decode_worker_that_dies_is_an_error_not_a_hang():
    from concurrent.futures.process import BrokenProcessPool

    config = make_config(prefetch=2, num_workers=2)
    pipe = InputPipeline(config, source=DiesInWorkers(64, 16))
    with pytest.raises(BrokenProcessPool):
        next(pipe)  # raised in the prefetch thread, re-raised here
    pipe.close()
