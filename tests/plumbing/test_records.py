"""RunRecords: config/log/history/events of a run, resume without gaps or duplicates."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from course_sr.config import get_config
from course_sr.plumbing.records import (RunRecords, history_series, last_step, plot_histories,
                               plot_history)


def _tb_scalars(events_dir, tag):
    """(step, value) pairs TensorBoard shows for ``tag`` (purges applied, as the UI does)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def _cfg(**kw):
    return get_config("quick", **kw)


def test_writes_config_log_and_history(tmp_path, capsys):
    cfg = _cfg(batch_size=3)
    with RunRecords(tmp_path / "run", cfg, tensorboard=False) as rec:
        rec.log("hello")
        rec.scalars(0, {"loss": 1.5, "lr": torch.tensor(1e-4)}, stage="srresnet")
        rec.scalars(5, {"loss": np.float32(0.5)}, stage="srresnet")
    run = tmp_path / "run"
    text = (run / "config.yaml").read_text()
    assert "batch_size: 3" in text and "#   batch_size: 3" in text  # body and non-default header
    again = get_config(run / "config.yaml")  # the file rebuilds the same config
    assert again.batch_size == 3 and again.n_blocks == cfg.n_blocks
    log = (run / "log.txt").read_text()
    assert "hello" in log and "batch_size=3" in log and "events off" in log
    assert "hello" in capsys.readouterr().out
    assert rec.state_dict() == {"srresnet/loss": [[0, 1.5], [5, 0.5]],
                                "srresnet/lr": [[0, pytest.approx(1e-4)]]}
    assert not (run / "events").exists()


def test_history_survives_torch_load_weights_only(tmp_path):
    rec = RunRecords(tmp_path, _cfg(), tensorboard=False)
    rec.scalars(3, {"loss": 0.25}, stage="srgan")
    torch.save({"history": rec.state_dict()}, tmp_path / "c.pt")
    rec.close()
    loaded = torch.load(tmp_path / "c.pt", weights_only=True)["history"]
    assert history_series(loaded, "loss") == ([3], [0.25])


@pytest.mark.parametrize("tensorboard", [True, False])
def test_resume_has_no_gaps_or_duplicates(tmp_path, tensorboard):
    """Log 0..10, checkpoint at 6, crash at 10, resume from 6, log 6..12: each step once."""
    cfg = _cfg()
    rec = RunRecords(tmp_path, cfg, tensorboard=tensorboard)
    ckpt = None
    for step in range(11):
        rec.scalars(step, {"loss": 100.0 + step}, stage="srresnet")
        if step == 6:
            ckpt = rec.state_dict()
    rec.close()  # the "crash" (events already flushed as a dying process would have, mostly)

    rec = RunRecords(tmp_path, cfg, resume=True, tensorboard=tensorboard)
    rec.load_state_dict(ckpt, source="checkpoints/last.pt", iteration=6)
    for step in range(6, 13):
        rec.scalars(step, {"loss": 200.0 + step}, stage="srresnet")
    rec.close()

    steps, values = history_series(rec.state_dict(), "srresnet/loss")
    assert steps == list(range(13))
    assert values == [100.0 + s for s in range(6)] + [200.0 + s for s in range(6, 13)]
    log = (tmp_path / "log.txt").read_text()
    assert "resumed from checkpoints/last.pt at iteration 6" in log
    if tensorboard:
        assert _tb_scalars(tmp_path / "events", "srresnet/loss") == [(s, v) for s, v in zip(steps, values)]


def test_resume_keeps_other_series_before_first_new_step(tmp_path):
    rec = RunRecords(tmp_path, _cfg(), resume=True, tensorboard=False)
    rec.load_state_dict({"srresnet/val_psnr": [[5, 20.0], [10, 21.0]], "srresnet/loss": [[9, 1.0]]})
    rec.scalars(10, {"loss": 0.5}, stage="srresnet")
    # the val entry at step 10 was written after the checkpoint by the crashed process: dropped
    assert rec.state_dict() == {"srresnet/val_psnr": [[5, 20.0]], "srresnet/loss": [[9, 1.0], [10, 0.5]]}
    rec.close()


def test_fresh_run_in_old_dir_discards_old_events(tmp_path):
    for base in (0.0, 50.0):
        with RunRecords(tmp_path, _cfg(), tensorboard=True) as rec:
            for step in range(3):
                rec.scalars(step, {"loss": base + step})
    assert _tb_scalars(tmp_path / "events", "loss") == [(0, 50.0), (1, 51.0), (2, 52.0)]


