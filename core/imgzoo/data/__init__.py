"""Training and evaluation data: folders of images, paired folders, pix2pix's aligned files and
plugin-registered datasets, with paired augmentation and a seeded train/validation split.

Everything here is torch-free (numpy and OpenCV); the trainer wraps datasets in a DataLoader.
"""

from imgzoo.data._files import IMAGE_EXTENSIONS
from imgzoo.data.base import Dataset, DatasetFactory, Sample
from imgzoo.data.cache import CachedDataset
from imgzoo.data.folder import ImageFolder
from imgzoo.data.paired import AlignedPairs, PairedFolders
from imgzoo.data.spec import open_dataset
from imgzoo.data.split import Subset, train_val_split
from imgzoo.data.transforms import PairTransform, resize_short_side

__all__ = [
    "IMAGE_EXTENSIONS",
    "AlignedPairs",
    "CachedDataset",
    "Dataset",
    "DatasetFactory",
    "ImageFolder",
    "PairTransform",
    "PairedFolders",
    "Sample",
    "Subset",
    "open_dataset",
    "resize_short_side",
    "train_val_split",
]
