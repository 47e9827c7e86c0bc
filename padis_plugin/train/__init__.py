"""Training of the PaDIS patch prior and the whole-image EDM prior (config, loss, training images, loop)."""
from .data import TrainingImages, load_training_images, select_subset
from .loss import EDMLoss, PatchEDMLoss, edm_weight, sample_sigma
from .config import TrainConfig
from .loop import Trainer, latest_checkpoint, read_log, train

__all__ = ["EDMLoss", "PatchEDMLoss", "TrainConfig", "Trainer", "TrainingImages", "edm_weight",
           "latest_checkpoint", "load_training_images", "read_log", "sample_sigma", "select_subset", "train"]
