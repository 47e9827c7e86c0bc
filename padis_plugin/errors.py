"""Exception types: every bad input maps to one of these, with a one-line message naming the file."""


class PadisError(Exception):
    """Base class of all errors raised on bad input by padis_plugin."""


class DataError(PadisError, ValueError):
    """A data file or array is missing, unreadable, truncated, or has the wrong keys, shape or values."""


class ConfigError(PadisError, ValueError):
    """A configuration (YAML file, CLI option or solver parameter) is invalid."""


class ParamsError(ConfigError):
    """A solver's parameters do not match its declared dataclass; each problem already names the key (by its
    dotted path in a config), so callers report it as it is."""


class CheckpointError(PadisError, ValueError):
    """A checkpoint is missing, corrupt, or does not match the requested model."""


def where(path, problem: str) -> str:
    """One-line message ``"<path>: <problem>"`` used by every error we raise."""
    return f"{path}: {problem}" if path is not None else problem
