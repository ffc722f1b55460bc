"""The records of one training run: config, console log, scalar history, TensorBoard events.

A run directory written through :class:`RunRecords` holds::

    <out_dir>/config.yaml   the resolved config (loadable again with get_config(path)); its header
                            comment lists the settings that differ from the defaults
    <out_dir>/log.txt       what the console showed, each line time-stamped (resumes included)
    <out_dir>/events/       TensorBoard event files (only when tensorboard is installed and
                            config.tensorboard is True)
    <out_dir>/samples/      PNGs written by ``image(..., save_png=True)``

The **history** is a plain dict, JSON-friendly and loadable with ``torch.load(weights_only=True)``::

    {"<stage>/<name>": [[step, value], ...], ...}     e.g. {"srresnet/loss": [[5, 0.12], ...]}

Each series is strictly increasing in ``step``. ``step`` should be the run's global iteration
counter (monotonic across stages), so curves of both stages line up and resuming works: the
checkpoint carries ``records.state_dict()`` (the history) and a resumed run calls
``load_state_dict`` with it. The first value logged after a resume, at step ``s``, drops every
history entry at step >= ``s`` and TensorBoard is opened with ``purge_step=s``, which discards the
events the crashed process wrote after its checkpoint: the history and the curves then hold
every step exactly once. (So: log everything for an iteration *before* saving its checkpoint.)

    >>> with RunRecords("runs/a", cfg) as rec:                     # doctest: +SKIP
    ...     rec.scalars(10, {"loss": 0.1, "lr": 1e-4}, stage="srresnet")
    ...     ckpt["history"] = rec.state_dict()
"""
from __future__ import annotations

import datetime as _dt
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import yaml

from course_sr.config import non_defaults, to_plain
from course_sr.plumbing.checkpoint import load_checkpoint

History = dict[str, list[list[float]]]


