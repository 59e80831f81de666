"""Few-shot test episodes: which labelled images (supports) segment which query.

**FSS-1000, HSNet's protocol** (``juhongm999/hsnet``: ``test.py``, ``data/fss.py``
``DatasetFSS.sample_episode``): every image of every test class is the query of one episode
(240 classes × 10 images = 2400 episodes), its ``shots`` supports drawn from the same class,
never the query. Episodes come in HSNet's order (classes sorted by name, queries sorted by file
name as ``glob`` + ``sorted`` give them: ``1, 10, 2, …``). Plain folders and SAMBOX folders are
tested the same way.

**PASCAL-5i, HSNet's protocol** (``data/pascal.py``): 1000 episodes per fold
(:data:`HSNET_TEST_EPISODES`); episode ``i``'s query is entry ``i mod n`` of the fold's list
(HSNet's ``idx %= len(self.img_metadata)``: the list is cycled, so a query comes back with other
supports), its supports drawn from the list's images of the query's class.

**COCO-20i, HSNet's protocol** (``data/coco.py`` ``load_frame``): 1000 episodes per fold, each
drawing its class uniformly among the fold's 20, then its query from the class's list, then its
supports from the same list.

Supports, in every HSNet protocol (:data:`SAMPLINGS`):

- ``"hsnet"`` (default): HSNet's draws, number for number: one ``numpy`` legacy ``RandomState``
  seeded once with ``seed`` (HSNet's ``fix_randseed(0)``, called once before the test loop) for
  the whole test; each draw is ``choice(n, 1, replace=False)`` over the ``n`` candidates in list
  order, and a support equal to the query is drawn again. With ``shots > 1`` a support can
  repeat, as in HSNet's 5-shot numbers.
- ``"distinct"``: ``shots`` different supports per episode, none the query, drawn with
  ``numpy.random.default_rng(seed)`` over the test in the same order (our own choice for
  K-shot runs without repeats); COCO-20i's classes and queries stay HSNet's draws.

**Kvasir-SEG, NWPU VHR-10 and LabelMe** (:func:`listed_episodes`; the paper is silent, these are
our choices, recorded in ``scores.json`` by :func:`protocol_record`): per class, every image of
the test list that holds the class is the query of one episode; its supports are drawn, with
the draws above, from the class's images of the train list (Kvasir-SEG: each val image a query,
supports from the 880 train images) or of the test list, never the query (NWPU VHR-10 and
LabelMe: "supports drawn from the others"); ``supports`` (:class:`EpisodeConfig`) chooses.

**PerSeg, PerSAM's protocol** (``persam.py``, ``eval_miou.py``): the reference ``00`` is the one
support of every other image of its object.

``count`` (:class:`EpisodeConfig`) keeps the first episodes of a protocol (HSNet's draws do not
depend on how many follow); ``--classes`` keeps the episodes of some classes after every draw
of the fold is made, so a kept episode is the one of a full run.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from samic_vos.data.coco import COCO_MASKS, Coco20iDataset
from samic_vos.data.fewshot_readers import open_test_set
from samic_vos.data.fewshot_sets import (
    FewShotDataset,
    FewShotItem,
    PerSegDataset,
    check_mask_size,
)
from samic_vos.data.fold_sets import FOLDS, FoldDataset
from samic_vos.data.listed_sets import LIST_SPLITS, ListedDataset
from samic_vos.data.names import FSS_SPLITS, LISTED_KINDS, TEST_KINDS
from samic_vos.data.pascal import Pascal5iDataset
from samic_vos.runtime.config import require, require_choice
from samic_vos.runtime.errors import UserError

SAMPLINGS = ("hsnet", "distinct")
SUPPORT_SOURCES = ("auto", *LIST_SPLITS)  # listed sets: supports from the train or test list
HSNET_TEST_EPISODES = 1000  # HSNet's DatasetPASCAL/DatasetCOCO __len__ on the test split
CSV_HEADER = "episode,class,query,supports"


@dataclass(frozen=True)
class Episode:
    """One test episode: ``supports`` (labelled) segment ``query`` of class ``class_name``.

    ``index``: the episode's number in a protocol that can revisit a query (PASCAL-5i,
    COCO-20i: HSNet's ``idx``, 0..999); ``None`` where every query is one episode.
    """

    class_name: str
    query: FewShotItem
    supports: tuple[FewShotItem, ...]
    index: int | None = None

    @property
    def name(self) -> str:
        """The stem of the episode's output files: the query's name, after the episode's
        4-digit number where there is one (``0042_2008_000123``)."""
        return self.query.name if self.index is None else f"{self.index:04d}_{self.query.name}"


@dataclass
class EpisodeConfig:
    """How test episodes are drawn (key ``episodes:`` of a few-shot job's config)."""

    shots: int = 1  # supports per episode (the paper reports 1-shot and 5-shot)
    seed: int = 0  # HSNet's test seed
    sampling: str = SAMPLINGS[0]
    # The first `count` episodes; null: the protocol's (1000 for PASCAL-5i and COCO-20i, one
    # per image for FSS-1000 and folders, one per target for PerSeg).
    count: int | None = None
    # Kvasir-SEG, NWPU VHR-10, LabelMe: the list the supports are drawn from; auto: Kvasir's
    # train list (the protocol), the other test images of the class for NWPU and LabelMe.
    supports: str = "auto"

    def __post_init__(self) -> None:
        require(self.shots >= 1, "shots", "an integer >= 1", self.shots)
        require_choice("supports", self.supports, SUPPORT_SOURCES)
        require(self.seed >= 0, "seed", "an integer >= 0", self.seed)
        require_choice("sampling", self.sampling, SAMPLINGS)
        require(self.count is None or self.count >= 1, "count", "null or >= 1", self.count)


class _Draws:
    """The random numbers of one test: HSNet's legacy generator and the ``distinct`` one."""

    def __init__(self, config: EpisodeConfig) -> None:
        self.config = config
        self.legacy = np.random.RandomState(config.seed)
        self.generator = np.random.default_rng(config.seed)

    def pick(self, pool: Sequence[FewShotItem]) -> FewShotItem:
        """One of ``pool`` as HSNet's ``np.random.choice(pool, 1, replace=False)[0]``."""
        return pool[int(self.legacy.choice(len(pool), 1, replace=False)[0])]

    def supports(self, pool: Sequence[FewShotItem], query: FewShotItem) -> tuple[FewShotItem, ...]:
        """``shots`` supports from ``pool``, never ``query``: HSNet's ``sample_episode`` loop
        (one draw at a time, a draw equal to the query drawn again) or ``distinct`` ones."""
        shots = self.config.shots
        if self.config.sampling == "distinct":
            others = [item for item in pool if item != query]
            return tuple(others[int(k)] for k in self.generator.choice(len(others), shots, False))
        chosen: list[FewShotItem] = []
        while len(chosen) < shots:
            item = self.pick(pool)
            if item != query:
                chosen.append(item)
        return tuple(chosen)


def _check_pool(
    name: str, size: int, root: object, config: EpisodeConfig, holds_query: bool = True
) -> None:
    """Raise :class:`UserError` when a class of ``size`` images cannot give the supports
    (``holds_query``: the query is one of them, never its own support)."""
    needed = 1 if config.sampling == "hsnet" else config.shots
    needed += int(holds_query)
    if size < needed:
        raise UserError(
            f"class '{name}' of {root} has {size} image(s); "
            f"{config.shots}-shot episodes ({config.sampling} sampling) need {needed}"
        )


def fss_episodes(dataset: FewShotDataset, config: EpisodeConfig | None = None) -> list[Episode]:
    """HSNet's test episodes over every class of ``dataset``: one per image, as its query.

    Deterministic for a given ``config`` (seed, shots, sampling, count) and dataset. Raises
    :class:`UserError` when a class has too few images for ``config.shots`` supports.
    """
    config = config or EpisodeConfig()
    draws = _Draws(config)
    episodes: list[Episode] = []
    for class_name in sorted(dataset.classes):
        items = dataset.items(class_name)
        _check_pool(class_name, len(items), dataset.root, config)
        for query in sorted(items, key=lambda item: item.image.name):
            episodes.append(Episode(class_name, query, draws.supports(items, query)))
    return episodes[: config.count]


def pascal_episodes(dataset: FoldDataset, config: EpisodeConfig | None = None) -> list[Episode]:
    """HSNet's PASCAL-5i test of ``dataset``'s fold: episode ``i``'s query is entry
    ``i mod n`` of the fold's list, its supports drawn from its class's entries.

    Only episodes of ``dataset.classes`` are returned (each with HSNet's ``index``).
    """
    config = config or EpisodeConfig()
    draws, kept = _Draws(config), set(dataset.classes)
    for name, pool in dataset.pools.items():
        _check_pool(name, len(pool), dataset.list_file, config)
    episodes = []
    for index in range(config.count or HSNET_TEST_EPISODES):
        class_name, query = dataset.entries[index % len(dataset.entries)]
        supports = draws.supports(dataset.pools[class_name], query)
        if class_name in kept:
            episodes.append(Episode(class_name, query, supports, index))
    return episodes


def coco_episodes(dataset: FoldDataset, config: EpisodeConfig | None = None) -> list[Episode]:
    """HSNet's COCO-20i test of ``dataset``'s fold: each episode draws a class among the fold's,
    a query from the class's list, then its supports from the same list.

    Only episodes of ``dataset.classes`` are returned (each with HSNet's ``index``).
    """
    config = config or EpisodeConfig()
    draws, kept = _Draws(config), set(dataset.classes)
    names = [dataset.class_names[c] for c in dataset.fold_classes]
    for name in names:
        _check_pool(name, len(dataset.pools[name]), dataset.list_file, config)
    episodes = []
    for index in range(config.count or HSNET_TEST_EPISODES):
        class_name = names[int(draws.legacy.choice(len(names), 1, replace=False)[0])]
        pool = dataset.pools[class_name]
        query = draws.pick(pool)
        supports = draws.supports(pool, query)
        if class_name in kept:
            episodes.append(Episode(class_name, query, supports, index))
    return episodes


def support_source(dataset: ListedDataset, config: EpisodeConfig) -> str:
    """The list a listed set's supports come from: ``config.supports``, or the set's own
    default (``auto``: Kvasir-SEG ``train``, NWPU VHR-10 and LabelMe ``test``)."""
    return dataset.supports if config.supports == "auto" else config.supports


def listed_episodes(dataset: ListedDataset, config: EpisodeConfig | None = None) -> list[Episode]:
    """Kvasir-SEG's, NWPU VHR-10's and LabelMe's test: per class (the dataset's order), every
    test image holding it is the query of one episode (list order), its supports drawn from
    the class's images of :func:`support_source` (the query never its own support), with
    HSNet's draws (``sampling``) from one generator seeded once for the whole test.

    Raises :class:`UserError` naming a class without enough images to draw from.
    """
    config = config or EpisodeConfig()
    source, draws = support_source(dataset, config), _Draws(config)
    episodes: list[Episode] = []
    for class_name in dataset.classes:
        pool = dataset.split_items(source, class_name)
        queries = dataset.items(class_name)
        where = dataset.list_files[source]
        _check_pool(class_name, len(pool), where, config, source == dataset.split)
        for query in queries:
            episodes.append(Episode(class_name, query, draws.supports(pool, query)))
    return episodes[: config.count]


def perseg_episodes(dataset: PerSegDataset) -> list[Episode]:
    """PerSAM's episodes: each object's reference ``00`` supports each of its other images."""
    return [
        Episode(name, target, (dataset.reference(name),))
        for name in dataset.classes
        for target in dataset.targets(name)
    ]


def check_supports(kind: str, config: EpisodeConfig) -> None:
    """Raise :class:`UserError` when ``config.supports`` chooses a list of a dataset ``kind``
    that has no train and test lists."""
    if config.supports != "auto" and kind not in LISTED_KINDS:
        raise UserError(
            f"episodes.supports chooses the list of {', '.join(LISTED_KINDS)}; "
            f"{kind} has none: leave it at auto"
        )


def protocol_episodes(dataset: FewShotDataset, config: EpisodeConfig) -> list[Episode]:
    """The test episodes of ``dataset`` by its protocol: PerSAM's for PerSeg (1-shot), HSNet's
    for PASCAL-5i, COCO-20i, FSS-1000 and folders, :func:`listed_episodes` for Kvasir-SEG,
    NWPU VHR-10 and LabelMe."""
    check_supports(dataset.kind, config)
    if isinstance(dataset, ListedDataset):
        return listed_episodes(dataset, config)
    if isinstance(dataset, Pascal5iDataset):
        return pascal_episodes(dataset, config)
    if isinstance(dataset, Coco20iDataset):
        return coco_episodes(dataset, config)
    if isinstance(dataset, PerSegDataset):
        if config.shots != 1:
            raise UserError(
                f"PerSeg has one reference per object ({dataset.root}): its protocol is "
                f"1-shot, not {config.shots}-shot; set episodes.shots to 1"
            )
        return perseg_episodes(dataset)[: config.count]
    return fss_episodes(dataset, config)


@dataclass
class FewShotSelection:
    """Which few-shot dataset, split or fold, and classes (key ``dataset:``)."""

    # fss1000 | perseg | folder | sambox | pascal5i | coco20i | kvasir | nwpu-vhr10 | labelme
    # (layouts: docs/fewshot_datasets.md)
    kind: str = "fss1000"
    split: str = "test"  # FSS-1000 only: HSNet's 240 test classes
    fold: int = 0  # PASCAL-5i and COCO-20i only: the fold tested (0..3)
    coco_masks: str = "auto"  # COCO-20i only: HSNet's PNGs (png), the instances JSON (json)
    classes: list[str] | None = None  # only these classes (quick runs); None: all

    def __post_init__(self) -> None:
        require_choice("kind", self.kind, TEST_KINDS)
        require_choice("split", self.split, FSS_SPLITS)
        require_choice("fold", self.fold, FOLDS)
        require_choice("coco_masks", self.coco_masks, COCO_MASKS)
        if self.classes is not None:
            require(len(self.classes) > 0, "classes", "a non-empty list or null", self.classes)

    def open(self, root: str | os.PathLike[str]) -> FewShotDataset:
        """The dataset under ``root``, checked, restricted to ``classes``."""
        dataset = open_test_set(
            self.kind, root, split=self.split, fold=self.fold, coco_masks=self.coco_masks
        )
        return dataset if self.classes is None else dataset.select(self.classes)


def protocol_record(dataset: FewShotDataset, config: EpisodeConfig) -> dict[str, object]:
    """How the episodes of ``dataset`` were made, for ``scores.json``: ``queries`` (with the
    episode count where ``config`` keeps only the first ones) and ``supports`` in words,
    ``shots``, ``sampling`` and ``seed``."""
    if isinstance(dataset, ListedDataset):
        source = support_source(dataset, config)
        queries = f"every image of {dataset.list_files[dataset.split]}, once per class it holds"
        supports = f"drawn from the class's images of {dataset.list_files[source]}"
        supports += ", never the query" if source == dataset.split else ""
    elif isinstance(dataset, PerSegDataset):
        queries, supports = "every image of an object but 00 (PerSAM)", "the object's 00"
    elif isinstance(dataset, FoldDataset):
        queries = f"HSNet's {HSNET_TEST_EPISODES} episodes of {dataset.list_file}"
        supports = "drawn from the query's class in the same list, never the query"
    else:
        queries = "every image of every class, once (HSNet's FSS-1000 protocol)"
        supports = "drawn from the query's class, never the query"
    if config.count is not None:
        queries = f"the first {config.count} episodes of: {queries}"
    return {
        "queries": queries,
        "supports": supports,
        "shots": config.shots,
        "sampling": config.sampling,
        "seed": config.seed,
    }


def episodes_csv(episodes: Sequence[Episode], root: str | os.PathLike[str]) -> str:
    """The episodes as CSV text: ``episode,class,query,supports`` (header first), one row per
    episode; paths relative to ``root`` (``/``-separated), supports joined by ``|``; the
    episode is its ``index``, else its position in ``episodes``."""

    def relative(item: FewShotItem) -> str:
        return Path(os.path.relpath(item.image, root)).as_posix()

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_HEADER.split(","))
    for position, episode in enumerate(episodes):
        number = position if episode.index is None else episode.index
        supports = "|".join(relative(item) for item in episode.supports)
        writer.writerow([number, episode.class_name, relative(episode.query), supports])
    return text.getvalue()


def check_episode_files(dataset: FewShotDataset, episodes: Sequence[Episode]) -> None:
    """Every image and mask of ``episodes`` there, readable (headers only) and of one size.

    Raises :class:`UserError` naming the first image missing (with the split list that names
    it, for PASCAL-5i and COCO-20i), unreadable, or whose mask has another size.
    """
    seen: set[Path] = set()
    source = getattr(dataset, "list_file", None)
    for episode in episodes:
        for item in (episode.query, *episode.supports):
            if item.image not in seen:
                seen.add(item.image)
                if source is not None and not item.image.is_file():
                    raise UserError(
                        f"{item.image}: image not found, named by {source}; complete the "
                        "dataset, or pass the folder that holds it"
                    )
                check_mask_size(item, dataset.mask_size(item), dataset.image_size(item))