def test_events_off_without_tensorboard_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now fails
    with RunRecords(tmp_path, _cfg(), tensorboard=True) as rec:
        assert not rec.events_on
        rec.scalars(1, {"loss": 1.0}, stage="srresnet")
        png = rec.image("val/grid", 1, np.zeros((4, 6, 3), np.uint8), save_png=True)
    assert png == tmp_path / "samples" / "val_grid_1.png" and png.is_file()
    assert "package is not installed" in (tmp_path / "log.txt").read_text()
    assert not (tmp_path / "events").exists()
    assert rec.state_dict() == {"srresnet/loss": [[1, 1.0]]}


def test_events_on_writes_scalars_and_images(tmp_path):
    with RunRecords(tmp_path, _cfg(), tensorboard=True) as rec:
        assert rec.events_on
        rec.scalars(2, {"d_hr": 0.9}, stage="srgan")
        rec.image("val/grid", 2, np.full((4, 6, 3), 128, np.uint8))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "events"))
    acc.Reload()
    assert acc.Tags()["images"] == ["val/grid"]
    assert _tb_scalars(tmp_path / "events", "srgan/d_hr") == [(2, pytest.approx(0.9))]


def test_non_main_rank_writes_nothing(tmp_path, capsys):
    with RunRecords(tmp_path / "run", _cfg(), is_main=False, tensorboard=True) as rec:
        rec.log("rank 1 speaking")
        rec.scalars(0, {"loss": 1.0})
        assert rec.image("grid", 0, np.zeros((2, 2, 3), np.uint8), save_png=True) is None
    assert not (tmp_path / "run").exists()
    assert capsys.readouterr().out == ""


def test_bad_inputs_are_named():
    rec = RunRecords("unused", _cfg(), is_main=False)
    with pytest.raises(ValueError, match="image 'grid'.*float32"):
        rec.image("grid", 0, np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="series 'srgan/loss'"):
        rec.load_state_dict({"srgan/loss": [1.0, 2.0]})
    with pytest.raises(KeyError, match="no history series 'psnr'.*srgan/loss"):
        history_series({"srgan/loss": [[0, 1.0]]}, "psnr")


def test_history_helpers_and_plots(tmp_path):
    h = {"srresnet/loss": [[0, 1.0], [5, 0.5]], "srresnet/val_psnr": [[5, 20.0]],
         "srgan/val_psnr": [[10, 21.0], [15, 21.5]], "srgan/loss_d": [[10, 0.7]]}
    assert history_series(h, "val_psnr") == ([5, 10, 15], [20.0, 21.0, 21.5])  # stages joined
    assert last_step(h) == 15 and last_step({}) is None
    fig = plot_history(h, out_path=tmp_path / "curves.png")
    assert len(fig.axes) == 3  # loss, val_psnr (both stages), loss_d
    assert (tmp_path / "curves.png").stat().st_size > 0
    fig = plot_histories({"a": h, "b": {"srresnet/val_psnr": [[5, 19.0]]}}, ["val_psnr", "loss"],
                         out_path=tmp_path / "overlay.png")
    assert [len(ax.lines) for ax in fig.axes] == [3, 1]  # run a: one line per stage
    colours = [line.get_color() for line in fig.axes[0].lines]
    assert colours[0] == colours[1] != colours[2]  # one colour per run
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a", "b"]
    with pytest.raises(KeyError, match="no run has a history series 'ssim'"):
        plot_histories({"a": h}, "ssim")
    with pytest.raises(ValueError, match="history is empty"):
        plot_history({})


def test_a_resume_writes_config_yaml_only_when_asked_and_log_lines_can_skip_the_console(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("old\n")
    rec = RunRecords(tmp_path, _cfg(), resume=True, tensorboard=False, write_config=False)
    assert (tmp_path / "config.yaml").read_text() == "old\n"          # a failed resume leaves it as it was
    rec.log("only in the file", console=False)
    rec.write_config()
    rec.close()
    assert (tmp_path / "config.yaml").read_text().startswith("# course_sr run config")
    assert "only in the file" in (tmp_path / "log.txt").read_text()
    assert "only in the file" not in capsys.readouterr().out
