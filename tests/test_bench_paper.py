"""`samic-vos bench paper` end to end on tiny random-weight models and tiny synthetic roots:
the present columns run through `bench davis` / `bench fewshot`, the table beside the
published rows with "no data" columns, each column linking to its report; resume, shards and
merge, and mistakes refused in one line before any run."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import yaml
from fewshot_trees import fss_tree, gray, textured, textured_perseg_tree
from fold_trees import pascal_tree

from samic_vos.commands.cli import main
from samic_vos.data.davis import copy_short_root
from samic_vos.data.fewshot_episodes import TEST_KINDS
from samic_vos.data.fewshot_sets import fss_split_classes
from samic_vos.eval.fewshot_folds import combine_folds
from samic_vos.eval.published import COLUMNS as PUBLISHED_COLUMNS
from samic_vos.eval.published import TABLE1
from samic_vos.pipelines import bench_paper
from samic_vos.sam.segmenter import SamSegmenter

FRAMES = 4


@pytest.fixture(scope="module")
def models(tiny_models) -> list[str]:
    return ["--sam-checkpoint", str(tiny_models["sam"]), "--samic", str(tiny_models["samic"])]


@pytest.fixture(scope="module")
def small_root(tmp_path_factory) -> Path:
    """FSS-1000 (every test class, 2 images each) and PerSeg (2 objects)."""
    root = tmp_path_factory.mktemp("datasets")
    fss_tree(root / "FSS-1000", {name: 2 for name in fss_split_classes("test")})
    textured_perseg_tree(root / "PerSeg", {"dog": 2, "can": 3})
    return root


@pytest.fixture(scope="module")
def full_root(tmp_path_factory, small_root, shared_data) -> Path:
    """``small_root``'s sets plus DAVIS-2016 (one short sequence) and PASCAL-5i (4 folds)."""
    root = tmp_path_factory.mktemp("more")
    for name in ("FSS-1000", "PerSeg"):
        (root / name).symlink_to(small_root / name)
    copy_short_root(
        shared_data / "DAVIS", root / "davis-2016-trainval-480p", ["blackswan"], FRAMES, "2016"
    )
    for fold in range(4):
        pascal_tree(root, fold)
    return root


def _paper(root: Path, out: Path, *extra: str, device: str = "cpu") -> tuple[int, str]:
    stdout = io.StringIO()
    argv = ["bench", "paper", "--root", str(root), "-o", str(out), "-q", "--device", device]
    with redirect_stdout(stdout):
        code = main([*argv, "--episode-count", "2", *extra])
    return code, stdout.getvalue()


def _scores(folder: Path) -> dict:
    return json.loads((folder / "scores.json").read_text())


class Embeds:
    """Counts SAM image encodings."""

    def __init__(self, monkeypatch) -> None:
        self.count, real = 0, SamSegmenter.embed

        def counted(segmenter, *args, **kwargs):
            self.count += 1
            return real(segmenter, *args, **kwargs)

        monkeypatch.setattr(SamSegmenter, "embed", counted)


def test_the_columns_are_the_published_table_and_each_has_its_benchmark(small_root):
    assert tuple(c.key for c in bench_paper.COLUMNS) == PUBLISHED_COLUMNS
    assert TABLE1["SAMIC (paper, ViT-H)"][PUBLISHED_COLUMNS.index("kvasir")] == 69.3
    found = bench_paper.find_columns(small_root)
    assert found["fss1000"] == small_root / "FSS-1000" and found["coco20i"] == "no data"
    # Every few-shot column is a layout `bench fewshot` tests: a present folder is always run.
    fewshot = [c.dataset for c in bench_paper.COLUMNS if c.bench == "fewshot"]
    assert len(fewshot) == 7 and set(fewshot) <= set(TEST_KINDS)


