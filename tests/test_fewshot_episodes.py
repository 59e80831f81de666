"""The few-shot test protocols: HSNet's FSS-1000 episodes and PerSAM's PerSeg episodes."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fewshot_trees import perseg_tree

from samic_vos.data.fewshot_episodes import EpisodeConfig, fss_episodes, perseg_episodes
from samic_vos.data.fewshot_sets import FewShotDataset, FewShotItem, PerSegDataset
from samic_vos.runtime.config import ConfigError
from samic_vos.runtime.errors import UserError

ROOT = Path("/data/FSS-1000")
CLASSES = ("zebra", "bus", "abe's_flyingfish")


def fss_like(images: int = 10) -> FewShotDataset:
    """Classes of FSS-1000 names ``1..images`` (items in natural order; no files needed)."""
    items = {
        name: [
            FewShotItem(ROOT / name / f"{n}.jpg", ROOT / name / f"{n}.png")
            for n in range(1, images + 1)
        ]
        for name in CLASSES
    }
    return FewShotDataset(ROOT, items)


def hsnet_loop(shots: int) -> list[tuple[str, list[str]]]:
    """HSNet's own test loop (data/fss.py), replayed on path strings: (query, supports)."""
    np.random.seed(0)  # common/utils.py fix_randseed(0)
    episodes = []
    for category in sorted(CLASSES):
        files = [f"{n}{ext}" for n in range(1, 11) for ext in (".jpg", ".png")]
        paths = sorted(str(ROOT / category / name) for name in files)  # glob + sorted
        for query in [p for p in paths if p.endswith(".jpg")]:
            supports: list[str] = []
            while True:
                number = np.random.choice(range(1, 11), 1, replace=False)[0]
                support = os.path.join(os.path.dirname(query), str(number)) + ".jpg"
                if query != support:
                    supports.append(support)
                if len(supports) == shots:
                    break
            episodes.append((query, supports))
    return episodes


@pytest.mark.parametrize("shots", [1, 5])
def test_hsnet_sampling_draws_hsnets_episodes(shots: int) -> None:
    episodes = fss_episodes(fss_like(), EpisodeConfig(shots=shots))
    ours = [(str(e.query.image), [str(s.image) for s in e.supports]) for e in episodes]
    assert ours == hsnet_loop(shots)


@pytest.mark.parametrize("sampling", ["hsnet", "distinct"])
@pytest.mark.parametrize("shots", [1, 5])
def test_every_image_is_a_query_once_with_supports_of_its_class(sampling: str, shots: int) -> None:
    dataset = fss_like()
    config = EpisodeConfig(shots=shots, sampling=sampling)
    episodes = fss_episodes(dataset, config)
    assert len(episodes) == len(CLASSES) * 10
    assert Counter(e.query for e in episodes) == Counter(
        item for name in CLASSES for item in dataset.items(name)
    )
    assert [e.class_name for e in episodes] == [c for c in sorted(CLASSES) for _ in range(10)]
    for episode in episodes:
        assert len(episode.supports) == shots
        assert episode.query not in episode.supports
        assert all(s in dataset.items(episode.class_name) for s in episode.supports)
        if sampling == "distinct":
            assert len(set(episode.supports)) == shots
    assert fss_episodes(dataset, config) == episodes  # deterministic
    other = fss_episodes(dataset, EpisodeConfig(shots=shots, sampling=sampling, seed=1))
    assert [e.supports for e in other] != [e.supports for e in episodes]
    assert [e.query for e in other] == [e.query for e in episodes]


def test_hsnet_five_shot_can_repeat_a_support_and_distinct_does_not() -> None:
    hsnet = fss_episodes(fss_like(), EpisodeConfig(shots=5))
    assert any(len(set(e.supports)) < 5 for e in hsnet)  # as in HSNet's 5-shot test


def test_too_few_images_for_the_shots() -> None:
    assert len(fss_episodes(fss_like(6), EpisodeConfig(shots=5, sampling="distinct"))) == 18
    with pytest.raises(UserError, match="has 5 image\\(s\\); 5-shot episodes .* need 6"):
        fss_episodes(fss_like(5), EpisodeConfig(shots=5, sampling="distinct"))
    with pytest.raises(UserError, match="need 2"):
        fss_episodes(fss_like(1), EpisodeConfig(shots=1))


def test_episode_config_validates() -> None:
    with pytest.raises(ConfigError, match="shots must be an integer >= 1, got 0"):
        EpisodeConfig(shots=0)
    with pytest.raises(ConfigError, match="sampling must be one of hsnet, distinct"):
        EpisodeConfig(sampling="random")


def test_perseg_reference_supports_every_other_image(tmp_path: Path) -> None:
    episodes = perseg_episodes(PerSegDataset(perseg_tree(tmp_path)))
    assert [(e.class_name, e.query.name, [s.name for s in e.supports]) for e in episodes] == [
        ("can", "01", ["00"]),
        ("can", "02", ["00"]),
        ("dog", "01", ["00"]),
        ("dog", "02", ["00"]),
    ]
