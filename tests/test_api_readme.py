"""The README's "Python API" example runs end to end on tiny random-weight models and writes the
bytes `samic-vos track` and `samic-vos segment` write on the same inputs; so do the scripts in
examples/."""

from __future__ import annotations

import ast
import re
import runpy
import shutil
from pathlib import Path

import pytest

from samic_vos.commands.cli import main

REPO = Path(__file__).resolve().parents[1]
BEAR = "DAVIS/JPEGImages/480p/bear"
FRAMES = 3
TARGETS = ("00010.jpg", "00040.jpg")


def readme_example() -> str:
    """The one ```python block of the README's "Python API" section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Python API section holds one python example"
    return blocks[0]


def with_settings(code: str, settings: dict[str, str]) -> ast.Module:
    """``code`` with the value of each top-level ``NAME = ...`` of ``settings`` replaced by
    that expression; every name must be set exactly once in the example."""
    tree = ast.parse(code)
    found: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in settings:
                node.value = ast.parse(settings[target.id], mode="eval").body
                found.append(target.id)
    assert sorted(found) == sorted(settings), "the README example's settings changed"
    return tree


@pytest.fixture
def bear_frames(tmp_path, shared_data) -> Path:
    """The first frames of DAVIS bear, as a frame folder."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for path in sorted((shared_data / BEAR).glob("*.jpg"))[:FRAMES]:
        shutil.copy(path, frames / path.name)
    return frames


def _same_files(ours: Path, cli: Path, names: list[str]) -> None:
    for name in names:
        assert (ours / name).read_bytes() == (cli / name).read_bytes(), name


def test_readme_example_runs_and_gives_the_cli_bytes(
    tmp_path, shared_data, tiny_models, bear_frames, one_torch_thread, capsys
):
    first_mask = shared_data / "videos/davis_bear_first_mask.png"
    reference = shared_data / BEAR / "00000.jpg"
    reference_mask = shared_data / "DAVIS/Annotations/480p/bear/00000.png"
    targets = [str(shared_data / BEAR / name) for name in TARGETS]
    out = tmp_path / "api"
    settings = {
        "SAM_MODEL": repr("tiny"),
        "SAM_CHECKPOINT": repr(str(tiny_models["sam"])),
        "SAMIC": repr(str(tiny_models["samic"])),
        "VIDEO": repr(str(bear_frames)),
        "FIRST_MASK": repr(str(first_mask)),
        "REFERENCE": repr(str(reference)),
        "REFERENCE_MASK": repr(str(reference_mask)),
        "TARGETS": repr(targets),
        "OUT": f"Path({str(out)!r})",
    }
    code = compile(with_settings(readme_example(), settings), "README.md", "exec")
    exec(code, {"__name__": "readme_example"})
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in printed] == [[str(i), "1"] for i in range(FRAMES)]

    models = ["--sam-checkpoint", str(tiny_models["sam"]), "--samic", str(tiny_models["samic"])]
    cli = tmp_path / "cli"
    track = [str(bear_frames), "--first-mask", str(first_mask), "-o", str(cli / "track")]
    assert main(["track", *track, *models, "-q"]) == 0
    masks = sorted(p.name for p in (cli / "track/masks").iterdir())
    assert masks == [f"{i:05d}.png" for i in range(FRAMES)]
    _same_files(out / "masks", cli / "track/masks", masks)

    refs = ["--ref", str(reference), "--ref-mask", str(reference_mask)]
    segment = [*refs, *targets, "-o", str(cli / "segment")]
    assert main(["segment", *segment, *models, "-q"]) == 0
    _same_files(out, cli / "segment/masks", [Path(t).with_suffix(".png").name for t in targets])


def test_example_scripts_give_the_cli_bytes(
    tmp_path, shared_data, tiny_models, bear_frames, one_torch_thread
):
    models = ["--sam-checkpoint", str(tiny_models["sam"]), "--samic", str(tiny_models["samic"])]
    first_mask = str(shared_data / "multiobject/bmx-trees/00000.png")
    frames = tmp_path / "bmx"
    frames.mkdir()
    for path in sorted((shared_data / "DAVIS/JPEGImages/480p/bmx-trees").glob("*.jpg"))[:2]:
        shutil.copy(path, frames / path.name)
    track = runpy.run_path(str(REPO / "examples/track_video.py"))["main"]
    out = tmp_path / "track"
    assert track([str(frames), "--first-mask", first_mask, "-o", str(out), *models]) == 0
    cli = tmp_path / "cli"
    args = [str(frames), "--first-mask", first_mask, "-o", str(cli / "track"), *models, "-q"]
    assert main(["track", *args]) == 0
    names = sorted(p.name for p in (cli / "track/masks").iterdir())
    assert sorted(p.name for p in out.iterdir()) == names
    _same_files(out, cli / "track/masks", names)

    segment = runpy.run_path(str(REPO / "examples/segment_images.py"))["main"]
    refs = ["--ref", str(bear_frames / "00000.jpg")]
    refs += ["--ref-mask", str(shared_data / "DAVIS/Annotations/480p/bear/00000.png")]
    targets = [str(bear_frames / name) for name in ("00001.jpg", "00002.jpg")]
    out = tmp_path / "segment"
    assert segment([*refs, *targets, "-o", str(out), "--instances", *models]) == 0
    args = [*refs, *targets, "-o", str(cli / "segment"), "--instances", *models, "-q"]
    assert main(["segment", *args]) == 0
    _same_files(out, cli / "segment/masks", ["00001.png", "00002.png"])


def test_example_scripts_report_a_mistake_in_one_line(tmp_path, capsys):
    track = runpy.run_path(str(REPO / "examples/track_video.py"))["main"]
    missing = tmp_path / "nowhere.mp4"
    with pytest.raises(SystemExit) as exit_info:
        track([str(missing), "--first-mask", "m.png", "-o", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {missing}: video or frame folder not found"
    ]


@pytest.mark.parametrize("script", ["track_video.py", "segment_images.py"])
def test_example_scripts_take_backbone_weights(script, tmp_path, capsys, shared_data, tiny_models):
    """Without --samic the examples adapt SAMIC on ResNet-50, whose weights an offline user
    passes as the CLI's commands take them (--backbone-weights); the file given is the one
    loaded (here: missing, named in one line)."""
    main_of = runpy.run_path(str(REPO / "examples" / script))["main"]
    frame = str(shared_data / "DAVIS/JPEGImages/480p/bear/00000.jpg")
    mask = str(shared_data / "DAVIS/Annotations/480p/bear/00000.png")
    given = (
        ["--first-mask", mask]
        if script == "track_video.py"
        else ["--ref", frame, "--ref-mask", mask]
    )
    missing = tmp_path / "resnet50.pth"
    args = [str(Path(frame).parent), *given, "-o", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as exit_info:
        main_of(
            [*args, "--sam-checkpoint", str(tiny_models["sam"]), "--backbone-weights", str(missing)]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0], err