@pytest.mark.slow
def test_bench_paper_assembles_the_table_and_resumes(tmp_path, full_root, models, monkeypatch):
    out = tmp_path / "paper"
    code, table = _paper(full_root, out, *models)
    assert code == 0
    assert (out / "table1.md").read_text() == table
    scores = _scores(out)
    columns = scores["columns"]
    assert list(columns) == list(PUBLISHED_COLUMNS)
    # Our figures are the runs' own scores.
    davis = _scores(out / "davis2016")
    assert columns["davis2016"]["ours"] == 100 * davis["global"]["J&F-Mean"]
    assert columns["fss1000"]["ours"] == _scores(out / "fss1000")["global"]["mIoU"]
    assert columns["perseg"]["ours"] == _scores(out / "perseg")["global"]["mIoU"]
    folds = [(f"pascal5i/fold{f}", _scores(out / f"pascal5i/fold{f}")) for f in range(4)]
    assert columns["pascal5i"]["ours"] == combine_folds(folds)["mean"]["mIoU"]
    assert [s["fold"] for _, s in folds] == [0, 1, 2, 3]
    assert all(s["episodes"] == 2 for _, s in folds)
    # The absent columns are marked, with the published figures beside them.
    for key in ("coco20i", "tsmu", "nwpu-vhr10", "kvasir", "davis2017"):
        assert columns[key]["status"] == "no data" and columns[key]["ours"] is None
    assert columns["davis2017"]["published"]["SAMIC (paper, ViT-H)"] == 80.6
    lines = table.splitlines()
    ours = next(line for line in lines if line.startswith("| ours (samic"))
    cells = [c.strip() for c in ours.strip("|").split("|")]
    assert cells[1:] == [
        "no data",
        f"{columns['pascal5i']['ours']:.1f}",
        f"{columns['fss1000']['ours']:.1f}",
        f"{columns['perseg']['ours']:.1f}",
        "no data",
        "no data",
        "no data",
        f"{columns['davis2016']['ours']:.1f}",
        "no data",
    ]
    assert "| PerSAM (ViT-H) | 23.0 | 29.8 | 71.2 | 86.1 | 36.3 | 23.1 | 45.8 | – | 60.3 |" in lines
    assert "[DAVIS-16](davis2016/report.html)" in lines[2]
    # Each column links to its own report, which exists.
    html = (out / "report.html").read_text()
    for entry in columns.values():
        for report in entry["reports"]:
            assert (out / report).is_file() and f'href="{report}"' in html
    assert len(columns["pascal5i"]["reports"]) == 4

    # A finished table: nothing recomputed, the same bytes.
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    embeds = Embeds(monkeypatch)
    code, again = _paper(full_root, out, *models)
    assert (code, again, embeds.count) == (0, table, 0)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert {k: v for k, v in after.items() if k != "run.json"} == {
        k: v for k, v in before.items() if k != "run.json"
    }


@pytest.mark.slow
def test_shards_then_merge_give_the_whole_table(tmp_path, small_root, models):
    whole = tmp_path / "whole"
    assert _paper(small_root, whole, *models)[0] == 0
    shards = tmp_path / "shards"
    code, text = _paper(small_root, shards, *models, "--shard", "0/2")
    assert (code, text) == (0, "") and not (shards / "table1.md").exists()
    done = [p.name for p in shards.iterdir() if (p / "scores.json").is_file()]
    assert len(done) == 1
    code, text = _paper(small_root, shards, *models, "--shard", "1/2")
    assert code == 0 and text.startswith("# samic-vos bench paper")
    assert (shards / "table1.md").read_text() == (whole / "table1.md").read_text()
    assert _scores(shards)["columns"] == _scores(whole)["columns"]
    code, text = _paper(small_root, shards, *models, "--merge")
    assert code == 0 and (shards / "table1.md").read_text() == text


