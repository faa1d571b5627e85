"""The shipped default email templates, one folder per language; never edited in place."""

from pathlib import Path

DEFAULT_TEMPLATE_DIR = Path(__file__).parent
