"""DAVIS J&F: the official toolkit's numbers, hand-computed cases, bad inputs, CSVs, CLI."""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from davis_roots import make_davis_root, write_masks
from PIL import Image

from samic_vos.commands.cli import main
from samic_vos.data.davis import DavisDataset
from samic_vos.data.mask_io import write_mask
from samic_vos.eval.davis_eval import GLOBAL_COLUMNS, evaluate_davis, score_sequence
from samic_vos.eval.davis_metrics import (
    boundary_map,
    count_bits,
    dilate,
    disk,
    object_scores,
    pack_rows,
    statistics,
)
from samic_vos.runtime.heap import keep_freed_memory

TOL = 1e-6
SHAPE = (20, 30)  # boundary tolerance ceil(0.008 * 36.06) = 1 px
SWAP = np.array([0, 2, 1] + [0] * 253, np.uint8)  # id lookup: 1 <-> 2, void -> 0


@pytest.fixture(scope="module")
def expected(shared_data: Path) -> dict:
    return json.loads((shared_data / "results" / "STM_DAVIS16_val.expected.json").read_text())


def test_stm_reproduces_every_official_number(
    shared_data: Path, davis_root: Path, expected: dict
) -> None:
    dataset = DavisDataset(davis_root, year="2016", split="val")
    evaluation = evaluate_davis(shared_data / "results" / "STM_DAVIS16_val", dataset)

    for name in GLOBAL_COLUMNS:
        assert evaluation.global_scores[name] == pytest.approx(expected["global"][name], abs=TOL)
    by_name = {s.sequence: s for s in evaluation.sequences}
    assert set(by_name) == set(expected["per_sequence"])
    for sequence, official in expected["per_sequence"].items():
        ours = by_name[sequence]
        assert list(ours.frames) == official["frames_scored"]
        assert ours.J.shape == ours.F.shape == (1, len(official["frames_scored"]))
        np.testing.assert_allclose(ours.J[0], official["J"], rtol=0, atol=TOL)
        np.testing.assert_allclose(ours.F[0], official["F"], rtol=0, atol=TOL)
        per_object = evaluation.to_json()["per_object"][f"{sequence}_1"]
        assert per_object["J"] == pytest.approx(official["J_mean"], abs=TOL)
        assert per_object["F"] == pytest.approx(official["F_mean"], abs=TOL)


def test_cli_json_csvs_and_stale_csvs_never_read(
    tmp_path: Path, shared_data: Path, davis_root: Path, expected: dict, capsys
) -> None:
    results = tmp_path / "results"
    results.mkdir()
    for sequence in expected["per_sequence"]:
        (results / sequence).symlink_to(shared_data / "results" / "STM_DAVIS16_val" / sequence)
    stale = {
        "global_results-val.csv": ",".join(GLOBAL_COLUMNS) + "\n" + ",".join(["0.111"] * 7) + "\n",
        "per-sequence_results-val.csv": "Sequence,J-Mean,F-Mean\nblackswan_1,0.111,0.111\n",
    }
    for name, text in stale.items():
        (results / name).write_text(text)

    csv_dir = tmp_path / "csv"
    argv = ["eval", "davis", str(results), "--davis-root", str(davis_root), "--year", "2016"]
    assert main([*argv, "--json", "--csv-dir", str(csv_dir)]) == 0
    printed = json.loads(capsys.readouterr().out)  # exactly one JSON object on stdout
    assert set(printed) == {"global", "per_object"}
    for name in GLOBAL_COLUMNS:
        assert printed["global"][name] == pytest.approx(expected["global"][name], abs=TOL)
    assert set(printed["per_object"]) == {f"{s}_1" for s in expected["per_sequence"]}
    for name, text in stale.items():
        assert (results / name).read_text() == text  # neither read nor overwritten

    global_csv = (csv_dir / "global_results-val.csv").read_text().splitlines()
    assert global_csv[0] == "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay"
    assert global_csv[1] == ",".join(f"{expected['global'][c]:.3f}" for c in GLOBAL_COLUMNS)
    sequence_csv = (csv_dir / "per-sequence_results-val.csv").read_text().splitlines()
    assert sequence_csv[0] == "Sequence,J-Mean,F-Mean"
    official = expected["per_sequence"]["blackswan"]
    assert f"blackswan_1,{official['J_mean']:.3f},{official['F_mean']:.3f}" in sequence_csv
    assert len(sequence_csv) == 1 + len(expected["per_sequence"])

    assert main([*argv, "--sequences", "blackswan", "--workers", "1"]) == 0
    table = capsys.readouterr().out
    assert "Global results for val" in table
    assert f"{(official['J_mean'] + official['F_mean']) / 2:.6f}" in table
    assert "blackswan_1" in table and "car-shadow_1" not in table


