"""Build script: the optional C speedups of the book engine (``marketfeed._cbook``).

Everything else about the distribution is declared in ``pyproject.toml``. The extension is
``optional``: without a C compiler (or Python headers) the install still succeeds and the
book engine runs its pure-Python implementation (``marketfeed.book.SPEEDUPS`` is then
``False``).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "marketfeed._cbook",
            sources=["src/marketfeed/_cbook.c"],
            optional=True,
        )
    ]
)
