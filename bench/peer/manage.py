#!/usr/bin/env python
"""manage.py of the post_office peer project (run with bench/.work/po-venv/bin/python)."""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

from django.core.management import execute_from_command_line  # noqa: E402

execute_from_command_line(sys.argv)
