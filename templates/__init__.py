"""The shipped default email templates, one folder per language; never edited in place."""

from importlib.resources import files
from pathlib import Path

_shipped = files(__name__)
if not isinstance(_shipped, Path):  # a zip import: Jinja's loader and `templates customize` need real files
    raise ImportError(f"printroom's templates must be installed as files, not inside {_shipped}; install with pip")
DEFAULT_TEMPLATE_DIR: Path = _shipped