def _summary_writer_class():
    """``torch.utils.tensorboard.SummaryWriter``, or None when the tensorboard package is absent."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises ImportError when `tensorboard` is not installed
        return None
    return SummaryWriter


def _console(msg: str) -> None:
    # tqdm.write keeps a live progress bar intact (the bar is redrawn below the message).
    try:
        from tqdm import tqdm

        tqdm.write(msg)
    except ImportError:  # pragma: no cover - tqdm is a dependency
        print(msg, flush=True)


def config_yaml(config: Mapping[str, Any]) -> str:
    """The resolved config as YAML text, headed by a comment listing its non-default settings.

    The body is flat ``key: value`` lines in the defaults' order, so ``get_config(path)`` reads
    the file back into the same config.
    """
    def lines(mapping):  # one `key: value` line per key, lists inline
        out = ""
        for k, v in to_plain(mapping).items():
            if isinstance(v, (list, dict)):
                out += f"{k}: " + yaml.safe_dump(v, default_flow_style=True, width=10_000)
            else:
                out += yaml.safe_dump({k: v}, default_flow_style=False, width=10_000)
        return out

    changed = non_defaults(config)
    head = "# course_sr run config (resolved). Rebuild it with: get_config('<this file>')\n"
    if changed:
        head += "# settings that differ from the defaults:\n"
        head += "".join("#   " + line + "\n" for line in lines(changed).splitlines())
    else:
        head += "# every setting is the default\n"
    return head + lines(config)


def format_settings(settings: Mapping[str, Any]) -> str:
    """``key=value`` pairs on one line (how a run announces its non-default settings)."""
    return ", ".join(f"{k}={v!r}" for k, v in settings.items()) if settings else "(none)"


class RunRecords:
    """Console + ``log.txt`` + history + TensorBoard for one run (see the module docstring).

    Args:
        out_dir: the run directory (created).
        config: the run's resolved config (EasyDict or mapping); written to ``config.yaml``.
        resume: True when continuing a run from a checkpoint: the log is appended with a
            "resumed" line, and ``load_state_dict`` is expected with the checkpoint's history.
        is_main: False on non-zero distributed ranks: nothing is written or printed (the
            history is still kept in memory).
        write_config: write ``config.yaml`` now (default). A resume passes False and calls
            :meth:`write_config` once the checkpoint has been loaded into the networks, so a
            failed resume (a checkpoint that does not fit) leaves the old ``config.yaml`` as it was.
        tensorboard: force events on/off; None means ``config.get("tensorboard", True)``.
            Without the tensorboard package events are off and the log says so.
    """

    def __init__(self, out_dir: str | os.PathLike, config: Mapping[str, Any], resume: bool = False,
                 is_main: bool = True, tensorboard: bool | None = None, write_config: bool = True):
        self.out_dir = Path(out_dir)
        self.config = config
        self.is_main = bool(is_main)
        self.resume = bool(resume)
        self.history: History = {}
        self._writer = None
        self._log_file = None
        # Fresh run: purge every old event in the folder (step 0). Resume: decided at the first
        # write (see _before_write), once the checkpoint's history is known.
        self._purge_pending = True
        self._closed = False
        self._config_written = False

        want_tb = config.get("tensorboard", True) if tensorboard is None else tensorboard
        self._writer_cls = _summary_writer_class() if (want_tb and self.is_main) else None
        if not self.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if write_config:
            self.write_config()
        self._log_file = open(self.out_dir / "log.txt", "a", encoding="utf-8")
        word = "resumed" if self.resume else "started"
        self.log(f"run {word} in {self.out_dir} (method={config.get('method', '?')})")
        self.log("non-default settings: " + format_settings(non_defaults(config)))
        if self._writer_cls is not None:
            self.log(f"TensorBoard events on: {self.out_dir / 'events'}  "
                     f"(view: tensorboard --logdir {self.out_dir})")
        elif not want_tb:
            self.log("TensorBoard events off (config.tensorboard is False)")
        else:
            self.log("TensorBoard events off: the tensorboard package is not installed "
                     "(pip install tensorboard); log.txt and the history are still written")

    def write_config(self) -> None:
        """Write ``config.yaml`` (the resolved config), once; rank 0 only."""
        if not self.is_main or self._config_written:
            return
        (self.out_dir / "config.yaml").write_text(config_yaml(self.config))
        self._config_written = True

    # ------------------------------------------------------------------ text log
    def log(self, msg: str, console: bool = True) -> None:
        """Print ``msg`` (progress-bar safe) and append it, time-stamped, to ``log.txt``.
        ``console=False``: ``log.txt`` only (a message the caller raises, so the user sees it once)."""
        if not self.is_main:
            return
        if console:
            _console(msg)
        if self._log_file is not None:
            stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
            for line in str(msg).splitlines() or [""]:
                self._log_file.write(f"{stamp}  {line}\n")
            self._log_file.flush()  # a Colab disconnect must not lose the last lines

    # ------------------------------------------------------------------ scalars and images
    @property
    def events_on(self) -> bool:
        """True when TensorBoard event files are being written."""
        return self._writer_cls is not None

    def _before_write(self, step: int) -> None:
        """Once per process, before the first scalar/image: settle what a resume overwrites."""
        if not self._purge_pending:
            return
        self._purge_pending = False
        if self.resume:
            # Everything at step >= the first new step was logged by the crashed process after
            # its checkpoint (or is about to be logged again): drop it from the history too.
            for key in list(self.history):
                self.history[key] = [e for e in self.history[key] if e[0] < step]
                if not self.history[key]:
                    del self.history[key]
            purge = step
        else:
            purge = 0
        if self._writer_cls is not None:
            self._writer = self._writer_cls(log_dir=str(self.out_dir / "events"), purge_step=purge)

    def scalars(self, step: int, values: Mapping[str, Any], stage: str | None = None) -> None:
        """Record ``values`` ({name: number}) at ``step`` under ``"<stage>/<name>"``.

        Numbers may be Python/numpy scalars or one-element tensors. A step at or before a
        series' last one replaces that series' tail, so the history never holds a step twice.
        """
        step = int(step)
        self._before_write(step)
        for name, value in values.items():
            key = f"{stage}/{name}" if stage else str(name)
            value = float(value.item() if hasattr(value, "item") else value)
            series = self.history.setdefault(key, [])
            while series and series[-1][0] >= step:
                series.pop()
            series.append([step, value])
            if self._writer is not None:
                self._writer.add_scalar(key, value, step)

    def image(self, tag: str, step: int, hwc_uint8: np.ndarray, save_png: bool = False) -> Path | None:
        """Record an image (H, W, 3) uint8 in [0, 255]: TensorBoard, and a PNG when asked.

        The PNG goes to ``<out_dir>/samples/<tag with / as _>_<step>.png``; its path is returned.
        """
        arr = np.asarray(hwc_uint8)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise ValueError(f"image {tag!r}: expected an (H, W, 3) uint8 array, got "
                             f"{arr.dtype} of shape {arr.shape}")
        step = int(step)
        self._before_write(step)
        if not self.is_main:
            return None
        if self._writer is not None:
            self._writer.add_image(tag, arr, step, dataformats="HWC")
        if not save_png:
            return None
        from PIL import Image

        path = self.out_dir / "samples" / f"{tag.replace('/', '_')}_{step}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(path)
        return path

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> History:
        """The history (a copy): ``{"<stage>/<name>": [[step, value], ...]}``; goes in checkpoints."""
        return {k: [[int(s), float(v)] for s, v in series] for k, series in self.history.items()}

    def load_state_dict(self, state: Mapping[str, Iterable], source: str | os.PathLike | None = None,
                        iteration: int | None = None) -> None:
        """Restore the history from a checkpoint; with ``source``/``iteration``, log the resume.

        Raises ValueError naming the key when a series is not a list of [step, value] pairs.
        """
        history: History = {}
        for key, series in state.items():
            try:
                history[str(key)] = [[int(s), float(v)] for s, v in series]
            except (TypeError, ValueError) as err:
                raise ValueError(f"history series {key!r} is not a list of [step, value] pairs") from err
        self.history = history
        if source is not None or iteration is not None:
            where = f" from {source}" if source is not None else ""
            at = f" at iteration {iteration}" if iteration is not None else ""
            self.log(f"resumed{where}{at}; history restored ({len(history)} series, "
                     f"last step {last_step(history)})")

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> "RunRecords":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # files are closed even when a notebook forgets to
        try:
            self.close()
        except Exception:
            pass


# ---------------------------------------------------------------------- reading histories
def last_step(history: Mapping[str, list]) -> int | None:
    """The largest step in the history, or None when it is empty."""
    steps = [series[-1][0] for series in history.values() if series]
    return max(steps) if steps else None


def match_keys(history: Mapping[str, list], key: str) -> list[str]:
    """History keys matching ``key``: the exact key, or every ``"<stage>/<key>"`` in stage order."""
    if key in history:
        return [key]
    return [k for k in history if k.rsplit("/", 1)[-1] == key]


def history_series(history: Mapping[str, list], key: str) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of one series.

    ``key`` is a full key (``"srgan/val_psnr"``) or a bare name (``"val_psnr"``): a bare name
    joins that name's series of every stage, in step order (e.g. PSNR across both stages).
    Raises KeyError listing the available keys when nothing matches.
    """
    keys = match_keys(history, key)
    if not keys:
        raise KeyError(f"no history series {key!r}; available: {sorted(history)}")
    pairs = sorted((int(s), float(v)) for k in keys for s, v in history[k])
    return [s for s, _ in pairs], [v for _, v in pairs]


