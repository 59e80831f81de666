"""HSNet's learner (juhongm999/hsnet, ``model/learner.py``) rewritten from its description, for
parity tests: a random checkpoint in HSNet's key layout, and HSNet's forward pass over it with
every bilinear resize done in numpy by the ``align_corners=True`` formula.

Nothing here imports samic_vos's network code: the checks compare two independent writings.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PREFIX = "module.hpn_learner."  # HSNet saves nn.DataParallel(model).state_dict()
CHANNELS = (16, 64, 128)
# (block name, input channels, kernel sizes, support strides), HSNet's ResNet-50 learner.
SQUEEZE = (
    ("encoder_layer4", 3, (3, 3, 3), (2, 2, 2)),
    ("encoder_layer3", 6, (5, 3, 3), (4, 2, 2)),
    ("encoder_layer2", 4, (5, 5, 3), (4, 4, 2)),
)
MIX = ("encoder_layer4to3", "encoder_layer3to2")


def hsnet_correlation(
    query_feats: list[torch.Tensor],
    support_feats: list[torch.Tensor],
    support_masks: list[torch.Tensor],
    level_blocks: tuple[int, int, int] = (4, 6, 3),
) -> list[torch.Tensor]:
    """HSNet's ``mask_feature`` + ``Correlation.multilayer_correlation`` in float64.

    Args:
        query_feats, support_feats: the 13 maps ``(B, C, h, w)`` of layer2–layer4, fine to
            coarse (query = target, support = reference).
        support_masks: per feature map, the support mask at its grid ``(B, 1, h, w)`` (HSNet
            samples a binary mask bilinearly with aligned corners; SAMIC pools its heat map).

    Returns:
        ``[layer4, layer3, layer2]`` tensors ``(B, L, hq, wq, hs, ws)``: per feature pair, every
        vector divided by its channel norm *plus* 1e-5 (support features after the mask
        multiplies them), dot products clamped at 0, stacked in feature order.
    """
    corrs = []
    for q, s, m in zip(query_feats, support_feats, support_masks, strict=True):
        q, s = q.double(), s.double() * m.double()
        q = q / (q.pow(2).sum(1, keepdim=True).sqrt() + 1e-5)
        s = s / (s.pow(2).sum(1, keepdim=True).sqrt() + 1e-5)
        corrs.append(torch.einsum("bcij,bckl->bijkl", q, s).clamp(min=0))
    ends = np.cumsum(level_blocks)
    blocks = zip(level_blocks, ends, strict=True)
    levels = [torch.stack(corrs[end - n : end], dim=1) for n, end in blocks]
    return levels[::-1]


def bilinear_align_corners(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize the last two dims of ``x`` to ``size``: output pixel i reads input position
    ``i · (n_in − 1) / (n_out − 1)`` (corner pixels coincide), linearly between neighbours."""

    def axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.arange(n_out) * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(1)
        lo = np.minimum(np.floor(pos).astype(int), n_in - 1)
        return lo, np.minimum(lo + 1, n_in - 1), pos - lo

    y0, y1, fy = axis(x.shape[-2], size[0])
    x0, x1, fx = axis(x.shape[-1], size[1])
    rows = x[..., y0, :] * (1 - fy)[:, None] + x[..., y1, :] * fy[:, None]
    return rows[..., x0] * (1 - fx) + rows[..., x1] * fx


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return torch.from_numpy(bilinear_align_corners(x.double().numpy(), size))


