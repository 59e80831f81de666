"""`samic-vos annotate`: the server from the command line, and its input errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from mounts import readonly_folder
from sambox_helpers import make_images

from samic_vos.annotate.browser import free_port
from samic_vos.commands.cli import main
from samic_vos.sam.models import build_sam, save_sam


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny_sam.pt"
    torch.manual_seed(0)
    save_sam(path, build_sam("tiny", random_init=True), "tiny")
    return path


def assert_user_error(capsys, code: int, *fragments: str) -> None:
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("samic-vos: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err


def test_input_errors_are_one_line_and_write_nothing(tmp_path, capsys, tiny_checkpoint):
    out = tmp_path / "out"
    base = ["-o", str(out), "--sam-checkpoint", str(tiny_checkpoint), "--no-browser"]
    code = main(["annotate", str(tmp_path / "missing"), *base])
    assert_user_error(capsys, code, "missing: image folder not found")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no image here")
    assert_user_error(capsys, main(["annotate", str(empty), *base]), "no images found")
    images = make_images(tmp_path / "images")
    code = main(["annotate", str(images), *base, "--import-masks", str(tmp_path / "nomasks")])
    assert_user_error(capsys, code, "--import-masks folder not found")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["annotate", str(images), *base, "--port", str(port)])
        assert_user_error(capsys, code, f"port {port} on 127.0.0.1 is in use", "another --port")
    assert_user_error(capsys, main(["annotate", str(images), *base, "--port", "0"]), "1..65535")
    config = tmp_path / "bad.yaml"
    config.write_text("sam_model: vit_x\n")
    code = main(["annotate", str(images), *base, "--config", str(config)])
    assert_user_error(capsys, code, "bad.yaml: sam_model must be one of vit_b")
    assert not out.exists()


def test_missing_sam_weights_offline(tmp_path, capsys, monkeypatch):
    from samic_vos.hub import weights

    monkeypatch.setenv("SAMIC_VOS_HOME", str(tmp_path / "home"))
    entry = weights.REGISTRY["sam_vit_b"]
    offline = type(entry)(**{**entry.__dict__, "url": "http://127.0.0.1:9/sam_vit_b_01ec64.pth"})
    monkeypatch.setitem(weights.REGISTRY, "sam_vit_b", offline)
    images, out = make_images(tmp_path / "images"), tmp_path / "out"
    code = main(["annotate", str(images), "-o", str(out), "--no-browser", "--port", "0"])
    assert code == 2 and "1..65535" in capsys.readouterr().err  # config first
    code = main(["annotate", str(images), "-o", str(out), "--no-browser"])
    assert_user_error(capsys, code, "sam_vit_b_01ec64.pth", "--sam-checkpoint")
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize(("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_annotate_serves_until_interrupted(tmp_path, tiny_checkpoint, stop, status):
    images, out = make_images(tmp_path / "images"), tmp_path / "out"
    port = free_port()
    command = [sys.executable, "-m", "samic_vos", "annotate", str(images), "-o", str(out)]
    command += ["--sam-checkpoint", str(tiny_checkpoint), "--device", "cpu"]
    command += ["--port", str(port), "--no-browser"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
        try:
            line = proc.stdout.readline().decode()
            url = f"http://127.0.0.1:{port}/"
            assert line.startswith(f"SAMBOX: {url}"), (line, proc.stderr.read().decode())
            listing = None
            for _ in range(600):  # the URL is printed just before uvicorn starts listening
                assert proc.poll() is None, proc.stderr.read().decode()
                try:
                    with urllib.request.urlopen(url + "api/images", timeout=5) as response:
                        listing = json.loads(response.read())
                    break
                except OSError:
                    time.sleep(0.1)
            assert listing["total"] == 4
            with urllib.request.urlopen(url, timeout=5) as response:
                assert b"SAMBOX" in response.read()
        finally:
            proc.send_signal(stop)
        # README: Ctrl-C exits 130, SIGTERM 143 (uvicorn shuts down, then we say which)
        assert proc.wait(timeout=60) == status
        assert proc.stderr.read().decode().strip().splitlines()[-1] in (
            "samic-vos: error: interrupted",
            "samic-vos: error: terminated",
        )


def test_an_unwritable_annotation_place_is_refused_at_start(tmp_path, capsys, tiny_checkpoint):
    """The default place is the image folder: read-only, annotate stops at once in one line
    (before, it started and answered every request with a 500 and a traceback)."""
    sam = ["--sam-checkpoint", str(tiny_checkpoint), "--no-browser", "--port", str(free_port())]
    with readonly_folder(tmp_path / "images", make_images) as images:
        assert main(["annotate", str(images), *sam]) == 2
        assert_user_error(capsys, 2, f"{images}: not writable (", "-o")
        with readonly_folder(tmp_path / "ro_out") as out:
            assert main(["annotate", str(images), "-o", str(out), *sam]) == 2
            assert_user_error(capsys, 2, f"{out}: not writable (")