# Names logged for the console but not plotted unless asked for by name (speed, not learning).
NOT_PLOTTED_BY_DEFAULT = ("it_per_s",)


def _panels(history: Mapping[str, list], keys: Iterable[str] | None) -> dict[str, list[str]]:
    """Group keys into plot panels by name (the part after the stage), in first-seen order."""
    if keys is None:
        keys = [k for k in history if k.rsplit("/", 1)[-1] not in NOT_PLOTTED_BY_DEFAULT]
    chosen: list[str] = []
    for key in keys:
        matched = match_keys(history, key)
        if not matched:
            raise KeyError(f"no history series {key!r}; available: {sorted(history)}")
        chosen += [k for k in matched if k not in chosen]
    panels: dict[str, list[str]] = {}
    for k in chosen:
        panels.setdefault(k.rsplit("/", 1)[-1], []).append(k)
    return panels


def _new_figure(n_panels: int, ncols: int = 3):
    from matplotlib.figure import Figure  # no pyplot: no global state, no double display

    ncols = max(1, min(ncols, n_panels))
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.0 * nrows), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n_panels)]
    return fig, axes


def _finish(fig, out_path):
    if out_path is not None:
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out_path, dpi=100)
    return fig


def load_history(source: Mapping[str, Any] | str | os.PathLike) -> dict[str, list]:
    """A run's history from a history dict, a ``training.run()`` result, a checkpoint file, or a
    run directory (its ``checkpoints/last.pt``)."""
    if isinstance(source, Mapping):
        return dict(source.get("history", source))
    path = Path(source)
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    return load_checkpoint(path, verify=False)["history"]      # metadata: no need to read every tensor


