"""Read an EDM-style ``network-snapshot.pkl`` without executing anything from it.

EDM's ``torch_utils.persistence`` pickles each network object as a call
``_reconstruct_persistent_obj(meta)`` whose ``meta`` holds the class's module source text, its name and the
object's ``__dict__`` (``state``); a plain ``pickle.load`` would ``exec`` that source. Here every global a pickle
may name goes through an explicit allow-list, and persistent objects come back as inert
:class:`PersistentObject` records (class name, state; the source is kept as text and never compiled).

Allowed: the persistence hook, EDM's ``EasyDict``, torch's tensor / parameter rebuilders (storages are the bytes
of a ``torch.save``d storage, read with ``torch.load(weights_only=True)``, as written by torch 1.12 and today's),
``collections.OrderedDict``, ``torch.nn.ModuleDict`` (as a record), numpy scalars and numeric dtypes, and the
harmless builtins protocol 2 uses (``set``, ``frozenset``, ``_codecs.encode`` for latin-1 bytes). Anything else
(``posix.system``, ``builtins.eval``, ``subprocess.Popen``, ...) is refused with :class:`SnapshotError`.
"""
from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import CheckpointError, where


class SnapshotError(CheckpointError):
    """A published snapshot that is unsafe, damaged or not a network this package can import."""


@dataclass
class PersistentObject:
    """What ``_reconstruct_persistent_obj(meta)`` would have built, as data: nothing of it runs."""

    class_name: str
    state: dict
    module_src: str = field(default="", repr=False)  # text only: searched, never compiled

    @property
    def modules(self) -> dict:
        return self.state.get("_modules") or {}

    @property
    def init_kwargs(self) -> dict:
        kw = self.state.get("_init_kwargs")
        return dict(kw) if isinstance(kw, dict) else {}


class ModuleRecord:
    """Stand-in for a plain ``torch.nn`` container (``ModuleDict``): its pickled ``__dict__``, nothing more."""

    class_name = "ModuleDict"
    state: dict = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {}

    @property
    def modules(self) -> dict:
        return self.state.get("_modules") or {}


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict`` (a dict with attribute access in EDM; here just a dict)."""

    def __setstate__(self, state):
        pass


_PERSISTENCE_MODULES = ("torch_utils.persistence",)
_EASYDICT_MODULES = ("dnnlib.util", "dnnlib")
_SAFE_NUMPY_KINDS = "biufc"  # bool, int, uint, float, complex: no object or void dtypes


def _reconstruct_persistent_obj(meta):
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise SnapshotError(f"a persistent object of unsupported type {meta.get('type') if isinstance(meta, dict) else meta!r}")
    state = meta.get("state")
    src = meta.get("module_src")
    return PersistentObject(class_name=str(meta.get("class_name")), state=state if isinstance(state, dict) else {},
                            module_src=src if isinstance(src, str) else "")


def _load_storage(payload):
    """The storage inside a ``torch.save``d storage payload, read with ``weights_only=True``."""
    if not isinstance(payload, (bytes, bytearray)):
        raise SnapshotError("a tensor storage payload is not bytes")
    try:
        storage = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for damaged payloads
        raise SnapshotError(f"cannot read a tensor storage ({type(e).__name__}: {str(e).splitlines()[0][:120]})") \
            from None
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise SnapshotError(f"a tensor storage payload holds {type(storage).__name__}, not a storage")
    return storage


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise SnapshotError("a tensor is built from something other than a storage")
    if not all(isinstance(v, int) for v in (storage_offset, *size, *stride)):
        raise SnapshotError("a tensor has a non-integer size, stride or offset")
    try:
        return torch._utils._rebuild_tensor(storage, storage_offset, tuple(size), tuple(stride))
    except RuntimeError as e:
        raise SnapshotError(f"a tensor does not fit its storage ({str(e).splitlines()[0][:120]})") from None


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    if not isinstance(data, torch.Tensor):
        raise SnapshotError("a parameter is built from something other than a tensor")
    return data


def _numpy_dtype(name, align=False, copy=False):
    try:
        dt = np.dtype(name)
    except TypeError:
        raise SnapshotError(f"refuses numpy dtype {name!r}") from None
    if dt.kind not in _SAFE_NUMPY_KINDS:
        raise SnapshotError(f"refuses numpy dtype {name!r} (only numeric dtypes are read)")
    return np.dtype(name, bool(align), True)


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.kind not in _SAFE_NUMPY_KINDS or not isinstance(data, bytes):
        raise SnapshotError("refuses a numpy scalar that is not a plain number")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _latin1_encode(text, encoding="latin1"):
    # Protocol-2 pickles store bytes as _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise SnapshotError("refuses _codecs.encode other than latin-1 text -> bytes")
    return text.encode("latin1")


def _newobj(cls, *args):
    if cls is EasyDict:
        return EasyDict()
    if cls is ModuleRecord:
        return ModuleRecord()
    raise SnapshotError(f"refuses to build {getattr(cls, '__name__', cls)!r}")


def _reconstructor(cls, base, state):
    if base is not object or state is not None:
        raise SnapshotError("refuses copyreg._reconstructor with a base other than object")
    return _newobj(cls)


_TORCH_DTYPES = {name: getattr(torch, name) for name in (
    "float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool",
    "complex64", "complex128")}

_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "object"): object,
    ("__builtin__", "set"): set, ("__builtin__", "frozenset"): frozenset, ("__builtin__", "object"): object,
    ("_codecs", "encode"): _latin1_encode,
    ("copyreg", "__newobj__"): _newobj, ("copy_reg", "__newobj__"): _newobj,
    ("copyreg", "_reconstructor"): _reconstructor, ("copy_reg", "_reconstructor"): _reconstructor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("torch", "Size"): torch.Size,
    ("torch.nn.modules.container", "ModuleDict"): ModuleRecord,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar, ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    **{("torch", name): dt for name, dt in _TORCH_DTYPES.items()},
}


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` returns only allow-listed, inert callables."""

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if name == "_reconstruct_persistent_obj" and _endswith(module, _PERSISTENCE_MODULES):
            return _reconstruct_persistent_obj
        if name == "EasyDict" and _endswith(module, _EASYDICT_MODULES):
            return EasyDict
        raise SnapshotError(f"refuses global '{module}.{name}'")

    def persistent_load(self, pid):
        raise SnapshotError("refuses a persistent id (not an EDM snapshot pickle)")


def _endswith(module: str, names) -> bool:
    return any(module == n or module.endswith("." + n) for n in names)


def read_snapshot(path) -> object:
    """Unpickle ``path`` with :class:`RestrictedUnpickler` -> the top-level object (for an EDM snapshot, a dict
    ``{ema, loss_fn, augment_pipe, dataset_kwargs}`` with :class:`PersistentObject` networks).

    Every failure (a refused global, a truncated or damaged file) is a :class:`SnapshotError` naming ``path``.
    """
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f).load()
    except SnapshotError as e:
        raise SnapshotError(where(path, str(e))) from None
    except (OSError, MemoryError) as e:
        if isinstance(e, OSError) and e.filename is not None:
            raise
        raise SnapshotError(where(path, f"cannot read ({type(e).__name__}: {e})")) from None
    except Exception as e:  # EOFError, UnpicklingError, IndexError, ... from a damaged pickle stream
        text = " ".join(str(e).split())[:160]
        raise SnapshotError(where(path, f"not a readable pickle (truncated or damaged: {type(e).__name__}"
                                        f"{': ' + text if text else ''})")) from None