def _rect(top: int, left: int, height: int, width: int, value: int, ids=None) -> np.ndarray:
    ids = np.zeros(SHAPE, np.uint8) if ids is None else ids
    ids[top : top + height, left : left + width] = value
    return ids


def _multi_object_case(tmp_path: Path) -> tuple[Path, Path]:
    """Two objects; object 2 leaves the ground truth at frame 3; row 17 is void throughout."""
    gt = []
    for t in range(6):
        ids = _rect(2, 2, 4, 6, 1)
        if t <= 2:
            _rect(10, 12, 4, 10, 2, ids)
        ids[17, :] = 255
        gt.append(ids)
    root = make_davis_root(tmp_path / "root", {"seq": gt})
    results = [
        gt[0],
        np.where(gt[1] == 255, 0, gt[1]),  # perfect
        SWAP[gt[2]],  # ids 1 and 2 swapped
        _rect(2, 5, 4, 6, 1),  # object 1 three px right, object 2 absent from both
        _rect(10, 12, 4, 10, 2, _rect(17, 0, 1, 30, 1, _rect(2, 2, 4, 6, 1))),  # void row as 1
        gt[5],
    ]
    write_masks(tmp_path / "results" / "seq", [r.astype(np.uint8) for r in results])
    return root, tmp_path / "results"


