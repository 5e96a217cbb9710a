from collections.abc import Iterator

import pytest
from marketfeed import _book

_cbook = _book._cbook  # None when not built or with MARKETFEED_PURE_PYTHON=1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", params=["c", "python"])
def book_implementation(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a module's tests against the book engine's C speedups and against its
    pure-Python implementation (``marketfeed._book._c`` switched for the module)."""
    saved = _book._c
    if request.param == "c":
        if _cbook is None:
            pytest.skip("marketfeed._cbook is not loaded (not built, or MARKETFEED_PURE_PYTHON)")
        _book._c = _cbook
    else:
        _book._c = None
    yield request.param
    _book._c = saved
