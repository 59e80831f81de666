"""The README's first command (install, then track the bear with an overlay) runs as written
from a checkout beside ../shared: its `samic-vos track` part, with tiny random-weight models
in place of the weights it downloads."""

from __future__ import annotations

import shlex
from pathlib import Path

import av
import pytest

from samic_vos.commands.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_track_command() -> list[str]:
    """The arguments of `samic-vos` in the README's first ```bash block (its track line)."""
    block = README.read_text(encoding="utf-8").split("```bash\n", 1)[1].split("```", 1)[0]
    line = next(line for line in block.splitlines() if "samic-vos track" in line)
    return shlex.split(line.split("/samic-vos ", 1)[1])


@pytest.mark.slow
def test_readme_first_command_tracks_the_bear(tmp_path, monkeypatch, shared_data, tiny_models):
    checkout = tmp_path / "samic-vos"
    checkout.mkdir()
    (tmp_path / "shared").symlink_to(shared_data.parent, target_is_directory=True)
    monkeypatch.chdir(checkout)  # a fresh checkout: no runs/ yet
    argv = readme_track_command()
    assert argv[0] == "track" and "-o" in argv and "--overlay" in argv
    models = ["--sam-checkpoint", str(tiny_models["sam"]), "--samic", str(tiny_models["samic"])]
    assert main([*argv, *models, "-q"]) == 0
    with av.open(argv[1]) as video:
        frames = video.streams.video[0].frames
    assert frames == 82
    out = checkout / argv[argv.index("-o") + 1]
    assert len(list((out / "masks").glob("*.png"))) == frames
    assert len((out / "prompts.jsonl").read_text().splitlines()) == frames
    with av.open(str(checkout / argv[argv.index("--overlay") + 1])) as overlay:
        assert sum(1 for _ in overlay.decode(video=0)) == frames
