"""Training the demo's target variants on folds != held-out (fixed seeds, CPU, minutes).

* ``yamnet-frozen``: pretrained YAMNet body frozen, a new linear head on clip-mean 1024-d embeddings
  (exact: the clip's logits are the mean of its patches' logits, and the head is linear).
* ``yamnet-finetuned``: every YAMNet weight trained; each step sees one random 0.96 s patch per clip.
* ``ast-scratch``: a small ``ASTForAudioClassification`` trained from random initialisation.
All functions take waveforms (n, samples) float32 and integer labels (n,) and return the trained module,
left on ``device`` (``activations.device``; features are computed on the CPU, batches moved to the device).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from and_engine.models import yamnet_frontend as fe
from and_engine.models.base import ModelError, TargetModel

DEFAULTS = {  # kind -> (epochs, learning rate, batch size)
    "yamnet-frozen": (200, 1e-2, 0),  # batch 0 = full batch
    "yamnet-finetuned": (6, 1e-4, 16),
    "ast-scratch": (25, 5e-4, 16),
}


class TrainingError(ModelError):
    """Training cannot run (no training clips, a label outside the class list, unknown kind)."""


def _check(waves: np.ndarray, labels: np.ndarray, n_classes: int) -> None:
    if len(waves) == 0 or len(waves) != len(labels):
        raise TrainingError(f"need >= 1 training clip and one label per clip, got {len(waves)} / {len(labels)}")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise TrainingError(f"labels must be class indices in [0, {n_classes})")


def _batches(n: int, batch_size: int, gen: torch.Generator):
    order = torch.randperm(n, generator=gen)
    size = n if batch_size <= 0 else batch_size
    for start in range(0, n, size):
        yield order[start : start + size]


@torch.no_grad()
def clip_embeddings(net, waves: np.ndarray, batch_size: int = 16, device: str = "cpu") -> torch.Tensor:
    """YAMNet (n, samples) at 16 kHz -> (n, 1024) clip-mean embeddings (on ``device``)."""
    out = []
    for start in range(0, len(waves), batch_size):
        chunk = waves[start : start + batch_size]
        emb = net.embed(fe.waveform_patches(chunk).to(device))
        out.append(emb.reshape(len(chunk), -1, emb.shape[-1]).mean(dim=1))
    return torch.cat(out)


def train_linear_head(net, waves: np.ndarray, labels: np.ndarray, epochs: int, lr: float, seed: int,
                      device: str = "cpu"):
    """yamnet-frozen: fit ``net.classifier`` (fresh, n_classes outputs) on frozen clip embeddings."""
    _check(waves, labels, net.classifier.out_features)
    torch.manual_seed(seed)
    net.to(device)
    emb = clip_embeddings(net, waves, device=device)
    y = torch.as_tensor(labels, dtype=torch.long, device=device)
    head = net.classifier
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(head(emb), y).backward()
        opt.step()
    return net


def train_yamnet_full(net, waves: np.ndarray, labels: np.ndarray, epochs: int, lr: float, seed: int,
                      batch_size: int = 16, device: str = "cpu"):
    """yamnet-finetuned: all weights, Adam (head at 10x lr), one random patch per clip per step."""
    _check(waves, labels, net.classifier.out_features)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    mels = fe.patches(fe.log_mel(waves))  # (n, P, 96, 64), computed once
    y = torch.as_tensor(labels, dtype=torch.long)
    net.to(device)
    body = [p for n, p in net.named_parameters() if not n.startswith("classifier")]
    opt = torch.optim.Adam([{"params": body, "lr": lr}, {"params": net.classifier.parameters(), "lr": lr * 10}])
    net.train()
    for _ in range(epochs):
        for idx in _batches(len(y), batch_size, gen):
            pick = torch.randint(mels.shape[1], (len(idx),), generator=gen)
            x = mels[idx, pick].unsqueeze(1).to(device)
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y[idx].to(device)).backward()
            opt.step()
    net.eval()
    return net


def train_ast(hf_model, feature_extractor, waves: np.ndarray, labels: np.ndarray, epochs: int, lr: float,
              seed: int, batch_size: int = 16, device: str = "cpu"):
    """ast-scratch: AdamW on the whole AST; features computed once, random circular time shifts."""
    _check(waves, labels, hf_model.config.num_labels)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    feats = feature_extractor(list(waves), sampling_rate=feature_extractor.sampling_rate, return_tensors="np")
    x_all = torch.from_numpy(np.asarray(feats["input_values"], dtype=np.float32))  # (n, frames, mel)
    y = torch.as_tensor(labels, dtype=torch.long)
    hf_model.to(device)
    opt = torch.optim.AdamW(hf_model.parameters(), lr=lr, weight_decay=0.01)
    hf_model.train()
    for _ in range(epochs):
        for idx in _batches(len(y), batch_size, gen):
            shift = int(torch.randint(x_all.shape[1], (1,), generator=gen))
            x = torch.roll(x_all[idx], shifts=shift, dims=1).to(device)
            opt.zero_grad()
            nn.functional.cross_entropy(hf_model(input_values=x).logits, y[idx].to(device)).backward()
            opt.step()
    hf_model.eval()
    return hf_model


def heldout_accuracy(target: TargetModel, waves: np.ndarray, labels: np.ndarray, batch_size: int = 16) -> float:
    """Top-1 accuracy of ``target`` on (n, samples) held-out clips with integer labels (n,)."""
    if len(waves) == 0:
        return float("nan")
    pred = target.logits(waves, batch_size=batch_size).argmax(axis=1)
    return float((pred == np.asarray(labels)).mean())
