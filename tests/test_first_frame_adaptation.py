"""First-frame adaptation: bounded, converging, and resumable bit for bit after an interrupt."""

from __future__ import annotations

import logging
import re

import pytest
import torch

import samic_vos.training.first_frame_adaptation as adaptation
from samic_vos.data.davis import read_image
from samic_vos.data.mask_io import read_mask
from samic_vos.jobs.track import TrackConfig
from samic_vos.model.checkpoint import save_samic
from samic_vos.model.samic_net import SamicNetConfig, build_samic
from samic_vos.runtime.config import apply_overrides
from samic_vos.runtime.errors import UserError
from samic_vos.training.adaptation_state import load_state, save_state
from samic_vos.training.adapted import ADAPTATION_STATE, ADAPTED, adapt_samic
from samic_vos.training.first_frame_adaptation import (
    AdaptationConfig,
    adapt_on_first_frame,
    lr_factor,
)

TINY = SamicNetConfig(input_size=(64, 64), backbone="random", channels=(8, 16, 32))
# 8 steps, a validation every 3: at steps 0 (untrained), 3, 6 and 8.
SHORT = AdaptationConfig(
    views=3, steps=8, batch_size=2, val_every=3, max_seconds=None, checkpoint_seconds=0
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def judo(shared_data):
    root = shared_data / "judo"
    rgb = read_image(root / "JPEGImages" / "480p" / "judo" / "00000.jpg")
    return rgb, read_mask(root / "Annotations" / "480p" / "judo" / "00000.png")


def _fresh_net():
    torch.manual_seed(0)
    return build_samic(TINY)


def _adapt(judo, config=SHORT, net=None, **kwargs):
    net = net or _fresh_net()
    rgb, ids = judo
    metrics = adapt_on_first_frame(
        net,
        rgb,
        ids,
        config,
        heat_sigma=0.02,
        device=torch.device("cpu"),
        progress=False,
        **kwargs,
    )
    return net, metrics


def _same_weights(a, b) -> bool:
    sa, sb = a.head.state_dict(), b.head.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_interrupted_adaptation_resumes_to_the_same_weights(judo, tmp_path, monkeypatch):
    straight, expected = _adapt(judo)
    assert expected["steps"] == 8 and expected["stop"] == "steps"
    assert [h["step"] for h in expected["history"]] == [0, 3, 6, 8]

    state = tmp_path / "adaptation_state.pt"
    calls = {"n": 0}
    real_loss = adaptation.view_loss

    def interrupted(*args, **kwargs):  # loss calls: val 0, steps 1-3, val 3, steps 4, 5 ...
        calls["n"] += 1
        if calls["n"] == 7:  # during step 5
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(adaptation, "view_loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _adapt(judo, state_path=state)
    monkeypatch.setattr(adaptation, "view_loss", real_loss)
    saved = torch.load(state, weights_only=True)
    assert saved["progress"]["step"] == 4 and saved["progress"]["stop"] is None

    resumed, metrics = _adapt(judo, state_path=state)
    assert metrics["steps_this_call"] == 4  # only the missing steps were done
    assert _same_weights(resumed, straight)  # bit for bit
    assert metrics["history"] == expected["history"]
    assert (metrics["best_step"], metrics["stop"]) == (expected["best_step"], "steps")

    # A finished state: nothing redone, the same weights, the recorded step count.
    again, metrics = _adapt(judo, state_path=state)
    assert metrics["steps_this_call"] == 0 and metrics["steps"] == 8
    assert _same_weights(again, straight)
    # Another configuration is never continued from this state.
    with pytest.raises(UserError, match="another frame, mask, network or configuration"):
        _adapt(judo, apply_overrides(SHORT, {"lr": 5e-4}), state_path=state)


@pytest.mark.parametrize("damage", ["cut", "empty"])
def test_a_damaged_state_says_to_remove_it(tmp_path, damage):
    """A cut or empty adaptation state (a copied run folder, a failing disk) is one line that
    says to remove it, as for another adaptation's state; nothing can "save or download" it."""
    state = tmp_path / "adaptation_state.pt"
    save_state(state, {"fingerprint": {"steps": 8}, "head": {"w": torch.zeros(256)}})
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 2] if damage == "cut" else b"")
    with pytest.raises(UserError) as err:
        load_state(state, {"steps": 8})
    message = str(err.value)
    assert message.startswith(f"{state}: ") and "\n" not in message
    assert "remove it to adapt afresh" in message and "download" not in message


