"""Few-shot test episodes: which labelled images (supports) segment which query.

**FSS-1000, HSNet's protocol** (``juhongm999/hsnet``: ``test.py``, ``data/fss.py``
``DatasetFSS.sample_episode``): every image of every test class is the query of one episode
(240 classes × 10 images = 2400 episodes), its ``shots`` supports drawn from the same class,
never the query. Episodes come in HSNet's order (classes sorted by name, queries sorted by file
name as ``glob`` + ``sorted`` give them: ``1, 10, 2, …``). Two ways to draw the supports
(:data:`SAMPLINGS`):

- ``"hsnet"`` (default): HSNet's draws, number for number: one ``numpy`` legacy ``RandomState``
  seeded once with ``seed`` (HSNet's ``fix_randseed(0)``) for the whole test; each support is
  ``choice(n, 1, replace=False)`` over the class's ``n`` images in natural order (FSS-1000 names
  ``1..10``: HSNet's ``choice(range(1, 11))``), drawn again while it is the query. With
  ``shots > 1`` a support can repeat, as in HSNet's 5-shot numbers.
- ``"distinct"``: ``shots`` different supports per episode, none the query, drawn with
  ``numpy.random.default_rng(seed)`` over the test in the same order (our own choice for
  K-shot runs without repeats).

**PerSeg, PerSAM's protocol** (``persam.py``, ``eval_miou.py``): the reference ``00`` is the one
support of every other image of its object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samic_vos.data.fewshot_sets import FewShotDataset, FewShotItem, PerSegDataset
from samic_vos.runtime.config import require, require_choice
from samic_vos.runtime.errors import UserError

SAMPLINGS = ("hsnet", "distinct")


@dataclass(frozen=True)
class Episode:
    """One test episode: ``supports`` (labelled) segment ``query`` of class ``class_name``."""

    class_name: str
    query: FewShotItem
    supports: tuple[FewShotItem, ...]


@dataclass
class EpisodeConfig:
    """How test episodes are drawn (key ``episodes:`` of a few-shot job's config)."""

    shots: int = 1  # supports per episode (the paper reports 1-shot and 5-shot)
    seed: int = 0  # HSNet's test seed
    sampling: str = SAMPLINGS[0]

    def __post_init__(self) -> None:
        require(self.shots >= 1, "shots", "an integer >= 1", self.shots)
        require(self.seed >= 0, "seed", "an integer >= 0", self.seed)
        require_choice("sampling", self.sampling, SAMPLINGS)


def _hsnet_supports(
    rng: np.random.RandomState, items: list[FewShotItem], query: int, shots: int
) -> list[int]:
    """HSNet's ``sample_episode`` loop: draw one index at a time, skip the query."""
    chosen: list[int] = []
    while len(chosen) < shots:
        index = int(rng.choice(len(items), 1, replace=False)[0])
        if index != query:
            chosen.append(index)
    return chosen


def fss_episodes(dataset: FewShotDataset, config: EpisodeConfig | None = None) -> list[Episode]:
    """HSNet's test episodes over every class of ``dataset``: one per image, as its query.

    Deterministic for a given ``config`` (seed, shots, sampling) and dataset. Raises
    :class:`UserError` when a class has too few images for ``config.shots`` supports.
    """
    config = config or EpisodeConfig()
    legacy = np.random.RandomState(config.seed)
    generator = np.random.default_rng(config.seed)
    episodes: list[Episode] = []
    for class_name in sorted(dataset.classes):
        items = dataset.items(class_name)
        needed = 2 if config.sampling == "hsnet" else config.shots + 1
        if len(items) < needed:
            raise UserError(
                f"class '{class_name}' of {dataset.root} has {len(items)} image(s); "
                f"{config.shots}-shot episodes ({config.sampling} sampling) need {needed}"
            )
        for query in sorted(range(len(items)), key=lambda k: items[k].image.name):
            if config.sampling == "hsnet":
                chosen = _hsnet_supports(legacy, items, query, config.shots)
            else:
                others = [k for k in range(len(items)) if k != query]
                chosen = [int(k) for k in generator.choice(others, config.shots, replace=False)]
            episodes.append(Episode(class_name, items[query], tuple(items[k] for k in chosen)))
    return episodes


def perseg_episodes(dataset: PerSegDataset) -> list[Episode]:
    """PerSAM's episodes: each object's reference ``00`` supports each of its other images."""
    return [
        Episode(name, target, (dataset.reference(name),))
        for name in dataset.classes
        for target in dataset.targets(name)
    ]