def plot_history(source: Mapping[str, Any] | str | os.PathLike, keys: Iterable[str] | None = None,
                 out_path: str | os.PathLike | None = None, ncols: int = 3):
    """Curves of one run: one panel per name (loss, val_psnr, ...), one line per stage.

    ``source``: a history dict, a ``training.run()`` result, a checkpoint path or a run directory
    (:func:`load_history`).
    ``keys``: full keys or bare names (default: all but ``NOT_PLOTTED_BY_DEFAULT``). Returns a matplotlib ``Figure`` (shown by
    Jupyter when it is a cell's value); saved as PNG to ``out_path`` when given.
    """
    history = load_history(source)
    panels = _panels(history, keys)
    if not panels:
        raise ValueError("the history is empty: nothing to plot")
    stages = list(dict.fromkeys(k.rsplit("/", 1)[0] for ks in panels.values() for k in ks))
    fig, axes = _new_figure(len(panels), ncols)
    for ax, (name, ks) in zip(axes, panels.items()):
        for k in ks:
            steps, values = history_series(history, k)
            stage = k.rsplit("/", 1)[0]
            ax.plot(steps, values, label=stage if "/" in k else k,  # one colour per stage
                    color=f"C{stages.index(stage) % 10}", marker="." if len(steps) < 30 else None)
        _style(ax, name)
        if len(ks) > 1 or "/" in ks[0]:
            ax.legend(fontsize="small")
    return _finish(fig, out_path)


def y_label(name: str) -> str:
    """The y-axis label of a logged quantity (by its bare name): its unit or what it is."""
    name = name.rsplit("/", 1)[-1]
    if "psnr" in name:
        return "PSNR (dB, Y channel)"
    if "ssim" in name:
        return "SSIM (Y channel)"
    if name in ("d_hr", "d_sr"):
        return "mean D(x) (probability of real)"
    return {"lr": "learning rate", "it_per_s": "iterations / s"}.get(name, "loss")


def _style(ax, title: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_title(title)
    ax.set_xlabel("iteration")
    ax.set_ylabel(y_label(title))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.ticklabel_format(axis="y", useOffset=False)  # PSNR 14.445, not 0.005 + 1.444e1
    ax.grid(alpha=0.3)


def plot_histories(histories: Mapping[str, Mapping[str, list]], keys: str | Iterable[str],
                   out_path: str | os.PathLike | None = None, ncols: int = 3):
    """Overlay runs: one panel per key (full key or bare name), one colour per run.

    ``histories`` maps a run name to its history. Runs lacking a key are left out of that panel;
    a key no run has raises KeyError.
    """
    keys = [keys] if isinstance(keys, str) else list(keys)
    if not keys:
        raise ValueError("plot_histories needs at least one key")
    fig, axes = _new_figure(len(keys), ncols)
    for ax, key in zip(axes, keys):
        found = False
        for i, (run, history) in enumerate(histories.items()):
            # one colour per run; each stage its own line (never joined across stages)
            for j, k in enumerate(match_keys(history, key)):
                found = True
                steps, values = history_series(history, k)
                ax.plot(steps, values, color=f"C{i % 10}", label=run if j == 0 else None,
                        marker="." if len(steps) < 30 else None)
        if not found:
            raise KeyError(f"no run has a history series {key!r}")
        _style(ax, key)
        ax.legend(fontsize="small")
    return _finish(fig, out_path)
