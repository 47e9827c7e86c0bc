"""Published priors: read the PaDIS-MRI authors' EDM-style ``network-snapshot.pkl`` files safely (an
allow-listed unpickler that executes nothing from the file) and write them as package checkpoints."""
from .importer import import_published
from .unpickler import SnapshotError

__all__ = ["import_published", "SnapshotError"]