def test_hand_computed_multi_object_scores(tmp_path: Path) -> None:
    root, results = _multi_object_case(tmp_path)
    evaluation = evaluate_davis(results, DavisDataset(root))
    (scores,) = evaluation.sequences
    assert scores.frames == ("00001.png", "00002.png", "00003.png", "00004.png")
    # Frame 3, object 1: 4x6 boxes 3 px apart overlap in 4x3 px: J = 12 / 36; of the 20
    # boundary pixels of each box, 12 lie within 1 px of the other's: F = 0.6.
    # Frame 4, object 1: the true box plus the void row 17 (30 px of background): J = 24 / 54;
    # the row adds 60 unmatched boundary pixels: precision 20 / 80, recall 1, F = 0.4.
    # Object 2 is in the result but not in the ground truth at frame 4: J = F = 0; absent from
    # both at frame 3: J = F = 1. Swapped ids at frame 2: J = F = 0 for both.
    np.testing.assert_allclose(scores.J, [[1, 0, 12 / 36, 24 / 54], [1, 0, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(scores.F, [[1, 0, 0.6, 0.4], [1, 0, 1, 0]], atol=1e-12)
    # Decay bins for 4 frames: frames {1, 2} against {3, 4}.
    j_mean_1, j_decay_1 = 16 / 36, (1 + 0) / 2 - (12 / 36 + 24 / 54) / 2
    per_object = evaluation.to_json()["per_object"]
    assert list(per_object) == ["seq_1", "seq_2"]
    assert per_object["seq_1"] == pytest.approx({"J": j_mean_1, "F": 0.5})
    assert per_object["seq_2"] == pytest.approx({"J": 0.5, "F": 0.5})
    assert evaluation.global_scores == pytest.approx(
        {
            "J&F-Mean": ((j_mean_1 + 0.5) / 2 + 0.5) / 2,
            "J-Mean": (j_mean_1 + 0.5) / 2,
            "J-Recall": (0.25 + 0.5) / 2,
            "J-Decay": (j_decay_1 + 0) / 2,
            "F-Mean": 0.5,
            "F-Recall": 0.5,
            "F-Decay": 0.0,
        }
    )


def _reference_scores(gt: np.ndarray, res: np.ndarray, radius: int) -> tuple[float, float]:
    """J and F straight from the definitions, pixel by pixel (slow, independent)."""
    union = np.count_nonzero(gt | res)
    j = 1.0 if union == 0 else np.count_nonzero(gt & res) / union

    def boundary(mask: np.ndarray) -> set[tuple[int, int]]:
        height, width = mask.shape
        points = set()
        for y in range(height):
            for x in range(width):
                right = mask[y, x + 1] if x + 1 < width else None
                down = mask[y + 1, x] if y + 1 < height else None
                diag = mask[y + 1, x + 1] if x + 1 < width and y + 1 < height else None
                if any(n is not None and n != mask[y, x] for n in (right, down, diag)):
                    points.add((y, x))
        return points

    def matched(points: set, others: set) -> int:
        return sum(
            any((y - v) ** 2 + (x - u) ** 2 <= radius * radius for v, u in others)
            for y, x in points
        )

    fg, ref = boundary(res), boundary(gt)
    if not fg and not ref:
        precision = recall = 1.0
    elif not fg:
        precision, recall = 1.0, 0.0
    elif not ref:
        precision, recall = 0.0, 1.0
    else:
        precision, recall = matched(fg, ref) / len(fg), matched(ref, fg) / len(ref)
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return j, f


def _random_boxes(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Union of 1-3 random boxes, anywhere (image edges included)."""
    mask = np.zeros(shape, bool)
    for _ in range(int(rng.integers(1, 4))):
        top, left = int(rng.integers(0, shape[0])), int(rng.integers(0, shape[1]))
        mask[top : top + int(rng.integers(1, 8)), left : left + int(rng.integers(1, 8))] = True
    return mask


def test_random_masks_match_the_definitions() -> None:
    rng = np.random.default_rng(1)
    values = []
    for _ in range(40):
        shape = (int(rng.integers(6, 25)), int(rng.integers(6, 25)))
        gt, res = _random_boxes(rng, shape), _random_boxes(rng, shape)
        radius = int(rng.integers(1, 4))
        ours = object_scores(gt, res, radius)
        assert ours == pytest.approx(_reference_scores(gt, res, radius), abs=1e-12)
        values.append(ours[1])
    assert 0 < np.median(values) < 1  # the cases are not all trivial


def test_boundary_map_and_disk_conventions() -> None:
    mask = np.zeros((4, 5), bool)
    mask[1:3, 1:3] = True
    expected = np.array(
        [[1, 1, 1, 0, 0], [1, 0, 1, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=bool
    )
    np.testing.assert_array_equal(boundary_map(mask), expected)
    full = np.ones((3, 3), bool)
    assert not boundary_map(full).any()  # a mask filling the image has no boundary
    assert disk(1).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert disk(8).sum() == 197


@pytest.mark.parametrize(
    ("shape", "radius"),
    [((9, 5), 1), ((37, 130), 8), ((140, 300), 63), ((140, 260), 64), ((150, 190), 70)],
)
def test_packed_dilation_equals_opencv(shape: tuple[int, int], radius: int) -> None:
    """Rows wider than a word, radii across word boundaries: the pixels cv2.dilate gives with
    the same disk (pixels outside the image are background), and nothing leaks between rows."""
    import cv2

    everything = pack_rows(np.ones(shape, bool), spare=radius)
    # One pixel at a time, so that a pixel leaked into another row shows: the ends of the whole
    # bit string, the end and the start of a row, the middle.
    for y, x in [(0, 0), (-1, -1), (2, -1), (-3, 0), (shape[0] // 2, shape[1] // 2)]:
        image = np.zeros(shape, bool)
        image[y, x] = True
        expected = cv2.dilate(image.astype(np.uint8), disk(radius)).astype(bool)
        near = dilate(pack_rows(image, spare=radius), radius) & everything
        got = np.unpackbits(near.view(np.uint8), axis=1, count=shape[1], bitorder="little")
        np.testing.assert_array_equal(got.astype(bool), expected)
        assert count_bits(near) == np.count_nonzero(expected)


def _official_decay(values: np.ndarray) -> float:
    """The toolkit's Decay, uint8 bin indices included (as run with NumPy 2)."""
    ids = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # uint8 overflow, empty bin
        first, last = values[ids[0] : ids[1] + 1], values[ids[3] : ids[4] + 1]
        return float(np.nanmean(first) - np.nanmean(last))


def _decay(values: np.ndarray, edges: tuple[int, int, int, int]) -> float:
    return float(values[edges[0] : edges[1]].mean() - values[edges[2] : edges[3]].mean())


def test_statistics_equal_the_toolkit_and_fix_its_decay_on_long_sequences() -> None:
    rng = np.random.default_rng(2)
    for length in (1, 2, 3, 4, 7, 50, 255):
        values = rng.random(length)
        stats = statistics(values)
        assert stats.mean == pytest.approx(values.mean(), abs=1e-15)
        assert stats.recall == pytest.approx(np.mean(values > 0.5), abs=1e-15)
        assert stats.decay == pytest.approx(_official_decay(values), abs=1e-15)
    # From 256 scored frames on, the toolkit's uint8 bin indices wrap around: NaN, or the
    # wrong frames (its value at 256 frames under NumPy 1 is the correct one, below).
    for length, edges in ((256, (0, 65, 191, 256)), (300, (0, 76, 224, 300))):
        values = rng.random(length)
        assert np.isnan(_official_decay(values))
        assert statistics(values).decay == pytest.approx(_decay(values, edges), abs=1e-15)
    values = rng.random(400)  # bins 0-100 and 299-399; the toolkit's last is 43-143
    assert statistics(values).decay == pytest.approx(_decay(values, (0, 101, 299, 400)), abs=1e-15)
    assert _official_decay(values) == pytest.approx(_decay(values, (0, 101, 43, 144)), abs=1e-15)


def test_long_sequence_has_a_decay(tmp_path: Path) -> None:
    frames = 262  # 260 scored frames: the toolkit's Decay would be NaN
    gt = [_rect(1, 1, 3, 3, 1, np.zeros((8, 8), np.uint8)) for _ in range(frames)]
    root = make_davis_root(tmp_path / "root", {"long": gt})
    empty = np.zeros((8, 8), np.uint8)
    write_masks(tmp_path / "results" / "long", gt[:131] + [empty] * 131)
    evaluation = evaluate_davis(tmp_path / "results", DavisDataset(root))
    np.testing.assert_array_equal(evaluation.sequences[0].J[0], [1.0] * 130 + [0.0] * 130)
    assert evaluation.global_scores["J-Decay"] == 1.0
    assert evaluation.global_scores["F-Decay"] == 1.0


def _break_missing(results: Path) -> Path:
    path = results / "seq" / "00002.png"
    path.unlink()
    return path


def _break_size(results: Path) -> Path:
    path = results / "seq" / "00003.png"
    write_mask(path, np.zeros((SHAPE[0] + 1, SHAPE[1]), np.uint8))
    return path


def _break_id(results: Path) -> Path:
    path = results / "seq" / "00004.png"
    write_mask(path, _rect(0, 0, 2, 2, 3))
    return path


def _break_rgb(results: Path) -> Path:
    path = results / "seq" / "00001.png"
    Image.new("RGB", SHAPE[::-1], (128, 0, 0)).save(path)
    return path


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (_break_missing, "result frame missing"),
        (_break_size, "result is 30x21 px but the ground truth 00003.png is 30x20"),
        (_break_id, "object id 3 but the sequence has 2 object(s)"),
        (_break_rgb, "is a colour (RGB) image"),
    ],
)
def test_bad_results_give_one_line_naming_the_file(tmp_path: Path, capsys, damage, problem) -> None:
    root, results = _multi_object_case(tmp_path)
    path = damage(results)
    code = main(["eval", "davis", str(results), "--davis-root", str(root), "--json"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    message = captured.err.strip()
    assert "\n" not in message and str(path) in message and problem in message


def test_unknown_sequence_and_missing_results_folder(tmp_path: Path, capsys) -> None:
    root, results = _multi_object_case(tmp_path)
    argv = ["eval", "davis", str(results), "--davis-root", str(root)]
    assert main([*argv, "--sequences", "nope"]) == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "unknown sequence 'nope'" in message
    assert main(["eval", "davis", str(tmp_path / "none"), "--davis-root", str(root)]) == 2
    assert "results folder not found" in capsys.readouterr().err


def test_sequences_scored_before_are_taken_as_they_are(shared_data: Path, davis_root: Path):
    """`scored` (bench davis scores each sequence once it is tracked): the same evaluation as
    scoring everything at the end, and what is passed is used, not scored again."""
    dataset = DavisDataset(davis_root, year="2016", split="val")
    results = shared_data / "results" / "STM_DAVIS16_val"
    whole = evaluate_davis(results, dataset)
    early = {name: score_sequence(dataset, results, name) for name in dataset.sequences[:2]}
    assert evaluate_davis(results, dataset, scored=early).to_json() == whole.to_json()

    first = dataset.sequences[0]
    zero = dataclasses.replace(early[first], J=np.zeros_like(early[first].J))
    doctored = evaluate_davis(results, dataset, scored={first: zero})
    assert doctored.to_json()["per_object"][f"{first}_1"]["J"] == 0.0
    assert doctored.global_scores["J-Mean"] < whole.global_scores["J-Mean"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_scoring_process_keeps_its_freed_heap_memory():
    # eval davis and its workers set both glibc thresholds (mallopt returns 1 on success).
    assert keep_freed_memory() is True
