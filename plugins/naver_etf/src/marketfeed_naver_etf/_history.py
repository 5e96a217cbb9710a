"""Change history: compare each ETF's basket with its previous snapshot.

**Where the previous snapshot lives.** In a small local state store: one JSON file per ETF,
``<state_dir>/<code>.json``, holding the latest snapshot (``current``) and the one before it
(``previous``), each as ``as_of`` plus ``{constituent key: (name, weight %)}``. The plugin
stays independent of any sink (it needs no database to answer "what was the basket
last time"); the sink keeps the full history (``etf_holding`` rows per ``as_of`` and the
``etf_holding_change`` events), which answers "holdings of X as of D" and "what changed".
Files are written atomically (temporary file + rename), one small file per ETF, so a
crash loses at most the ETF being processed.

**Rules.**

* First snapshot of an ETF: a baseline, no change events.
* A newer ``as_of`` than the stored ``current``: compare with ``current``, which becomes
  ``previous``.
* The same ``as_of`` again (a re-run the same day): compare with ``previous`` again, so
  re-runs emit the same events (sinks upsert them) and the stored basket is refreshed.
* An older ``as_of`` (a stale page): no comparison, the state is left unchanged.
* Events: ``added`` (key new), ``removed`` (key gone), ``weight`` (both weights known and
  ``|new - old| > threshold`` percentage points). A weight appearing or vanishing (``None``
  on one side) is not a weight change.
* Keys: the constituent code when known, else ``"name:" + normalised name``
  (:func:`holding_key`).
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Literal

import msgspec
from marketfeed import EtfHolding, EtfHoldingChange

from ._config import ETF_CODE
from ._merge import holding_key

__all__ = ["Entry", "Snapshot", "StateStore", "StoredState", "diff_snapshots", "snapshot_of"]


class Entry(msgspec.Struct, frozen=True, array_like=True):
    """One constituent of a stored snapshot: ``[name, weight %]``."""

    name: str
    weight_pct: Decimal | None


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """An ETF basket reduced to what change detection compares.

    Attributes:
        etf: ETF code.
        as_of: Basket reference date (KST).
        holdings: Constituent key -> entry.
    """

    etf: str
    as_of: _dt.date
    holdings: dict[str, Entry]


class StoredState(msgspec.Struct, frozen=True, kw_only=True):
    """The content of ``<state_dir>/<code>.json``."""

    version: int = 1
    current: Snapshot
    previous: Snapshot | None = None


def snapshot_of(etf: str, as_of: _dt.date, holdings: Iterable[EtfHolding]) -> Snapshot:
    """Reduce merged holdings to a :class:`Snapshot` (keys by :func:`holding_key`)."""
    return Snapshot(
        etf=etf,
        as_of=as_of,
        holdings={holding_key(h): Entry(h.constituent_name, h.weight_pct) for h in holdings},
    )


def diff_snapshots(
    previous: Snapshot,
    current: Snapshot,
    *,
    threshold: Decimal,
    venue: str,
    receive_time: _dt.datetime,
) -> list[EtfHoldingChange]:
    """Changes from ``previous`` to ``current``: removed, then added, then weight moves
    larger than ``threshold`` percentage points; each group sorted by key."""

    def change(
        key: str,
        entry: Entry,
        kind: Literal["added", "removed", "weight"],
        old: Decimal | None = None,
        new: Decimal | None = None,
    ) -> EtfHoldingChange:
        return EtfHoldingChange(
            venue=venue,
            etf_symbol=current.etf,
            as_of=current.as_of,
            previous_as_of=previous.as_of,
            constituent_key=key,
            constituent_name=entry.name,
            change=kind,
            old_weight_pct=old,
            new_weight_pct=new,
            receive_time=receive_time,
        )

    before, after = previous.holdings, current.holdings
    changes = [
        change(key, before[key], "removed", old=before[key].weight_pct)
        for key in sorted(before.keys() - after.keys())
    ]
    changes += [
        change(key, after[key], "added", new=after[key].weight_pct)
        for key in sorted(after.keys() - before.keys())
    ]
    for key in sorted(after.keys() & before.keys()):
        old, new = before[key].weight_pct, after[key].weight_pct
        if old is not None and new is not None and abs(new - old) > threshold:
            changes.append(change(key, after[key], "weight", old=old, new=new))
    return changes


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(StoredState)


class StateStore:
    """Per-ETF JSON files under ``directory`` (created on first save).

    Blocking file I/O; call it from a worker thread in async code.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, code: str) -> Path:
        """File of ETF ``code``.

        Raises:
            ValueError: ``code`` is not a 6-character KRX code (it names a file).
        """
        if not ETF_CODE.fullmatch(code):
            raise ValueError(f"not an ETF code: {code!r}")
        return self.directory / f"{code}.json"

    def load(self, code: str) -> StoredState | None:
        """The stored state of ``code``, ``None`` when there is none.

        Raises:
            ValueError: the file exists but is not a state file (message names it).
        """
        path = self.path(code)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return _DECODER.decode(data)
        except msgspec.DecodeError as exc:
            raise ValueError(f"corrupt state file {path}: {exc}") from None

    def save(self, code: str, state: StoredState) -> None:
        """Write the state of ``code`` atomically (temporary file, then rename)."""
        path = self.path(code)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{code}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_ENCODER.encode(state))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def advance(
        state: StoredState | None, snapshot: Snapshot
    ) -> tuple[Snapshot | None, StoredState | None]:
        """Apply the module's rules to a new snapshot.

        Returns:
            ``(baseline, new_state)``: the snapshot to compare with (``None``: emit no
            changes) and the state to save afterwards (``None``: leave it unchanged).
        """
        if state is None:
            return None, StoredState(current=snapshot)
        if snapshot.as_of > state.current.as_of:
            return state.current, StoredState(current=snapshot, previous=state.current)
        if snapshot.as_of == state.current.as_of:
            return state.previous, StoredState(current=snapshot, previous=state.previous)
        return None, None