def random_hsnet_checkpoint(seed: int, inch: tuple[int, int, int] = (3, 6, 4)) -> dict:
    """A state dict with HSNet's keys and shapes, random values (and one backbone key)."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {"module.backbone.conv1.weight": torch.randn(64, 3, 7, 7)}

    def conv(name: str, cin: int, cout: int, k: int) -> None:
        scale = (1.0 / (cin * k * k)) ** 0.5
        state[f"{PREFIX}{name}.weight"] = torch.randn(cout, cin, k, k, generator=gen) * scale
        state[f"{PREFIX}{name}.bias"] = torch.randn(cout, generator=gen) * 0.1

    def block(name: str, cin: int, outs: tuple[int, ...], kernels: tuple[int, ...]) -> None:
        for i, (cout, k) in enumerate(zip(outs, kernels, strict=True)):
            conv(f"{name}.{3 * i}.conv1", cin, cout, k)
            conv(f"{name}.{3 * i}.conv2", cin, cout, k)
            state[f"{PREFIX}{name}.{3 * i + 1}.weight"] = 1 + 0.1 * torch.randn(cout, generator=gen)
            state[f"{PREFIX}{name}.{3 * i + 1}.bias"] = 0.1 * torch.randn(cout, generator=gen)
            cin = cout

    for (name, _, kernels, _), cin in zip(SQUEEZE, inch, strict=True):
        block(name, cin, CHANNELS, kernels)
    for name in MIX:
        block(name, CHANNELS[2], (CHANNELS[2],) * 3, (3, 3, 3))
    conv("decoder1.0", CHANNELS[2], CHANNELS[2], 3)
    conv("decoder1.2", CHANNELS[2], CHANNELS[1], 3)
    conv("decoder2.0", CHANNELS[1], CHANNELS[1], 3)
    conv("decoder2.2", CHANNELS[1], 2, 3)
    return state


def _center_pivot(x: torch.Tensor, state: dict, name: str, stride: int) -> torch.Tensor:
    """HSNet's CenterPivotConv4d: conv1 over the query dims at strided support positions,
    conv2 over the support dims with the stride; their sum."""
    b, c, ha, wa, hb, wb = x.shape
    w1, b1 = state[f"{name}.conv1.weight"].double(), state[f"{name}.conv1.bias"].double()
    w2, b2 = state[f"{name}.conv2.weight"].double(), state[f"{name}.conv2.bias"].double()
    pad = w1.shape[-1] // 2
    pruned = x[..., ::stride, ::stride]
    ph, pw = pruned.shape[-2:]
    out1 = F.conv2d(pruned.permute(0, 4, 5, 1, 2, 3).reshape(-1, c, ha, wa), w1, b1, padding=pad)
    out1 = out1.view(b, ph, pw, -1, ha, wa).permute(0, 3, 4, 5, 1, 2)
    out2 = F.conv2d(
        x.permute(0, 2, 3, 1, 4, 5).reshape(-1, c, hb, wb), w2, b2, stride=stride, padding=pad
    )
    out2 = out2.view(b, ha, wa, -1, *out2.shape[-2:]).permute(0, 3, 1, 2, 4, 5)
    return out1 + out2


def _block(x: torch.Tensor, state: dict, name: str, strides: tuple[int, ...]) -> torch.Tensor:
    for i, stride in enumerate(strides):
        x = _center_pivot(x, state, f"{PREFIX}{name}.{3 * i}", stride)
        gn_w, gn_b = (
            state[f"{PREFIX}{name}.{3 * i + 1}.weight"],
            state[f"{PREFIX}{name}.{3 * i + 1}.bias"],
        )
        x = F.relu(F.group_norm(x, 4, gn_w.double(), gn_b.double()))
    return x


def _resize_query(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    b, c, ha, wa, hb, wb = x.shape
    y = _resize(x.permute(0, 1, 4, 5, 2, 3), size)  # query dims last
    return y.permute(0, 1, 4, 5, 2, 3)


def _conv(x: torch.Tensor, state: dict, name: str) -> torch.Tensor:
    weight, bias = state[f"{PREFIX}{name}.weight"], state[f"{PREFIX}{name}.bias"]
    return F.conv2d(x, weight.double(), bias.double(), padding=1)


def hsnet_foreground(
    pyramid: list[torch.Tensor], state: dict, out_size: tuple[int, int]
) -> torch.Tensor:
    """HSNet's foreground probability ``(B, H, W)`` (float64) from the 3 hypercorrelations
    (layer4, layer3, layer2): learner, decoder, upsample to ``out_size``, softmax channel 1.

    HSNet's decoder upsample is ``(2·W, 2·W)`` (square inputs only); it is ``(2·H, 2·W)`` here,
    the same on square inputs.
    """
    sq4, sq3, sq2 = (
        _block(c.double(), state, name, strides)
        for c, (name, _, _, strides) in zip(pyramid, SQUEEZE, strict=True)
    )
    mixed = _block(_resize_query(sq4, sq3.shape[2:4]) + sq3, state, MIX[0], (1, 1, 1))
    mixed = _block(_resize_query(mixed, sq2.shape[2:4]) + sq2, state, MIX[1], (1, 1, 1))
    x = mixed.flatten(4).mean(-1)
    x = F.relu(_conv(F.relu(_conv(x, state, "decoder1.0")), state, "decoder1.2"))
    x = _resize(x, (2 * x.shape[-2], 2 * x.shape[-1]))
    x = _conv(F.relu(_conv(x, state, "decoder2.0")), state, "decoder2.2")
    return torch.softmax(_resize(x, out_size), dim=1)[:, 1]


# --- HSNet's test protocol of PASCAL-5i and COCO-20i (data/pascal.py, data/coco.py, test.py,
# common/evaluation.py, common/logger.py, model/hsnet.py), restated over plain names. ---


def _hsnet_support_loop(pool: list[str], query: str, shots: int) -> list[str]:
    """``sample_episode``'s loop: draw from the global numpy state, skip the query."""
    supports: list[str] = []
    while True:
        name = np.random.choice(pool, 1, replace=False)[0]
        if query != name:
            supports.append(str(name))
        if len(supports) == shots:
            return supports


