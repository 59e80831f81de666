"""`track`, `segment`, `bench davis` and SAMBOX end to end with a tiny random model of each
segmenter family (HQ-SAM, MedSAM, SAM 2.1); skipped where the family's package is absent."""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from fewshot_images import HEIGHT, WIDTH, write_set
from PIL import Image
from tiny_models import write_family_model

from samic_vos.commands.cli import main
from samic_vos.data.davis import copy_short_root
from samic_vos.data.mask_io import read_mask

PACKAGES = {"tiny_hq": "segment_anything_hq", "tiny_medsam": "skimage", "tiny_sam2": "sam2"}
FAMILIES = list(PACKAGES)


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request, tmp_path_factory) -> tuple[str, Path]:
    pytest.importorskip(PACKAGES[request.param])
    return request.param, write_family_model(tmp_path_factory.mktemp("m"), request.param)


def _models(family_model, tiny_models) -> list[str]:
    name, path = family_model
    return [
        "--sam-model",
        name,
        "--sam-checkpoint",
        str(path),
        "--samic",
        str(tiny_models["samic"]),
    ]


@pytest.mark.slow
def test_track_runs_with_each_family(tmp_path, shared_data, tiny_models, family_model):
    out = tmp_path / "out"
    root = copy_short_root(shared_data / "DAVIS", tmp_path / "davis", ["blackswan"], 3, "2016")
    frames = root / "JPEGImages/480p/blackswan"
    first = root / "Annotations/480p/blackswan/00000.png"
    args = [str(frames), "--first-mask", str(first), "-o", str(out)]
    assert main(["track", *args, *_models(family_model, tiny_models)]) == 0
    assert sorted(p.name for p in (out / "masks").iterdir()) == [f"{i:05d}.png" for i in range(3)]
    assert np.array_equal(read_mask(out / "masks/00000.png"), read_mask(first))
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["sam_model"] == family_model[0]


