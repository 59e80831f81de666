"""`samic-vos annotate`: the server from the command line, and its input errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from mounts import readonly_folder
from sambox_helpers import make_images

from samic_vos.annotate.browser import free_port
from samic_vos.annotate.classes import AnnotationClass, parse_classes, read_classes_file
from samic_vos.annotate.server import check_port_free
from samic_vos.commands.cli import main
from samic_vos.runtime.errors import UserError
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
    code = main(["annotate", str(images), *base, "--import-as", "masks"])
    assert_user_error(capsys, code, "--import-as says how to import --import-masks DIR")
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


def test_the_port_check_ignores_connections_in_time_wait():
    """A server stopped a moment ago leaves its closed connections in TIME_WAIT on its port;
    the check binds as uvicorn does and lets the restart through, a listener still stops it."""
    port = free_port()
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        with pytest.raises(UserError, match=f"port {port} on 127.0.0.1 is in use"):
            check_port_free(port)
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server closes first: its side waits in TIME_WAIT
        client.close()
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # what the check did before: "in use" for a minute
    check_port_free(port)


def test_bad_class_lists_are_one_line(tmp_path, capsys, tiny_checkpoint):
    images, out = make_images(tmp_path / "images"), tmp_path / "out"
    base = [str(images), "-o", str(out), "--sam-checkpoint", str(tiny_checkpoint)]
    base += ["--no-browser", "--port", str(free_port())]
    labels = tmp_path / "labels.txt"
    labels.write_text("# animals\ndog=#ff0000\n\ncat=red\n")
    for extra, message in (
        (
            ["--classes", "dog=#ff00"],
            "classes: class 'dog' has colour '#ff00'; write it as #RRGGBB",
        ),
        (["--classes", "dog", "dog"], "class 'dog' is listed twice"),
        (["--classes", *"abcdefghij"], "10 classes; at most 9"),
        (["--classes-file", str(labels)], f"{labels}: class 'cat' has colour 'red'"),
        (["--classes-file", str(tmp_path / "none.txt")], "none.txt: cannot read the labels file"),
        (["--classes", "a", "--classes-file", str(labels)], "--classes or --classes-file"),
    ):
        assert_user_error(capsys, main(["annotate", *base, *extra]), message)
    assert not out.exists()
    labels.write_text("# animals\ndog=#ff0000\n\ncat\n")
    assert parse_classes(read_classes_file(labels)) == [
        AnnotationClass("dog", (255, 0, 0)),
        AnnotationClass("cat", (0, 128, 0)),  # DAVIS palette colour 2
    ]


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


def start_annotate(
    images: Path, out: Path, checkpoint: Path, port: int, browser: Path | None = None
) -> subprocess.Popen:
    """`annotate` in a process of its own; ``browser``: the program it opens the page with
    (Python's ``webbrowser`` runs ``$BROWSER``), else ``--no-browser``."""
    command = [sys.executable, "-m", "samic_vos", "annotate", str(images), "-o", str(out)]
    command += ["--sam-checkpoint", str(checkpoint), "--device", "cpu", "--port", str(port)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if browser is None:
        command.append("--no-browser")
    else:
        env["BROWSER"] = str(browser)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def wait_for_listing(proc: subprocess.Popen, port: int) -> tuple[str, dict]:
    """The token of the URL `annotate` printed, and the image listing, once it serves."""
    line = proc.stdout.readline().decode()
    prefix = f"SAMBOX: http://127.0.0.1:{port}/?token="
    assert line.startswith(prefix), (line, proc.stderr.read().decode())
    token = line[len(prefix) :].split()[0]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/images", headers={"X-SAMBOX-Token": token}
    )
    for _ in range(600):  # the URL is printed just before uvicorn starts listening
        assert proc.poll() is None, proc.stderr.read().decode()
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return token, json.loads(response.read())
        except urllib.error.HTTPError:
            raise
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the server did not answer")


@pytest.mark.slow
@pytest.mark.parametrize(("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_annotate_serves_until_interrupted(tmp_path, tiny_checkpoint, stop, status):
    images, out = make_images(tmp_path / "images"), tmp_path / "out"
    port = free_port()
    with start_annotate(images, out, tiny_checkpoint, port) as proc:
        try:
            token, listing = wait_for_listing(proc, port)
            assert listing["total"] == 4
            # The printed URL opens the page: it sets the token's cookie and moves on to /.
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
            url = f"http://127.0.0.1:{port}/?token={token}"
            with opener.open(url, timeout=5) as response:
                assert b'http-equiv="refresh" content="0; url=/"' in response.read()
            with opener.open(f"http://127.0.0.1:{port}/", timeout=5) as response:
                assert b"<title>SAMBOX</title>" in response.read()
        finally:
            proc.send_signal(stop)
        # README: Ctrl-C exits 130, SIGTERM 143 (uvicorn shuts down, then we say which)
        assert proc.wait(timeout=60) == status
        assert proc.stderr.read().decode().strip().splitlines()[-1] in (
            "samic-vos: error: interrupted",
            "samic-vos: error: terminated",
        )


@pytest.mark.slow
def test_the_browser_is_opened_without_the_token_on_its_command_line(tmp_path, tiny_checkpoint):
    """Every user of the machine can read a process's command line (ps) as long as it runs: the
    browser is started on a page of this user only (0600) that moves on to the printed URL,
    and that page is gone when the server stops."""
    images, out = make_images(tmp_path / "images"), tmp_path / "out"
    argv_file = tmp_path / "browser_argv.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {argv_file}\n')
    browser.chmod(0o755)
    port = free_port()
    with start_annotate(images, out, tiny_checkpoint, port, browser=browser) as proc:
        try:
            token, _ = wait_for_listing(proc, port)
            for _ in range(100):
                if argv_file.is_file() and argv_file.read_text():
                    break
                time.sleep(0.1)
            argv = argv_file.read_text()
            opener = out / ".sambox/open.html"
            assert token not in argv and argv.strip() == opener.as_uri()
            assert opener.stat().st_mode & 0o777 == 0o600
            page = opener.read_text()
            assert (
                f'http-equiv="refresh" content="0; url=http://127.0.0.1:{port}/?token={token}"'
                in page
            )
        finally:
            proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    assert not opener.exists()


@pytest.mark.slow
def test_a_restart_right_after_ctrl_c_gets_the_port_and_the_folder(tmp_path, tiny_checkpoint):
    """Stopped with Ctrl-C after serving requests (its connections in TIME_WAIT), or killed
    (its lock file left behind), `annotate` starts again at once on the same port and folder;
    while one runs, a second on the same folder is refused in one line."""
    images, out = make_images(tmp_path / "images"), tmp_path / "out"
    port = free_port()
    for stop in (signal.SIGINT, signal.SIGKILL):
        with start_annotate(images, out, tiny_checkpoint, port) as proc:
            try:
                token, _ = wait_for_listing(proc, port)
                for _ in range(3):  # connections the server closes: TIME_WAIT on its port
                    request = urllib.request.Request(
                        f"http://127.0.0.1:{port}/api/state?name=a.png",
                        headers={"X-SAMBOX-Token": token, "Connection": "close"},
                    )
                    with urllib.request.urlopen(request, timeout=60) as response:
                        assert json.loads(response.read())["image"] == "a.png"
                if stop == signal.SIGKILL:
                    second = start_annotate(images, out, tiny_checkpoint, free_port())
                    with second:
                        assert second.wait(timeout=120) == 2
                        err = second.stderr.read().decode()
                    assert err.count("\n") == 1, err
                    assert f"{out}: another `samic-vos annotate` is working on" in err
                    assert f"pid {proc.pid} on " in err and "-o" in err
            finally:
                proc.send_signal(stop)
            proc.wait(timeout=60)
            killed = proc.pid
    with start_annotate(images, out, tiny_checkpoint, port) as proc:
        try:
            _, listing = wait_for_listing(proc, port)
            assert listing["total"] == 4
        finally:
            proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
        # The killed server's lock file is stale: taken over, and said so.
        assert f"taking over a stale lock of {out} (pid {killed} on " in proc.stderr.read().decode()


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
