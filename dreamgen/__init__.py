"""DreamGen, reproduced: helpers shared by the pipeline notebooks and the tests."""

__version__ = "0.1.0"
