"""Sphinx configuration of the course website.

`website/build.py` prepares the sources (the lesson notebooks with their
recorded outputs, the home page) in build/site-src/ and runs Sphinx with this
folder as its configuration folder. Nothing is executed: the outputs come
from the recorded full runs in website/runs/.
"""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("website_build", Path(__file__).with_name("build.py"))
_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_build)

REPOSITORY_URL = _build.repository_url()  # set once, in pyproject.toml's [project.urls]

project = _build.course_title()
html_title = project
author = "the course's authors"

extensions = [
    "myst_nb",  # notebooks and MyST Markdown
    "sphinx-mathjax-offline",  # MathJax served from the site itself: no CDN request
]

# The site shows recorded outputs and never runs a notebook.
nb_execution_mode = "off"
nb_merge_streams = True  # one block per cell for what Keras prints epoch by epoch

# _notebooks/: the committed notebooks that "Download notebook" serves, not pages.
exclude_patterns = ["_build", "**.ipynb_checkpoints", "_notebooks"]
suppress_warnings = ["myst.header"]  # lessons may skip a heading level

html_theme = "sphinx_book_theme"
html_favicon = "favicon.svg"  # else the browser asks for /favicon.ico, which is not there (a 404)
html_copy_source = False  # "Download notebook" on each lesson page serves the committed notebook
html_show_sourcelink = False
html_last_updated_fmt = None
# The theme logs a console error for an unset mode ("Got invalid theme mode: .").
html_context = {"default_mode": "auto"}
html_theme_options = {
    "repository_url": REPOSITORY_URL,
    "repository_branch": "main",
    "path_to_docs": "",  # a lesson's page source has the notebook's own path in the repository
    "use_repository_button": True,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "launch_buttons": {"colab_url": "https://colab.research.google.com"},
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
