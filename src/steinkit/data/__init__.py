"""Data: 2-D toy sets, IDX image files, image preprocessing and grids."""

from . import preprocess
from .idx import FASHION_MNIST_ROOT, IMAGE_DATASETS, load_image_dataset, read_idx
from .images import make_image_grid, save_image_grid
from .preprocess import bits_per_dim, dequantize, inverse_logit, inverse_logit_transform, logit, logit_transform
from .toy import TOY_DATASETS, sample_toy

__all__ = [
    "TOY_DATASETS",
    "sample_toy",
    "IMAGE_DATASETS",
    "FASHION_MNIST_ROOT",
    "read_idx",
    "load_image_dataset",
    "make_image_grid",
    "save_image_grid",
    *preprocess.__all__,
]
