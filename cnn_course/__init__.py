"""Plumbing for the Keras CNN course: data, shapes, plots, and running the lessons.

The Keras code each lesson teaches lives in the notebooks; this package only
holds what would distract from it.
"""

__version__ = "0.1.0"
