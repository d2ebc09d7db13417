r"""Sample quality of image models, measured with a classifier trained here (no downloaded network).

A small MLP classifier (:class:`Classifier`, ``D -> 256 -> 64 -> K``, ReLU) is trained on the
training images (:func:`train_classifier`). For a batch of samples with pixel values in
``[0, 1]``, :class:`QualityMeter` reports

* **confidence**: the mean top-class softmax probability, with its standard error;
* **class entropy**: the entropy (nats) of the histogram of predicted classes, ``log K`` when
  every class is predicted equally often (:func:`histogram_entropy`);
* **classes covered**: the classes predicted for at least half their uniform share, ``1/(2K)``,
  of the samples (:func:`classes_covered`);
* **Fréchet distance** between Gaussians fitted to the classifier's 64 hidden features of the
  samples and of held-out real images (:func:`frechet_distance`);
* **nearest-neighbour distance**: each sample's Euclidean distance, in pixels scaled to
  ``[0, 1]``, to the closest training image (mean and median; near 0 means copies).

Entropy and Fréchet distance get bootstrap standard errors (the spread over resampled batches;
percentile intervals would be shifted, as resampling with replacement repeats samples and so
raises the Fréchet distance); :meth:`QualityMeter.compare` gives each difference between two
batches whose rows correspond (chains from the same initial states) with a paired-bootstrap
standard error and the interval ``diff ± 1.96 se``. Figures depend on the number of samples (the
Fréchet distance of a finite sample is biased upwards), so compare batches of equal size, real
images included.

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> pixels = torch.randint(0, 256, (200, 16), generator=g, dtype=torch.uint8)
    >>> labels = torch.arange(200) % 4
    >>> clf = train_classifier(pixels, labels, epochs=1, seed=0)
    >>> meter = QualityMeter(clf, unit_pixels(pixels[:100]), unit_pixels(pixels), reps=20)
    >>> q = meter.measure(unit_pixels(pixels[100:]))
    >>> q.n, round(q.nn_median, 6)   # training images: their nearest training image is themselves
    (100, 0.0)
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..data import dequantize
from ..validation import positive_int, seed_value, wrong_type

__all__ = [
    "CLASSIFIER_WIDTHS",
    "Classifier",
    "train_classifier",
    "classifier_accuracy",
    "save_classifier",
    "load_classifier",
    "unit_pixels",
    "gaussian_frechet_distance",
    "frechet_distance",
    "histogram_entropy",
    "classes_covered",
    "nearest_distances",
    "Quality",
    "Measured",
    "QualityMeter",
]

#: Hidden widths of the classifier; the last one is the feature space of the Fréchet distance.
CLASSIFIER_WIDTHS: tuple[int, int] = (256, 64)


class Classifier(nn.Module):
    """An MLP classifier ``dim -> 256 -> 64 -> n_classes`` with ReLU; :meth:`features` is its last
    hidden layer.

    Arguments:
        dim: pixels per image.
        n_classes: number of classes.
        generator: draws the initial weights (PyTorch's default initialisation otherwise).
    """

    def __init__(self, dim: int, n_classes: int = 10, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.dim, self.n_classes = positive_int(dim, "dim"), positive_int(n_classes, "n_classes")
        w1, w2 = CLASSIFIER_WIDTHS
        self.body = nn.Sequential(nn.Linear(dim, w1), nn.ReLU(), nn.Linear(w1, w2), nn.ReLU())
        self.head = nn.Linear(w2, n_classes)
        if generator is not None:
            with torch.no_grad():
                for layer in (self.body[0], self.body[2], self.head):
                    bound = 1.0 / math.sqrt(layer.in_features)
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    layer.bias.uniform_(-bound, bound, generator=generator)

    def describe(self) -> str:
        """The architecture in words.

        Example:
            >>> Classifier(784).describe()
            'MLP 784-256-64-10, ReLU'
        """
        return f"MLP {'-'.join(map(str, (self.dim, *CLASSIFIER_WIDTHS, self.n_classes)))}, ReLU"

    def features(self, x: Tensor) -> Tensor:
        """The last hidden layer's activations, ``(n, 64)``."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits, ``(n, n_classes)``."""
        return self.head(self.body(x))


def unit_pixels(pixels: Tensor) -> Tensor:
    """8-bit pixels as intensities in ``(0, 1)``: ``(k + 1/2) / 256``, the mean of their dequantized value.

    Example:
        >>> unit_pixels(torch.tensor([[0, 255]], dtype=torch.uint8)).tolist()
        [[0.001953125, 0.998046875]]
    """
    return (pixels.float() + 0.5) / 256.0


def train_classifier(
    pixels: Tensor,
    labels: Tensor,
    *,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Classifier:
    """Train a :class:`Classifier` on uint8 ``pixels`` (n, D) with integer ``labels`` (n,) by Adam on the
    cross-entropy; every epoch sees freshly dequantized pixels ``(k + U(0, 1)) / 256`` in a fresh order.

    Everything random comes from ``seed``; the classifier is returned on the CPU in eval mode.

    Example:
        >>> x = torch.randint(0, 256, (64, 9), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
        >>> train_classifier(x, torch.arange(64) % 3, epochs=1).n_classes
        3
    """
    if not isinstance(pixels, Tensor) or pixels.dim() != 2 or pixels.dtype != torch.uint8:
        raise wrong_type("pixels", "a uint8 tensor of shape (n, D)", pixels)
    if not isinstance(labels, Tensor) or labels.shape != pixels.shape[:1] or labels.dtype.is_floating_point:
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"labels must be an integer tensor of shape ({pixels.shape[0]},), got {shape}")
    epochs, batch_size, seed = positive_int(epochs, "epochs"), positive_int(batch_size, "batch_size"), seed_value(seed)
    g = torch.Generator().manual_seed(seed)
    labels = labels.long()
    clf = Classifier(pixels.shape[1], int(labels.max()) + 1, generator=g).to(device)
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    clf.train()
    for _ in range(epochs):
        x = dequantize(pixels, generator=g)
        for rows in torch.randperm(len(x), generator=g).split(batch_size):
            loss = F.cross_entropy(clf(x[rows].to(device)), labels[rows].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return clf.cpu().eval()


@torch.no_grad()
def classifier_accuracy(clf: Classifier, images: Tensor, labels: Tensor, batch: int = 2000) -> float:
    """Fraction of ``images`` (n, D) in ``[0, 1]`` whose predicted class is their label."""
    predicted = torch.cat([clf(x).argmax(1) for x in images.split(batch)])
    return float((predicted == labels.long()).float().mean())


def save_classifier(clf: Classifier, path: str | os.PathLike) -> Path:
    """Write ``clf`` to ``path`` atomically (a killed write leaves no partial file); return the path."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"dim": clf.dim, "n_classes": clf.n_classes, "state": clf.state_dict()}, tmp)
    os.replace(tmp, path)
    return path


def load_classifier(path: str | os.PathLike) -> Classifier:
    """The classifier :func:`save_classifier` wrote to ``path``, in eval mode.

    Example:
        >>> import tempfile
        >>> path = save_classifier(Classifier(4, 3), Path(tempfile.mkdtemp()) / "clf.pt")
        >>> load_classifier(path).n_classes
        3
    """
    saved = torch.load(path, map_location="cpu", weights_only=True)
    clf = Classifier(saved["dim"], saved["n_classes"])
    clf.load_state_dict(saved["state"])
    return clf.eval()


def gaussian_frechet_distance(mean1: Tensor, cov1: Tensor, mean2: Tensor, cov2: Tensor) -> float:
    r"""Fréchet (2-Wasserstein squared) distance between N(mean1, cov1) and N(mean2, cov2):

    .. math:: \|\mu_1 - \mu_2\|^2 + \mathrm{tr}\, C_1 + \mathrm{tr}\, C_2
              - 2\, \mathrm{tr} (C_2^{1/2} C_1 C_2^{1/2})^{1/2}.

    Computed in float64; both square roots come from symmetric eigendecompositions with the
    eigenvalues that rounding makes slightly negative set to 0 (exact for covariance matrices,
    which are positive semi-definite, and with no complex parts unlike a general ``sqrtm``).

    Example:
        >>> gaussian_frechet_distance(torch.zeros(2), torch.eye(2), torch.tensor([3.0, 4.0]), torch.eye(2))
        25.0
    """
    cov2 = cov2.double()
    return _frechet(mean1.double(), cov1.double(), mean2.double(), cov2, _psd_sqrt(cov2))


def _frechet(mean1: Tensor, cov1: Tensor, mean2: Tensor, cov2: Tensor, root2: Tensor) -> float:
    """The Fréchet distance with ``root2`` the square root of ``cov2`` (all float64)."""
    inner = root2 @ cov1 @ root2
    trace_root = torch.linalg.eigvalsh(0.5 * (inner + inner.T)).clamp_min(0).sqrt().sum()
    return float(((mean1 - mean2).square().sum() + cov1.trace() + cov2.trace() - 2 * trace_root).clamp_min(0))


def _psd_sqrt(cov: Tensor) -> Tensor:
    """The symmetric square root of a positive semi-definite matrix (float64)."""
    values, vectors = torch.linalg.eigh(0.5 * (cov + cov.T))
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def _moments(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and (unbiased) covariance of the rows, float64."""
    f = features.double()
    centred = f - f.mean(0)
    return f.mean(0), centred.T @ centred / max(1, f.shape[0] - 1)


def frechet_distance(features1: Tensor, features2: Tensor) -> float:
    """Fréchet distance between Gaussians fitted (mean, unbiased covariance) to two sets of feature rows.

    Example:
        >>> f = torch.randn(500, 3, generator=torch.Generator().manual_seed(0))
        >>> frechet_distance(f, f) < 1e-9
        True
    """
    return gaussian_frechet_distance(*_moments(features1), *_moments(features2))


def histogram_entropy(counts: Tensor) -> float:
    """Entropy (nats) of the distribution given by a histogram's ``counts``; ``log K`` for K equal bins.

    Example:
        >>> round(histogram_entropy(torch.tensor([5, 5, 0, 0])), 6) == round(math.log(2), 6)
        True
    """
    p = counts.double() / counts.sum()
    p = p[p > 0]
    return float((p * p.reciprocal().log()).sum())


def classes_covered(counts: Tensor, min_share: float | None = None) -> int:
    """Number of classes holding at least ``min_share`` of the predictions (default half the
    uniform share, ``1 / (2K)``).

    Example:
        >>> classes_covered(torch.tensor([50, 30, 15, 5]))   # share >= 1/8
        3
    """
    share = 0.5 / counts.numel() if min_share is None else min_share
    return int((counts.double() / counts.sum() >= share).sum())


def nearest_distances(x: Tensor, reference: Tensor, batch: int = 500) -> Tensor:
    """Each row's Euclidean distance to its nearest row of ``reference``, ``(n,)``.

    The neighbour is found with float32 products (``|x|^2 + |r|^2 - 2 x.r``); its distance is then
    recomputed from the difference itself, so a row present in ``reference`` gets exactly 0.

    Example:
        >>> ref = torch.eye(3)
        >>> nearest_distances(torch.tensor([[1.0, 0, 0], [0, 0, 2]]), ref).tolist()
        [0.0, 1.0]
    """
    ref = reference.float()
    ref_sq = ref.square().sum(1)
    out = []
    for xb in x.float().split(batch):
        d2 = ref_sq - 2 * xb @ ref.T  # |xb|^2 is the same for every candidate
        nearest = ref[d2.argmin(1)]
        out.append((xb - nearest).norm(dim=1))
    return torch.cat(out)


@dataclasses.dataclass(frozen=True)
class Quality:
    """The quality figures of one batch of samples (see the module docstring).

    Attributes:
        n: number of samples.
        confidence, confidence_se: mean top-class probability and its standard error.
        entropy, entropy_se: predicted-class entropy (nats) and its bootstrap standard error.
        covered: classes holding at least half their uniform share of the predictions.
        histogram: predicted-class counts.
        frechet, frechet_se: Fréchet distance to the held-out real images' features, bootstrap standard error.
        nn_mean, nn_median: distance to the nearest training image, mean and median.
    """

    n: int
    confidence: float
    confidence_se: float
    entropy: float
    entropy_se: float
    covered: int
    histogram: tuple[int, ...]
    frechet: float
    frechet_se: float
    nn_mean: float
    nn_median: float

    def to_dict(self) -> dict[str, Any]:
        """The figures as a JSON-friendly dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


class Measured(NamedTuple):
    """A batch's per-sample quantities, every figure is computed from them (:meth:`QualityMeter.prepare`)."""

    probs: Tensor  # (n, K) softmax probabilities
    features: Tensor  # (n, F) classifier features
    nn: Tensor  # (n,) nearest-training-image distances


class QualityMeter:
    """Measures batches of samples against a classifier, held-out real images and the training images.

    Arguments:
        classifier: a trained :class:`Classifier`.
        reference: held-out real images ``(m, D)`` in ``[0, 1]``: the Fréchet distance's reference.
        train_images: the training images ``(N, D)`` in ``[0, 1]``, for the nearest-neighbour distances.
        reps: bootstrap resamples for the intervals.
        seed: seed of the bootstrap resampling (each measurement starts from it afresh).
    """

    def __init__(self, classifier: Classifier, reference: Tensor, train_images: Tensor, *, reps: int = 200,
                 seed: int = 0) -> None:
        if not isinstance(classifier, Classifier):
            raise wrong_type("classifier", "a steinkit.experiments.sample_quality.Classifier", classifier)
        self.classifier = classifier.eval()
        self.train_images = _images(train_images, "train_images", classifier.dim)
        self.reps, self.seed = positive_int(reps, "reps"), seed_value(seed)
        with torch.no_grad():
            ref_mean, ref_cov = _moments(self.classifier.features(_images(reference, "reference", classifier.dim)))
        self._ref_mean, self._ref_cov, self._ref_root = ref_mean, ref_cov, _psd_sqrt(ref_cov)

    def measure(self, samples: Tensor | Measured) -> Quality:
        """The quality figures of ``samples`` ``(n, D)`` in ``[0, 1]`` (n >= 2), or of a prepared batch."""
        b = self.prepare(samples)
        counts = self._counts(b.probs)
        conf = b.probs.max(1).values.double()
        return Quality(
            n=len(conf), confidence=float(conf.mean()), confidence_se=float(conf.std() / math.sqrt(len(conf))),
            entropy=histogram_entropy(counts), entropy_se=self._spread(b, self._entropy),
            covered=classes_covered(counts), histogram=tuple(int(c) for c in counts),
            frechet=self._frechet(b), frechet_se=self._spread(b, self._frechet),
            nn_mean=float(b.nn.mean()), nn_median=float(b.nn.median()),
        )

    def compare(self, samples_a: Tensor | Measured, samples_b: Tensor | Measured) -> dict[str, dict[str, float]]:
        """Differences ``a - b`` of confidence, entropy, Fréchet distance and mean nearest-neighbour distance,
        each with its paired-bootstrap standard error (row i of ``a`` and of ``b`` are resampled together).

        Returns ``{figure: {"diff", "se", "low", "high"}}``, the interval being ``diff ± 1.96 se``.
        """
        a, b = self.prepare(samples_a, "samples_a"), self.prepare(samples_b, "samples_b")
        if len(a.nn) != len(b.nn):
            raise ValueError(f"samples_a and samples_b must have as many rows, got {len(a.nn)} and {len(b.nn)}")
        figures: dict[str, Callable[[Measured], float]] = {
            "confidence": lambda x: float(x.probs.max(1).values.double().mean()), "entropy": self._entropy,
            "frechet": self._frechet, "nn_mean": lambda x: float(x.nn.double().mean()),
        }
        draws = self._draws(len(a.nn))
        out = {}
        for name, fn in figures.items():
            diff = fn(a) - fn(b)
            se = float(torch.tensor([fn(_take(a, i)) - fn(_take(b, i)) for i in draws], dtype=torch.float64).std())
            out[name] = {"diff": diff, "se": se, "low": diff - 1.96 * se, "high": diff + 1.96 * se}
        return out

    @torch.no_grad()
    def prepare(self, samples: Tensor | Measured, name: str = "samples") -> Measured:
        """The per-sample quantities of ``samples`` (a batch already prepared is returned as it is):
        prepare a batch once to measure it and compare it with several others."""
        if isinstance(samples, Measured):
            return samples
        x = _images(samples, name, self.classifier.dim)
        if len(x) < 2:
            raise ValueError(f"{name} must hold at least 2 images, got {len(x)}")
        features = self.classifier.features(x)
        probs = self.classifier.head(features).softmax(1)
        return Measured(probs, features, nearest_distances(x, self.train_images))

    def _counts(self, probs: Tensor) -> Tensor:
        return torch.bincount(probs.argmax(1), minlength=self.classifier.n_classes)

    def _entropy(self, b: Measured) -> float:
        return histogram_entropy(self._counts(b.probs))

    def _frechet(self, b: Measured) -> float:
        return _frechet(*_moments(b.features), self._ref_mean, self._ref_cov, self._ref_root)

    def _draws(self, n: int) -> list[Tensor]:
        """The bootstrap's row indices: ``reps`` resamples of ``n`` rows, the same for every call."""
        g = torch.Generator().manual_seed(self.seed)
        return [torch.randint(0, n, (n,), generator=g) for _ in range(self.reps)]

    def _spread(self, b: Measured, fn: Callable[[Measured], float]) -> float:
        """Bootstrap standard error of ``fn`` over the batch's rows."""
        return float(torch.tensor([fn(_take(b, i)) for i in self._draws(len(b.nn))], dtype=torch.float64).std())


def _take(b: Measured, rows: Tensor) -> Measured:
    return Measured(b.probs[rows], b.features[rows], b.nn[rows])


def _images(x: Any, name: str, dim: int) -> Tensor:
    if not isinstance(x, Tensor) or not x.dtype.is_floating_point:
        raise wrong_type(name, "a floating torch.Tensor of images in [0, 1]", x)
    if x.dim() != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (n, {dim}), got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()) or float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError(f"{name} must be finite with values in [0, 1]")
    return x.float()
