"""One configuration path: defaults → YAML → flags, typed and validated the same way in every
command; bad values are refused in one line before any output."""

from __future__ import annotations

import pytest

from samic_vos.commands.cli import build_parser, main
from samic_vos.commands.common import job_config
from samic_vos.jobs.track import TrackConfig
from samic_vos.runtime.config import apply_overrides, load_config
from samic_vos.runtime.errors import UserError
from samic_vos.training.job import TrainJobConfig


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("samic-vos: error: "), err
    return err[0]


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("tracker: {batch_size: eight}", "tracker.batch_size must be an integer, got 'eight'"),
        ("tracker: {batch_size: 0}", "tracker.batch_size must be an integer >= 1, got 0"),
        ("tracker: {heat_sigma: -1}", "tracker.heat_sigma must be in (0, 1], got -1.0"),
        ("overlay: {alpha: 5}", "overlay.alpha must be in [0, 1], got 5.0"),
        ("tracker: {peaks: {threshold: 2}}", "tracker.peaks."),
        ("network: {input_size: [64]}", "network.input_size must be a list of 2"),
        ("tracker: {batchsize: 2}", "tracker.batchsize must be a known key"),
        ("device: gpu", "device must be auto, cuda, cuda:N, mps or cpu, got 'gpu'"),
        ("sam_model: vit_x", "sam_model must be one of"),
        ("tracker: 3", "tracker must be a mapping of its own keys, got 3"),
    ],
)
def test_bad_track_values_name_file_key_and_what_is_allowed(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text + "\n")
    with pytest.raises(UserError) as err:
        load_config(TrackConfig(), path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_train_values_are_typed_too(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train: {lr: fast}\n")
    with pytest.raises(UserError, match="train.lr must be a number, got 'fast'"):
        load_config(TrainJobConfig(), path)
    path.write_text("davis: {year: 2016}\nnetwork: {input_size: [64, 64]}\n")
    config = load_config(TrainJobConfig(), path)  # an int year is the text "2016"
    assert config.davis.year == "2016" and config.network.input_size == (64, 64)


def test_files_that_are_not_yaml_mappings(tmp_path):
    binary = tmp_path / "model.pt"
    binary.write_bytes(b"\x80\x04\x95\xff\x00binary")
    with pytest.raises(UserError, match="not a text file"):
        load_config(TrackConfig(), binary)
    broken = tmp_path / "broken.yaml"
    broken.write_text("tracker:\n  batch_size: [1, 2\n")
    with pytest.raises(UserError, match=r"not valid YAML at line \d+, column \d+"):
        load_config(TrackConfig(), broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(UserError, match="must be a YAML mapping"):
        load_config(TrackConfig(), listing)


def _parse(argv: list[str]):
    return build_parser().parse_args(argv)


FLAG_CASES = [
    (["track", "v.mp4"], ["--device", "cpu", "--backend", "pyav"], "{device: cpu, backend: pyav}"),
    (["track", "v.mp4"], ["--sam-model", "vit_h"], "{sam_model: vit_h}"),
    (["track", "v.mp4"], ["--random-backbone"], "{network: {backbone: random}}"),
    (
        ["track", "v.mp4"],
        ["--precision", "bf16", "--compile"],
        "{encoder: {precision: bf16, compile: true}}",
    ),
    (
        ["bench", "davis"],
        ["--precision", "fp16", "--prompter", "persam"],
        "{track: {encoder: {precision: fp16}, prompter: persam}}",
    ),
    (
        ["train", "-o", "o"],
        ["--epochs", "3", "--batch-size", "2", "--input-size", "96"],
        "{train: {max_epochs: 3, batch_size: 2}, network: {input_size: [96, 96]}}",
    ),
    (
        ["train", "-o", "o"],
        ["--year", "2016", "--set", "val", "--sequences", "a", "b"],
        "{davis: {year: '2016', split: val, sequences: [a, b]}}",
    ),
    (["train", "-o", "o"], ["--random-backbone"], "{network: {backbone: random}}"),
    (
        ["render", "v.mp4", "m", "-o", "o.mp4"],
        ["--alpha", "0.3", "--fps", "12"],
        "{overlay: {alpha: 0.3}, fps: 12}",
    ),
    (
        ["eval", "davis", "r", "--davis-root", "d"],
        ["--workers", "2", "--set", "train"],
        "{workers: 2, davis: {split: train}}",
    ),
]


@pytest.mark.parametrize(("base", "flags", "yaml_text"), FLAG_CASES)
def test_a_flag_gives_what_the_same_yaml_key_gives(tmp_path, base, flags, yaml_text):
    from samic_vos.eval.davis_eval import DavisEvalConfig
    from samic_vos.pipelines.bench_davis import BenchDavisConfig
    from samic_vos.reports.render import RenderConfig

    jobs = {"track": TrackConfig, "train": TrainJobConfig, "render": RenderConfig}
    default = {**jobs, "bench": BenchDavisConfig}.get(base[0], DavisEvalConfig)()
    path = tmp_path / "same.yaml"
    path.write_text(yaml_text + "\n")
    from_flags = job_config(default, _parse([*base, *flags]))
    from_yaml = job_config(default, _parse([*base, "--config", str(path)]))
    assert from_flags == from_yaml != default


def test_a_bad_flag_is_refused_as_the_same_yaml_key_is(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train: {batch_size: 0}\n")
    with pytest.raises(UserError) as from_yaml:
        job_config(TrainJobConfig(), _parse(["train", "-o", "o", "--config", str(path)]))
    with pytest.raises(UserError) as from_flag:
        job_config(TrainJobConfig(), _parse(["train", "-o", "o", "--batch-size", "0"]))
    assert str(from_yaml.value) == f"{path}: train.batch_size must be an integer >= 1, got 0"
    assert str(from_flag.value) == "--batch-size: train.batch_size must be an integer >= 1, got 0"
    with pytest.raises(UserError, match="--batch-size: train.batch_size must be an integer"):
        job_config(TrainJobConfig(), _parse(["train", "-o", "o", "--batch-size", "eight"]))
    assert apply_overrides(TrainJobConfig(), {"train": {"batch_size": "8"}}, from_text=True)


def test_every_command_refuses_a_bad_config_before_any_output(tmp_path, capsys, shared_data):
    bad = tmp_path / "bad.yaml"
    video = shared_data / "videos/davis_bear.mp4"
    mask = shared_data / "videos/davis_bear_first_mask.png"
    davis = shared_data / "DAVIS"
    results = shared_data / "results/STM_DAVIS16_val"
    out = tmp_path / "out"
    cases = [
        (
            "tracker: {batch_size: 0}",
            ["track", str(video), "--first-mask", str(mask), "-o", str(out)],
        ),
        (
            "adaptation: {steps: -5}",
            ["track", str(video), "--first-mask", str(mask), "-o", str(out)],
        ),
        (
            "tracker: {peaks: {max_points: 0}}",
            ["track", str(video), "--first-mask", str(mask), "-o", str(out)],
        ),
        ("train: {lr: fast}", ["train", "--davis-root", str(davis), "-o", str(out)]),
        ("overlay: {alpha: 5}", ["render", str(video), str(tmp_path), "-o", str(out / "o.mp4")]),
        (
            "track: {tracker: {batch_size: 0}}",
            ["bench", "davis", "--davis-root", str(davis), "-o", str(out)],
        ),
        (
            "workers: 0",
            ["eval", "davis", str(results), "--davis-root", str(davis), "--csv-dir", str(out)],
        ),
    ]
    for text, argv in cases:
        bad.write_text(text + "\n")
        assert main([*argv, "--config", str(bad)]) == 2, text
        message = _error(capsys)
        assert str(bad) in message, message
        key = text.split(":")[0] if "{" not in text else None
        assert key is None or key in message
        assert not out.exists(), text


def test_random_backbone_with_a_checkpoint_is_refused(tmp_path, capsys, shared_data):
    video = shared_data / "videos/davis_bear.mp4"
    mask = shared_data / "videos/davis_bear_first_mask.png"
    ckpt = tmp_path / "samic.pt"
    ckpt.write_bytes(b"")
    out = tmp_path / "out"
    argv = ["track", str(video), "--first-mask", str(mask), "-o", str(out)]
    assert main([*argv, "--samic", str(ckpt), "--random-backbone"]) == 2
    assert "--random-backbone applies to a network made here" in _error(capsys)
    assert not out.exists()


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["track"])
    assert exit_info.value.code == 2
    assert "see 'samic-vos track --help'" in _error(capsys)