@pytest.mark.slow
def test_a_family_run_prints_only_its_own_lines(tmp_path, shared_data, tiny_models, family_model):
    """In a fresh process (the package not imported yet), the family's import-time notices
    (HQ-SAM's timm deprecations and registry names) do not reach the user's terminal."""
    import subprocess
    import sys

    root = copy_short_root(shared_data / "DAVIS", tmp_path / "davis", ["blackswan"], 2, "2016")
    args = [str(root / "JPEGImages/480p/blackswan"), "--first-mask"]
    args += [str(root / "Annotations/480p/blackswan/00000.png"), "-o", str(tmp_path / "out")]
    command = [sys.executable, "-m", "samic_vos", "track", *args, "-q"]
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [*command, *_models(family_model, tiny_models)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    # -q: warnings only; the one a tiny test checkpoint earns is the random backbone's
    assert [line for line in done.stderr.splitlines() if "RANDOMLY INITIALISED" not in line] == []


@pytest.mark.slow
def test_segment_runs_with_each_family(tmp_path, tiny_models, family_model):
    write_set(tmp_path / "refs", 1)
    write_set(tmp_path / "targets", 1, start=5, masks=False)
    out = tmp_path / "out"
    args = ["--ref", str(tmp_path / "refs/img_0.png"), "--ref-mask"]
    args += [str(tmp_path / "refs/img_0_mask.png"), str(tmp_path / "targets"), "-o", str(out)]
    assert main(["segment", *args, *_models(family_model, tiny_models)]) == 0
    with Image.open(out / "masks" / "img_5.png") as mask:
        assert mask.mode == "P" and mask.size == (WIDTH, HEIGHT)
    assert yaml.safe_load((out / "config.yaml").read_text())["sam_model"] == family_model[0]


@pytest.mark.slow
def test_bench_davis_runs_with_each_family(tmp_path, shared_data, tiny_models, family_model):
    root = copy_short_root(shared_data / "DAVIS", tmp_path / "davis", ["blackswan"], 3, "2016")
    argv = ["bench", "davis", "--davis-root", str(root), "--year", "2016", "-o"]
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        code = main([*argv, str(tmp_path / "b"), *_models(family_model, tiny_models), "--json"])
    assert code == 0
    scores = json.loads(stdout.getvalue())
    assert set(scores["per_object"]) == {"blackswan_1"} and scores["frames"] == 3


@pytest.mark.slow
def test_sambox_clicks_and_cached_embeddings_with_each_family(tmp_path, family_model):
    from sambox_helpers import decode_png, make_images

    from samic_vos.annotate.browser import script_client
    from samic_vos.annotate.image_folder import load_rgb
    from samic_vos.annotate.server import create_app
    from samic_vos.api.models import load_segmenter

    name, path = family_model
    segmenter = load_segmenter(name, path, device="cpu")
    images, annotations = make_images(tmp_path / "images"), tmp_path / "annotations"
    click = {"type": "point", "x": 30.0, "y": 20.0, "positive": True, "refine": False}
    views, encoded = [], []
    for run in range(2):  # the second server reads the embeddings (and extras) from the disk
        folder = annotations / str(run)
        if run:  # only the embedding cache carries over, not the session
            shutil.copytree(annotations / "0/.sambox/embeddings", folder / ".sambox/embeddings")
        app = create_app(images, folder, segmenter)
        with script_client(app) as client:
            response = client.post("/api/action", json={"image": "a.png", "action": click})
            assert response.status_code == 200, response.text
            views.append(response.json())
            app.state.annotator.embeddings.wait()
            encoded.append(app.state.annotator.embeddings.encoded)
    assert encoded == [3, 0]  # a.png, and b.jpg, c.bmp ahead; then none
    assert views[0]["mask_png"] == views[1]["mask_png"]
    segmenter.set_frame(load_rgb(images / "a.png"))
    expected = segmenter.prompt(np.array([[30.0, 20.0]]), np.array([1]))
    np.testing.assert_array_equal(decode_png(views[0]["mask_png"]) == 1, expected.mask)
    assert views[0]["iou"] == pytest.approx(expected.iou, abs=1e-5)


def test_the_embedding_cache_key_names_the_family(tmp_path):
    pytest.importorskip("skimage")
    from tiny_models import write_tiny_models

    from samic_vos.annotate.embedding_cache import model_key
    from samic_vos.api.models import load_segmenter

    sam = load_segmenter("tiny", write_tiny_models(tmp_path)["sam"], device="cpu")
    medsam = load_segmenter(
        "tiny_medsam", write_family_model(tmp_path, "tiny_medsam"), device="cpu"
    )
    # The same weights (both drawn from seed 0), yet MedSAM pre-processes images otherwise.
    for a, b in zip(sam.sam.state_dict().values(), medsam.sam.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    keys = {model_key(s.sam, f"{s.family}/{s.encoder.dtype}") for s in (sam, medsam)}
    assert len(keys) == 2


def test_a_samic_checkpoint_says_when_run_with_another_segmenter(tmp_path, caplog):
    pytest.importorskip("segment_anything_hq")
    from tiny_models import TINY_NET

    from samic_vos.api.models import load_models
    from samic_vos.model.checkpoint import save_samic
    from samic_vos.model.samic_net import build_samic

    samic = tmp_path / "samic.pt"
    save_samic(samic, build_samic(TINY_NET), config={"sam_model": "tiny", "prompter": "samic"})
    hq = write_family_model(tmp_path, "tiny_hq")
    with caplog.at_level("WARNING"):
        load_models("tiny_hq", sam_checkpoint=hq, samic=samic, device="cpu")
    lines = [
        r.getMessage() for r in caplog.records if "trained with the segmenter" in r.getMessage()
    ]
    assert lines == [
        f"{samic}: this SAMIC network was trained with the segmenter tiny, and runs with "
        "tiny_hq here; pass --sam-model tiny for the setting it was trained in"
    ]
    caplog.clear()
    save_samic(samic, build_samic(TINY_NET), config={"sam_model": "tiny_hq"})
    with caplog.at_level("WARNING"):  # the same segmenter: nothing to say
        load_models("tiny_hq", sam_checkpoint=hq, samic=samic, device="cpu")
    assert not any("trained with the segmenter" in r.getMessage() for r in caplog.records)