def hsnet_pascal_test(lines: list[str], shots: int, count: int = 1000) -> list[tuple]:
    """HSNet's PASCAL-5i test draws from a val list's lines ``name__NN``:
    ``[(query, class index, supports)]``, after ``fix_randseed(0)``."""
    metadata = [(line.split("__")[0], int(line.split("__")[1]) - 1) for line in lines]
    classwise: dict[int, list[str]] = {}
    for name, class_id in metadata:
        classwise.setdefault(class_id, []).append(name)
    np.random.seed(0)
    episodes = []
    for idx in range(count):
        query, class_id = metadata[idx % len(metadata)]
        episodes.append((query, class_id, _hsnet_support_loop(classwise[class_id], query, shots)))
    return episodes


def hsnet_coco_test(classwise: dict[int, list[str]], fold: int, shots: int, count: int = 1000):
    """HSNet's COCO-20i test draws from its per-class lists: ``[(query, class, supports)]``."""
    class_ids = [fold + 4 * v for v in range(20)]
    np.random.seed(0)
    episodes = []
    for _ in range(count):
        class_id = int(np.random.choice(class_ids, 1, replace=False)[0])
        query = str(np.random.choice(classwise[class_id], 1, replace=False)[0])
        episodes.append((query, class_id, _hsnet_support_loop(classwise[class_id], query, shots)))
    return episodes


def hsnet_vote(logit_argmaxes: list[torch.Tensor]) -> torch.Tensor:
    """``predict_mask_nshot``'s K-shot rule on K (H, W) 0/1 predictions (K > 1)."""
    agg = torch.stack(logit_argmaxes).long().sum(0)[None]  # (1, H, W)
    max_vote = agg.view(1, -1).max(dim=1)[0]
    max_vote = torch.stack([max_vote, torch.ones_like(max_vote).long()]).max(dim=0)[0]
    pred = agg.float() / max_vote.view(1, 1, 1)
    pred[pred < 0.5] = 0
    pred[pred >= 0.5] = 1
    return pred[0]


def hsnet_scores(
    episodes: list[tuple[int, np.ndarray, np.ndarray]],
    class_ids: list[int],
    nclass: int,
    size: tuple[int, int] | None,
    ignore: bool,
) -> tuple[float, float, np.ndarray]:
    """HSNet's mIoU, FB-IoU (x 100) and per-class foreground IoU of ``class_ids``, from episodes
    ``(class index, prediction 0/1 (H, W), raw label map (H, W))``: the label map resized by
    nearest to ``size`` (``None``: kept), the class taken as 1 and, with ``ignore``, 255 as the
    boundary; then ``Evaluator.classify_prediction`` and ``AverageMeter`` in float32."""
    inter_buf = torch.zeros(2, nclass)
    union_buf = torch.zeros(2, nclass)
    for class_id, pred, labels in episodes:
        mask = torch.from_numpy(labels.astype(np.float32))
        prediction = torch.from_numpy(pred.astype(np.float32))
        if size is not None:
            mask = F.interpolate(mask[None, None], size, mode="nearest")[0, 0]
            prediction = F.interpolate(prediction[None, None], size, mode="nearest")[0, 0]
        boundary = (mask / 255).floor()
        gt = (mask == class_id + 1).float()
        if ignore:
            gt = gt + boundary * 255
            prediction = prediction.clone()
            prediction[gt == 255] = 255
        inter = prediction[prediction == gt]
        area_inter = torch.histc(inter, bins=2, min=0, max=1) if inter.numel() else torch.zeros(2)
        area_pred = torch.histc(prediction, bins=2, min=0, max=1)
        area_gt = torch.histc(gt, bins=2, min=0, max=1)
        inter_buf[:, class_id] += area_inter
        union_buf[:, class_id] += area_pred + area_gt - area_inter
    ids = torch.tensor(class_ids)
    iou = inter_buf / torch.max(torch.stack([union_buf, torch.ones_like(union_buf)]), dim=0)[0]
    iou = iou.index_select(1, ids)
    miou = iou[1].mean() * 100
    fb_iou = (
        inter_buf.index_select(1, ids).sum(dim=1) / union_buf.index_select(1, ids).sum(dim=1)
    ).mean() * 100
    return float(miou), float(fb_iou), (iou[1] * 100).numpy()