def test_a_run_killed_after_saving_its_adapted_network_leaves_no_state_behind(tmp_path):
    """Killed between writing samic_adapted.pt and removing adaptation_state.pt: the resumed
    run uses the saved network and removes the state, so its folder ends as a straight run's
    (no stale state file)."""
    net = _fresh_net()
    save_samic(tmp_path / ADAPTED, net)
    save_state(tmp_path / ADAPTATION_STATE, {"fingerprint": {}, "head": net.head.state_dict()})

    def references():
        raise AssertionError("a saved adapted network needs no references")

    adapted = adapt_samic(
        _fresh_net(),
        tmp_path,
        references,
        resume=True,
        job_config=None,
        adaptation=SHORT,
        heat_sigma=0.02,
        device=torch.device("cpu"),
        backbone_weights=None,
        progress=False,
        what="frame 0",
    )
    assert _same_weights(adapted, net)
    assert sorted(p.name for p in tmp_path.iterdir()) == [ADAPTED]


def test_time_bound_stops_and_is_recorded(judo, tmp_path, caplog):
    config = apply_overrides(SHORT, {"max_seconds": 1e-6})
    state = tmp_path / "state.pt"
    with caplog.at_level(logging.INFO, logger="samic_vos.training.first_frame_adaptation"):
        net, metrics = _adapt(judo, config, state_path=state)
    assert (metrics["stop"], metrics["steps"]) == ("time", 1)
    # Said after the first step: its time, the bounds and the ETA.
    assert re.search(
        r"s per step, at most 8 steps \(time bound 1e-06 s.*ETA 0 min 00 s", caplog.text
    )
    # Rerun on any machine: the recorded count is kept, whatever the bound would give now.
    again, metrics = _adapt(judo, config, state_path=state)
    assert (metrics["steps"], metrics["steps_this_call"]) == (1, 0)
    assert _same_weights(net, again)
    assert [h["step"] for h in metrics["history"]] == [0, 1]  # the last step was validated
    # And "steps: N" without a bound reproduces it without the state file.
    reproduced, _ = _adapt(judo, apply_overrides(SHORT, {"steps": 1}))
    assert _same_weights(reproduced, net) and not _same_weights(net, _fresh_net())


def test_plateau_stops_and_keeps_the_best_weights(judo):
    initial = _fresh_net()
    # No later validation can beat the untrained head by 1e9: a plateau at the first one.
    config = apply_overrides(SHORT, {"patience": 1, "min_delta": 1e9})
    net, metrics = _adapt(judo, config)
    assert (metrics["stop"], metrics["steps"], metrics["best_step"]) == ("plateau", 3, 0)
    assert _same_weights(net, initial)  # the best weights are the untrained ones


def test_validation_loss_falls_with_the_defaults_schedule(judo):
    _, metrics = _adapt(judo, apply_overrides(SHORT, {"steps": 12}))
    val = [h["val_loss"] for h in metrics["history"]]
    assert val[-1] < val[0] and metrics["best_val_loss"] == min(val)
    lrs = [lr_factor(SHORT, s) for s in range(SHORT.steps)]
    assert lrs[0] < lrs[SHORT.warmup_steps] == pytest.approx(1.0)  # warm-up, then decay
    assert lr_factor(SHORT, SHORT.steps) == pytest.approx(SHORT.final_lr_fraction)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("steps", -5),
        ("views", 1),
        ("batch_size", 0),
        ("lr", 0),
        ("val_every", 0),
        ("patience", -1),
        ("min_delta", -1),
        ("max_seconds", 0),
        ("checkpoint_seconds", -1),
        ("points_per_object", 0),
        ("warmup_steps", -1),
        ("final_lr_fraction", 2),
        ("steps", 2.5),
    ],
)
def test_bad_settings_are_one_line_user_errors_naming_the_key(key, value):

    with pytest.raises(
        UserError, match=rf"^track\.yaml: adaptation\.{key} must be .*, got "
    ) as err:
        apply_overrides(TrackConfig(), {"adaptation": {key: value}}, "track.yaml")
    assert "\n" not in str(err.value)
