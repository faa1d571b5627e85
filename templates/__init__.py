"""The shipped default email templates, one folder per language; never edited in place."""

from importlib.resources import files
from pathlib import Path

# Jinja's loader and `templates customize` read real files: a pip install has them. (From a zip the folder would
# not exist, and `printroom templates check` and the worker's start-up check would say every template is missing.)
DEFAULT_TEMPLATE_DIR = Path(str(files(__name__)))
