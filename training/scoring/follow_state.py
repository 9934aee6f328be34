"""What a following scorer keeps on disk so that a killed run resumes exactly where it was.

Layout of the state folder:

    state.json     the model it scores with (name, version, sha256), read positions of the
                   followed files, the committed size of every output, counters, the open
                   incidents (and a window layer's windows); replaced
                   atomically at each checkpoint that finds any of them changed (an idle
                   scorer leaves it as it is)
    pending-N.arrow, history-N.arrow
                   a window layer's held events and carried buckets
                   (`training.scoring.follow_windows`)
    .lock          held (a POSIX record lock) by the scorer using the folder

Outputs (scores, alerts, quarantined records, alerts the cluster refused) are JSON Lines files
that only grow. Micro-batches append to them; a checkpoint (`commit`, every few seconds)
records the read positions together with their sizes. A run killed between two checkpoints
leaves lines beyond the committed sizes; the next
run cuts them off before it reads again from the committed positions, so every event is scored
once and every alert written once. The kernel drops the lock when its holder dies, killed or not.

A state belongs to the model it began with: its totals, open incidents and held windows are
that model's, and its outputs hold that model's scores. A run with another model (another
version, or other weights under the same name and version) is refused before it opens an
output (`check_model`), unless it is told to take the state over
(`training.scoring.follow_switch`).
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

import orjson

from training.artifacts.atomic import atomic_write, open_in_place, private_folder
from training.errors import CheckpointError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
STATE_FILE = "state.json"
LOCK_FILE = ".lock"


class AppendOnly:
    """A JSON Lines output appended by micro-batches; `size` is what has been written."""

    def __init__(self, path: Path, committed: int | None, private: bool = True) -> None:
        self.path = path
        private_folder(path.parent)  # as atomic_write: score --once --alerts new/a.jsonl
        self.fd = open_in_place(path, os.O_WRONLY | os.O_APPEND, private=private)
        size = os.fstat(self.fd).st_size
        if committed is not None and size > committed:  # written after the last commit
            logger.info("%s: removing %d bytes written after the last checkpoint (they are "
                        "written again)", path, size - committed)
            os.ftruncate(self.fd, committed)
        elif committed is not None and size < committed:
            logger.warning("%s is shorter than when it was last checkpointed (%d < %d bytes): "
                           "rotated or edited; appending to it as it is", path, size, committed)
        self.size = os.fstat(self.fd).st_size

    def append(self, lines: list[bytes]) -> None:
        if not lines:
            return
        data = b"".join(lines)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        self.size += len(data)

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class FollowState:
    """The state folder of one following scorer (see the module docstring).

    Raises:
        CheckpointError: another scorer uses the folder, or its state file is unreadable.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        private_folder(self.folder)
        self._lock = open_in_place(self.folder / LOCK_FILE, os.O_RDWR)
        try:
            fcntl.lockf(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock)
            raise CheckpointError(f"{self.folder} is in use by another scorer (it holds "
                                  f"{LOCK_FILE}); stop it or give another --state folder"
                                  ) from None
        self._written = b""  # the state file's content, as loaded or last written
        self.saved = self._load()

    def _load(self) -> dict:
        path = self.folder / STATE_FILE
        if not path.exists():
            return {}
        try:
            self._written = path.read_bytes()
            saved = orjson.loads(self._written)
        except orjson.JSONDecodeError as exc:
            raise CheckpointError(f"{path}: not valid JSON ({exc}); move the folder aside to "
                                  "start over from the beginning of the logs") from None
        if not isinstance(saved, dict) or saved.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{path}: not a follow state of format {FORMAT_VERSION}; "
                                  "move the folder aside to start over")
        return saved

    @property
    def positions(self) -> list[dict]:
        return list(self.saved.get("positions", []))

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.saved.get("counts", {}))

    def check_model(self, model: dict[str, str]) -> None:
        """Refuse to go on with another model than the one the state began with.

        Args:
            model: {"name", "version", "sha256"} of the model this run scores with (sha256 of
                its weights; of the fused detector's members and rule).

        Raises:
            CheckpointError: the state was made by another model; the message says what to do.
        """
        other = self.other_model(model)
        if other is None:
            return
        began, now = other
        raise CheckpointError(
            f"{self.folder} holds the live scoring of {began}, not of {now} that this run scores "
            f"with: its read positions, totals and open incidents are that model's. To go on, "
            f"score with {began} again; to go on with {now} from these read positions and "
            "outputs, add --switch-model (the totals and open incidents start again with it); "
            f"to score with {now} from the beginning of the inputs, give it a new --state "
            "folder and new --output and --alerts files")

    def other_model(self, model: dict[str, str]) -> tuple[str, str] | None:
        """(the model the state holds, `model`) as "name version" when they differ (with the
        weights' sha256 when only those differ); None for a new state or the same model."""
        saved = self.saved.get("model")
        if not saved:
            return None  # a new state
        began, now = f"{saved['name']} {saved['version']}", f"{model['name']} {model['version']}"
        if began == now and saved.get("sha256") in (None, model["sha256"]):
            return None  # None: saved before states recorded the weights' sha256
        if began == now:  # the same version in another registry
            began += f" (weights sha256 {saved['sha256'][:12]})"
            now += f" (weights sha256 {model['sha256'][:12]})"
        return began, now

    def output(self, path: Path, private: bool = True) -> AppendOnly:
        """An output, cut back to its committed size (0600, as every file written)."""
        committed = self.saved.get("outputs", {}).get(str(path))
        return AppendOnly(path, committed, private)

    def commit(self, positions: list[dict], outputs: list[AppendOnly], counts: dict[str, int],
               model: dict[str, str], **sections: dict | None) -> bool:
        """Make the outputs durable, then record them with the read positions and the
        `sections` that are not None (a window layer's "windows",
        `training.scoring.follow_windows`; the open "incidents",
        `training.scoring.live_incidents`).

        Returns:
            Whether the state file was written: not when it would hold what it holds already
            (an idle poll: no byte read, nothing scored or appended, no file come or gone).
        """
        saved = {"format_version": FORMAT_VERSION, "model": model, "positions": positions,
                 "outputs": {str(o.path): o.size for o in outputs}, "counts": counts,
                 **{k: v for k, v in sections.items() if v is not None}}
        # Compared as bytes, not as dicts: the sections hold the callers' live objects, which
        # change after the commit; the bytes are what the file holds.
        data = orjson.dumps(saved)
        if data == self._written:
            return False  # equal output sizes: nothing appended, nothing to make durable
        for out in outputs:
            out.sync()
        # Private: it holds the open incidents (addresses, event ids, reasons from the logs).
        with atomic_write(self.folder / STATE_FILE, private=True) as handle:
            handle.write(data)
        self.saved, self._written = saved, data
        return True

    def close(self) -> None:
        os.close(self._lock)