LAUNCHERS = {
    "torchrun": [{"RANK": str(i), "WORLD_SIZE": "2", "LOCAL_RANK": "0"} for i in range(2)],
    "slurm": [
        {"SLURM_ARRAY_TASK_ID": str(i), "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "5"}
        for i in (5, 6)
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_launcher_shards_run_each_column_whole(tmp_path, small_root, models, monkeypatch, launcher):
    """Shards from the launcher's environment (not --shard): each column's run is the whole of
    it (its nested `bench fewshot` must not take the launcher's shard too, or no column ever
    finishes), on the device `auto` picks (torchrun on a machine without CUDA: the CPU)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    whole = tmp_path / "whole"
    assert _paper(small_root, whole, *models, device="auto")[0] == 0
    shards = tmp_path / "shards"
    codes = []
    for env in LAUNCHERS[launcher]:
        with monkeypatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            codes.append(_paper(small_root, shards, *models, device="auto")[0])
    assert codes == [0, 0]
    assert (shards / "table1.md").read_bytes() == (whole / "table1.md").read_bytes()
    assert _scores(shards)["columns"] == _scores(whole)["columns"]


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("samic-vos: error: "), err
    return err[0]


def test_mistakes_are_one_line_before_any_run(tmp_path, capsys, small_root, models, monkeypatch):
    embeds = Embeds(monkeypatch)
    out = tmp_path / "out"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _paper(empty, out, *models)[0] == 2
    assert "holds none of the table's datasets" in _error(capsys)
    assert _paper(small_root, out, "--sam-checkpoint", models[1])[0] == 2
    assert "need a trained SAMIC network" in _error(capsys)
    assert _paper(small_root, out, *models, "--train")[0] == 2
    assert "exclude each other" in _error(capsys)
    sam = models[:2]
    assert _paper(small_root, out, *models, "--prompter", "persam")[0] == 2
    assert "persam needs no network" in _error(capsys)
    assert _paper(small_root, out, *sam, "--train", "--shard", "1/2")[0] == 2
    assert "training runs once, not per shard" in _error(capsys)
    perseg_only = tmp_path / "perseg-only"
    perseg_only.mkdir()
    (perseg_only / "PerSeg").symlink_to(small_root / "PerSeg")
    assert _paper(perseg_only, out, *sam, "--train")[0] == 2
    assert "--train trains the few-shot network on FSS-1000" in _error(capsys)
    broken = tmp_path / "broken"
    (broken / "VOC2012" / "JPEGImages").mkdir(parents=True)
    (broken / "FSS-1000").symlink_to(small_root / "FSS-1000")
    assert _paper(broken, out, *models)[0] == 2
    assert "VOC2012" in _error(capsys)
    assert _paper(small_root, out, *models, "--merge")[0] == 2
    assert "holds no `bench paper` run to merge" in _error(capsys)
    assert _paper(small_root, out, *models, "--sam-model", "vit_x")[0] == 2
    assert "--sam-model must be one of vit_b" in _error(capsys)
    settings = tmp_path / "train.yaml"
    settings.write_text("train: {max_epochs: 1}\n")
    assert _paper(small_root, out, *sam, "--train-config", str(settings))[0] == 2
    assert "--train-config sets how --train trains" in _error(capsys)
    settings.write_text("train: {max_epoch: 1}\n")
    assert _paper(small_root, out, *sam, "--train", "--train-config", str(settings))[0] == 2
    assert "max_epoch" in _error(capsys)
    assert not out.exists() and embeds.count == 0


def _fss_training_root(root: Path, small_root: Path) -> Path:
    """``root`` with FSS-1000: the test classes of ``small_root`` and every training class with
    2 images (2 ordered pairs each)."""
    (root / "FSS-1000").mkdir(parents=True)
    for name in (small_root / "FSS-1000").iterdir():
        (root / "FSS-1000" / name.name).symlink_to(name)
    for k, name in enumerate(fss_split_classes("train")):
        for n in (1, 2):
            gray(
                root / "FSS-1000" / name / f"{n}.png",
                textured(root / "FSS-1000" / name / f"{n}.jpg", k + n),
            )
    return root


@pytest.mark.slow
def test_a_training_stopped_after_its_first_epoch_is_finished_by_the_rerun(
    tmp_path, small_root, models, monkeypatch
):
    """Stopped (Ctrl-C; SIGKILL alike) once the few-shot training wrote its first best.pt: the
    rerun finishes the training (every epoch) before any column runs, rather than taking
    that best.pt, one epoch in, for the trained network."""
    import os

    root = _fss_training_root(tmp_path / "datasets", small_root)
    settings = tmp_path / "short.yaml"
    settings.write_text(
        "network: {input_size: [64, 64], backbone: random, channels: [8, 16, 32]}\n"
        "train: {max_epochs: 2, cache_dtype: float32}\n"
        "augment: {enabled: false}\n"
        "fewshot: {train_fraction: 1.0}\n"
    )
    real_replace = os.replace

    def stop_after_best(source, target, *args, **kwargs):
        real_replace(source, target, *args, **kwargs)
        if Path(target).name == "best.pt":
            raise KeyboardInterrupt

    out, args = tmp_path / "paper", [*models[:2], "--train", "--train-config", str(settings)]
    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", stop_after_best)
        assert _paper(root, out, *args)[0] == 130
    trained = out / "train-fss1000"
    assert (trained / "best.pt").is_file() and not (out / "fss1000").exists()
    assert _paper(root, out, *args)[0] == 0
    assert json.loads((trained / "run.json").read_text())["finished"]
    assert [h["epoch"] for h in json.loads((trained / "history.json").read_text())] == [1, 2]
    assert _scores(out / "fss1000")["episodes"] == 2


@pytest.mark.slow
def test_train_then_bench_every_column_with_the_trained_networks(
    tmp_path, small_root, shared_data, models
):
    """--train end to end with a short training (--train-config): the few-shot network on
    FSS-1000's training classes, then each column with its network; DAVIS-16 trains its own."""
    root = _fss_training_root(tmp_path / "datasets", small_root)
    davis = shared_data / "DAVIS"
    copy_short_root(davis, root / "davis-2016-trainval-480p", ["blackswan"], FRAMES, "2016")
    copy_short_root(
        davis, root / "davis-2016-trainval-480p", ["bear"], FRAMES, "2016", split="train"
    )
    settings = tmp_path / "short.yaml"
    settings.write_text(
        "network: {input_size: [64, 64], backbone: random, channels: [8, 16, 32]}\n"
        "flow: {top_k: 3, min_gap: 1, working_size: 64}\n"
        "train: {max_epochs: 1, cache_dtype: float32}\n"
        "augment: {enabled: false}\n"
        "fewshot: {train_fraction: 1.0}\n"
    )
    out = tmp_path / "paper"
    code, table = _paper(root, out, *models[:2], "--train", "--train-config", str(settings))
    assert code == 0 and (out / "table1.md").read_text() == table
    trained = yaml.safe_load((out / "train-fss1000" / "config.yaml").read_text())
    assert trained["train"]["max_epochs"] == 1 and trained["network"]["input_size"] == [64, 64]
    assert (out / "train-fss1000" / "best.pt").is_file()
    davis_config = yaml.safe_load((out / "train-config-davis.yaml").read_text())
    assert davis_config == {"train": yaml.safe_load(settings.read_text())}
    assert (out / "davis2016" / "samic.pt").is_file()
    columns = _scores(out)["columns"]
    scored = {k for k, c in columns.items() if c["status"] == "scored"}
    assert scored == {"fss1000", "davis2016"}
    fss_run = json.loads((out / "fss1000" / "run.json").read_text())
    assert fss_run["inputs"]["samic"]["path"] == str((out / "train-fss1000/best.pt").resolve())
    # A rerun resumes: every run is finished, nothing trains again.
    before = (out / "train-fss1000" / "best.pt").stat().st_mtime_ns
    assert _paper(root, out, *models[:2], "--train", "--train-config", str(settings)) == (0, table)
    assert (out / "train-fss1000" / "best.pt").stat().st_mtime_ns == before


@pytest.mark.slow
def test_download_fetches_the_archives_then_runs_what_came(
    tmp_path, shared_data, models, monkeypatch
):
    """--download through `data download` (a local HTTP server serving a tiny DAVIS-2016 zip as
    the registry's archive), then the table from what is there."""
    import hashlib
    import zipfile

    from http_server import ServerState, isolate, local_server

    from samic_vos.hub import datasets as dataset_download

    isolate(monkeypatch, tmp_path / "home")
    tree = copy_short_root(shared_data / "DAVIS", tmp_path / "tree", ["blackswan"], FRAMES, "2016")
    copy_short_root(shared_data / "DAVIS", tree, ["bear"], FRAMES, "2016", split="train")
    archive = tmp_path / "DAVIS-data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                zf.write(path, f"DAVIS/{path.relative_to(tree).as_posix()}")
    payload = archive.read_bytes()
    name = "davis-2016-trainval-480p"
    state = ServerState(payload, "/DAVIS-data.zip")
    monkeypatch.setattr(bench_paper, "DOWNLOADS", (name,))
    monkeypatch.setattr(bench_paper, "PREPARES", ())
    root, out = tmp_path / "datasets", tmp_path / "paper"
    with local_server(state) as base:
        fields = {
            **vars(dataset_download.ARCHIVES[name]),
            "url": f"{base}/DAVIS-data.zip",
            "sha256": hashlib.sha256(payload).hexdigest(),
            "size": len(payload),
        }
        monkeypatch.setitem(
            dataset_download.ARCHIVES, name, dataset_download.DatasetArchive(**fields)
        )
        code, table = _paper(root, out, *models, "--download")
    assert code == 0 and len(state.requests) == 1
    assert (root / name / "ImageSets" / "2016" / "val.txt").read_text() == "blackswan\n"
    columns = _scores(out)["columns"]
    assert columns["davis2016"]["status"] == "scored"
    assert columns["davis2016"]["ours"] == 100 * _scores(out / "davis2016")["global"]["J&F-Mean"]
    assert [k for k, c in columns.items() if c["status"] == "scored"] == ["davis2016"]
    assert "[DAVIS-16](davis2016/report.html)" in table
