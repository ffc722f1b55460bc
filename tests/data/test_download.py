"""course_sr.data.download against a local HTTP server on 127.0.0.1 that serves archives built here.

No test reaches any other address: ``_only_localhost`` makes any other connection fail.
The server supports Range requests and can drop a connection after N bytes, ignore Range,
or stall, so resume, restart and timeouts run for real.
"""
from __future__ import annotations

import errno
import hashlib
import io
import re
import shutil
import socket
import stat
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

import course_sr.data.download as dl
import course_sr.data.extract as ex
from course_sr.data.archives import Archive, DownloadError
from course_sr.data.download import download
from course_sr.data.extract import MARKER


# --------------------------------------------------------------------------------------
# A local server with a handler that supports Range, drops and stalls
# --------------------------------------------------------------------------------------
class LocalServer:
    """Serves ``files[name]`` at ``/name``; records ``(name, Range header, status)`` per request.

    ``drops[name]``: byte counts; each request for ``name`` pops one and sends only that many
    body bytes (after announcing the full length) before closing the connection.
    ``honor_range``: False makes the server answer every request with the whole file (200).
    ``stall``: seconds to wait before answering. ``wrong_range``: answer 206 from byte 0.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drops: dict[str, list[int]] = {}
        self.honor_range = True
        self.stall = 0.0
        self.wrong_range = False
        self.closing = threading.Event()
        self.log: list[tuple[str, str | None, int]] = []
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):      # keep the test output clean
                pass

            def do_GET(self):
                try:
                    self._answer()
                except OSError:                 # the client gave up (timeout test): fine
                    pass

            def _answer(self):
                if state.stall:
                    state.closing.wait(state.stall)
                name, rng = self.path.lstrip("/"), self.headers.get("Range")
                data = state.files.get(name)
                if data is None:
                    state.log.append((name, rng, 404))
                    self.send_error(404)
                    return
                start = 0
                if rng and state.honor_range:
                    start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
                    start = 0 if state.wrong_range else start
                    if start >= len(data):
                        state.log.append((name, rng, 416))
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                    status = 206
                else:
                    self.send_response(200)
                    status = 200
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if state.drops.get(name):
                    body = body[:state.drops[name].pop(0)]   # then the connection closes
                state.log.append((name, rng, status))
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def requests_for(self, name: str) -> list[tuple[str | None, int]]:
        return [(rng, status) for n, rng, status in self.log if n == name]

    def close(self):
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture(autouse=True)
def _only_localhost(monkeypatch):
    """Fail any connection to an address other than 127.0.0.1; ignore proxy settings."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        assert address[0] == "127.0.0.1", f"a test tried to reach {address}"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)


@pytest.fixture
def server():
    s = LocalServer()
    yield s
    s.close()


# --------------------------------------------------------------------------------------
# Tiny archives in the DIV2K / benchmark layouts
# --------------------------------------------------------------------------------------
def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (seed * 40 % 256, 100, 200)).save(buf, format="PNG")
    return buf.getvalue()


HR_FILES = {f"DIV2K_train_HR/{i:04d}.png": _png(i) for i in (1, 2, 3)}
LR_FILES = {f"DIV2K_train_LR_bicubic/X4/{i:04d}x4.png": _png(10 + i) for i in (1, 2, 3)}
BENCH_FILES = {
    "benchmark/Set5/HR/baby.png": _png(20),
    "benchmark/Set5/LR_bicubic/X4/babyx4.png": _png(21),
    "benchmark/Set14/HR/comic.png": _png(22),
    "benchmark/Set14/LR_bicubic/X4/comicx4.png": _png(23),
}


def make_zip(files: dict[str, bytes], dirs: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:   # stored: byte flips hit data
        for d in dirs:
            z.writestr(d.rstrip("/") + "/", b"")
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def make_tar(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            t.addfile(info)
    return buf.getvalue()


def serve(server: LocalServer, name: str, group: str, data: bytes, folders, *,
          sha256: str | None | bool = True, size: int | None | bool = True) -> Archive:
    """Put ``data`` on the server and return its table entry (True: the real size / hash)."""
    server.files[name] = data
    return Archive(
        name=name, group=group, url=server.url(name),
        size=len(data) if size is True else size,
        sha256=hashlib.sha256(data).hexdigest() if sha256 is True else sha256,
        checksum_source="computed by the test", folders=tuple(folders))


HR_MAP = [("DIV2K_train_HR", "DIV2K/DIV2K_train_HR")]
LR_MAP = [("DIV2K_train_LR_bicubic/X4", "DIV2K/DIV2K_train_LR_bicubic/X4")]
BENCH_MAP = [("benchmark/Set5", "benchmark/Set5"), ("benchmark/Set14", "benchmark/Set14")]


@pytest.fixture
def table(server):
    return [
        serve(server, "DIV2K_train_HR.zip", "div2k", make_zip(HR_FILES, ("DIV2K_train_HR",)), HR_MAP),
        serve(server, "DIV2K_train_LR_bicubic_X4.zip", "div2k", make_zip(LR_FILES), LR_MAP),
        serve(server, "benchmark.tar", "benchmark", make_tar(BENCH_FILES), BENCH_MAP),
    ]


def run(root: Path, archives, what="all", **kw):
    kw.setdefault("retry_wait", 0.0)
    return download(root, what, archives=archives, progress=False, **kw)


def leftovers(root: Path) -> list[str]:
    """Anything that looks like a half-done extraction."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.partial"))


# --------------------------------------------------------------------------------------
# The real table
# --------------------------------------------------------------------------------------
def test_real_table_is_well_formed():
    names = {a.name for a in dl.ARCHIVES}
    assert {"DIV2K_train_HR.zip", "DIV2K_valid_HR.zip", "DIV2K_train_LR_bicubic_X4.zip",
            "DIV2K_valid_LR_bicubic_X4.zip", "DIV2K_train_LR_unknown_X4.zip",
            "DIV2K_valid_LR_unknown_X4.zip", "benchmark.tar"} == names
    for a in dl.ARCHIVES:
        assert a.url.startswith("https://") and a.url.endswith("/" + a.name)
        assert a.size and a.size > 1_000_000
        assert a.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", a.sha256)
        assert a.checksum_source
        for inner, target in a.folders:
            assert target.startswith(("DIV2K/DIV2K_", "benchmark/"))
            assert target.endswith(inner.split("/", 1)[-1] if a.group == "benchmark" else inner)
    # Every DIV2K archive has a published hash (TensorFlow Datasets' checksum file).
    assert all(a.sha256 for a in dl.ARCHIVES if a.name.startswith("DIV2K"))
    assert {t for a in dl.select("benchmark") for _, t in a.folders} == {
        f"benchmark/{s}" for s in ("Set5", "Set14", "B100", "Urban100")}


@pytest.mark.parametrize("what, expected", [
    ("div2k", 4), ("unknown", 2), ("div2k-unknown", 2), ("benchmark", 1), ("all", 7),
    (["div2k", "benchmark"], 5)])
def test_select(what, expected):
    assert len(dl.select(what)) == expected


def test_select_rejects_unknown_group():
    with pytest.raises(ValueError, match="unknown --what.*nonsense"):
        dl.select("nonsense")


def test_list_prints_table_without_network(capsys):
    assert dl.main(["--list", "--what", "unknown"]) == 0
    out = capsys.readouterr().out
    assert "DIV2K_train_LR_unknown_X4.zip" in out and "TensorFlow Datasets" in out
    assert "benchmark.tar" not in out


# --------------------------------------------------------------------------------------
# Download + extraction
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [False, True])
def test_full_download_extracts_standard_layout(tmp_path, server, table, keep):
    status = run(tmp_path, table, keep_archives=keep)
    assert status == {a.name: "extracted" for a in table}
    expected = {
        **{f"DIV2K/{k}": v for k, v in HR_FILES.items()},
        **{f"DIV2K/{k}": v for k, v in LR_FILES.items()},
        **{k: v for k, v in BENCH_FILES.items()},
    }
    for rel, data in expected.items():
        assert (tmp_path / rel).read_bytes() == data, rel
    assert (tmp_path / "DIV2K/DIV2K_train_HR/0001.png").is_file()
    assert (tmp_path / "DIV2K/DIV2K_train_LR_bicubic/X4/0001x4.png").is_file()
    assert (tmp_path / "benchmark/Set5/LR_bicubic/X4/babyx4.png").is_file()
    for a in table:
        for _, target in a.folders:
            info = ex._marker(tmp_path, target)
            assert info["sha256"] == a.sha256 and info["archive"] == a.name
    kept = sorted(p.name for p in (tmp_path / dl.DOWNLOADS).iterdir())
    assert kept == (sorted(a.name for a in table) if keep else [])
    assert leftovers(tmp_path) == []


def test_what_selects_archives(tmp_path, server, table):
    assert run(tmp_path, table, what="benchmark") == {"benchmark.tar": "extracted"}
    assert [n for n, _, _ in server.log] == ["benchmark.tar"]
    assert not (tmp_path / "DIV2K").exists()


def test_complete_targets_are_skipped_without_network(tmp_path, server, table):
    run(tmp_path, table)
    n_requests = len(server.log)
    assert run(tmp_path, table) == {a.name: "skipped" for a in table}
    assert len(server.log) == n_requests


def test_kept_archive_is_reused_not_downloaded(tmp_path, server, table):
    run(tmp_path, table, what="div2k", keep_archives=True)
    n_requests = len(server.log)
    shutil.rmtree(tmp_path / "DIV2K")
    assert run(tmp_path, table, what="div2k") == {a.name: "extracted" for a in table[:2]}
    assert len(server.log) == n_requests
    assert (tmp_path / "DIV2K/DIV2K_train_HR/0003.png").read_bytes() == HR_FILES["DIV2K_train_HR/0003.png"]


# --------------------------------------------------------------------------------------
# Resume and restart
# --------------------------------------------------------------------------------------
def test_resume_after_dropped_connection(tmp_path, server, table):
    archive = table[0]
    cut = archive.size // 3
    server.drops[archive.name] = [cut]
    with pytest.raises(DownloadError, match=re.escape(archive.url) + ".*run the same command again"):
        run(tmp_path, [archive], retries=0)
    part = tmp_path / dl.DOWNLOADS / (archive.name + ".part")
    assert part.stat().st_size == cut                       # kept what arrived
    assert not (tmp_path / "DIV2K/DIV2K_train_HR").exists()
    run(tmp_path, [archive])
    assert server.requests_for(archive.name) == [(None, 200), (f"bytes={cut}-", 206)]
    assert not part.exists()
    assert (tmp_path / "DIV2K/DIV2K_train_HR/0002.png").read_bytes() == HR_FILES["DIV2K_train_HR/0002.png"]


def test_retries_resume_within_one_call(tmp_path, server, table):
    archive = table[2]
    first, second = archive.size // 4, archive.size // 4
    server.drops[archive.name] = [first, second]
    run(tmp_path, [archive], retries=2)
    assert server.requests_for(archive.name) == [
        (None, 200), (f"bytes={first}-", 206), (f"bytes={first + second}-", 206)]
    assert (tmp_path / "benchmark/Set14/HR/comic.png").read_bytes() == BENCH_FILES["benchmark/Set14/HR/comic.png"]


def test_server_ignoring_range_restarts_cleanly(tmp_path, server, table):
    archive = table[0]
    server.honor_range = False
    server.drops[archive.name] = [archive.size // 2]
    with pytest.raises(DownloadError, match=re.escape(archive.url)):
        run(tmp_path, [archive], retries=0)
    run(tmp_path, [archive])                               # asks for a range, gets the whole file
    cut = archive.size // 2
    assert server.requests_for(archive.name) == [(None, 200), (f"bytes={cut}-", 200)]
    assert ex._marker(tmp_path, "DIV2K/DIV2K_train_HR")["sha256"] == archive.sha256


def test_range_answer_from_wrong_offset_restarts(tmp_path, server, table):
    archive = table[0]
    server.wrong_range = True
    server.drops[archive.name] = [100]
    with pytest.raises(DownloadError):
        run(tmp_path, [archive], retries=0)
    run(tmp_path, [archive], retries=1)                    # 206 from byte 0: discard, start over
    assert server.requests_for(archive.name) == [(None, 200), ("bytes=100-", 206), (None, 200)]
    assert ex._marker(tmp_path, "DIV2K/DIV2K_train_HR")["sha256"] == archive.sha256


def test_finished_part_file_is_not_downloaded_again(tmp_path, server, table):
    """Killed between the last byte and the rename: the .part is complete and just verified."""
    archive = table[1]
    part = tmp_path / dl.DOWNLOADS / (archive.name + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(server.files[archive.name])
    run(tmp_path, [archive])
    assert server.requests_for(archive.name) == []
    assert (tmp_path / "DIV2K/DIV2K_train_LR_bicubic/X4/0003x4.png").is_file()


def test_complete_part_of_unknown_size_ends_with_416(tmp_path, server, table):
    archive = Archive(**{**table[1].__dict__, "size": None})
    part = tmp_path / dl.DOWNLOADS / (archive.name + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(server.files[archive.name])
    run(tmp_path, [archive])
    assert server.requests_for(archive.name) == [(f"bytes={len(server.files[archive.name])}-", 416)]
    assert ex._marker(tmp_path, "DIV2K/DIV2K_train_LR_bicubic/X4")["files"] == 3


def test_stalled_server_times_out_with_clear_error(tmp_path, server, table):
    server.stall = 1.0
    with pytest.raises(DownloadError, match=re.escape(table[0].url) + ".*timed out"):
        run(tmp_path, table[:1], retries=0, timeout=0.2)


def test_http_error_names_url_and_is_not_retried(tmp_path, server, table):
    missing = Archive(**{**table[0].__dict__, "url": server.url("nope.zip")})
    with pytest.raises(DownloadError, match=re.escape(missing.url) + ": HTTP 404"):
        run(tmp_path, [missing], retries=3)
    assert len(server.requests_for("nope.zip")) == 1


# --------------------------------------------------------------------------------------
# Bad archives: nothing extracted
# --------------------------------------------------------------------------------------
def _nothing_extracted(root: Path, archive: Archive, verified: bool = False) -> None:
    for _, target in archive.folders:
        assert not (root / target).exists(), target
    assert leftovers(root) == []
    # Only a verified archive stays in .downloads (a rerun with a fixed table reuses it).
    assert (root / dl.DOWNLOADS / archive.name).exists() == verified


@pytest.mark.parametrize("wrong, match", [
    ("sha256", "has sha256 [0-9a-f]{64}, expected 0{64}"),
    ("size", "is \\d+ bytes but the table expects 7"),
])
def test_checksum_or_size_mismatch_extracts_nothing(tmp_path, server, table, wrong, match):
    archive = Archive(**{**table[0].__dict__, **({"sha256": "0" * 64} if wrong == "sha256"
                                                   else {"size": 7})})
    with pytest.raises(DownloadError, match=re.escape(archive.url) + ".*" + match):
        run(tmp_path, [archive])
    _nothing_extracted(tmp_path, archive)
    if wrong == "sha256":                                  # kept for a look, not resumed
        assert (tmp_path / dl.DOWNLOADS / (archive.name + ".bad")).is_file()
        assert not (tmp_path / dl.DOWNLOADS / (archive.name + ".part")).exists()


def _flip_byte_in_member(data: bytes, member: bytes) -> bytes:
    at = data.index(member) + len(member) // 2
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


@pytest.mark.parametrize("kind", ["zip-bad-crc", "tar-truncated", "not-an-archive"])
def test_corrupt_archive_without_hash_is_caught(tmp_path, server, kind):
    if kind == "zip-bad-crc":      # same size, so only the archive read can tell
        name, data = "DIV2K_train_HR.zip", _flip_byte_in_member(make_zip(HR_FILES), HR_FILES["DIV2K_train_HR/0002.png"])
        folders, size = HR_MAP, True
    elif kind == "tar-truncated":  # size unknown, so only the archive read can tell
        name, data, folders, size = "benchmark.tar", make_tar(BENCH_FILES)[:1500], BENCH_MAP, None
    else:
        name, data, folders, size = "DIV2K_train_HR.zip", b"<html>mirror error page</html>", HR_MAP, True
    archive = serve(server, name, "div2k", data, folders, sha256=None, size=size)
    with pytest.raises(DownloadError, match=re.escape(archive.url) + ".*(corrupt|not a readable archive)"):
        run(tmp_path, [archive])
    _nothing_extracted(tmp_path, archive)


@pytest.mark.parametrize("fmt, evil", [
    ("zip", "../evil.png"),
    ("zip", "/tmp/evil.png"),
    ("zip", "DIV2K_train_HR/../../evil.png"),
    ("zip", "C:\\evil.png"),
    ("tar", "benchmark/Set5/../../../evil.png"),
    ("tar", "symlink"),
])
def test_path_traversal_member_rejected(tmp_path, server, fmt, evil):
    root = tmp_path / "root"
    if fmt == "zip":
        data = make_zip({**HR_FILES, evil: b"pwned"})
        archive = serve(server, "DIV2K_train_HR.zip", "div2k", data, HR_MAP)
    else:
        files = dict(BENCH_FILES)
        links = {"benchmark/Set5/HR/link.png": "/etc/passwd"} if evil == "symlink" else None
        if evil != "symlink":
            files[evil] = b"pwned"
        archive = serve(server, "benchmark.tar", "benchmark", make_tar(files, links), BENCH_MAP)
    with pytest.raises(DownloadError, match="unsafe member"):
        run(root, [archive])
    assert not list(tmp_path.rglob("evil.png"))
    assert not (root / "DIV2K").exists() and not (root / "benchmark").exists()
    assert leftovers(root) == []


# --------------------------------------------------------------------------------------
# Interrupted extraction
# --------------------------------------------------------------------------------------
def test_interrupted_extraction_leaves_nothing_complete_and_rerun_finishes(tmp_path, server, table, monkeypatch):
    archive = table[2]                                     # two target folders
    real_copy, calls = ex._copy_member, []

    def power_cut(member, dest):
        calls.append(dest)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated kill mid-extraction")
        real_copy(member, dest)

    monkeypatch.setattr(ex, "_copy_member", power_cut)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, [archive])
    assert not (tmp_path / "benchmark/Set5").exists() and not (tmp_path / "benchmark/Set14").exists()
    assert leftovers(tmp_path) == []
    assert (tmp_path / dl.DOWNLOADS / archive.name).is_file()    # verified archive kept for the rerun

    monkeypatch.setattr(ex, "_copy_member", real_copy)
    assert run(tmp_path, [archive]) == {archive.name: "extracted"}
    assert server.requests_for(archive.name) == [(None, 200)]   # not downloaded again
    for rel, data in BENCH_FILES.items():
        assert (tmp_path / rel).read_bytes() == data


def test_partial_folder_of_a_killed_run_is_replaced(tmp_path, server, table):
    """A hard kill (no cleanup) leaves only a hidden .partial folder, which never counts."""
    archive = table[0]
    stale = tmp_path / "DIV2K/.DIV2K_train_HR.partial"
    stale.mkdir(parents=True)
    (stale / "0001.png").write_bytes(b"half written")
    assert not ex.all_complete(tmp_path, archive)
    run(tmp_path, [archive])
    assert leftovers(tmp_path) == []
    assert (tmp_path / "DIV2K/DIV2K_train_HR/0001.png").read_bytes() == HR_FILES["DIV2K_train_HR/0001.png"]


def test_multi_folder_archive_finishes_only_missing_folders(tmp_path, server, table):
    archive = table[2]
    run(tmp_path, [archive], keep_archives=True)
    shutil.rmtree(tmp_path / "benchmark/Set14")
    (tmp_path / "benchmark/Set5/extra.txt").write_text("left alone")
    assert run(tmp_path, [archive]) == {archive.name: "extracted"}
    assert (tmp_path / "benchmark/Set5/extra.txt").read_text() == "left alone"
    assert (tmp_path / "benchmark/Set14/HR/comic.png").is_file()


def test_unmarked_existing_folder_is_refused_before_download(tmp_path, server, table):
    (tmp_path / "DIV2K/DIV2K_train_HR").mkdir(parents=True)
    with pytest.raises(DownloadError, match=f"DIV2K_train_HR exists but has no {re.escape(MARKER)}"):
        run(tmp_path, table)
    assert server.log == []


def test_archive_without_expected_folder_is_refused(tmp_path, server):
    archive = serve(server, "DIV2K_train_HR.zip", "div2k", make_zip({"Other/0001.png": _png(1)}), HR_MAP)
    with pytest.raises(DownloadError, match="holds no files under DIV2K_train_HR/"):
        run(tmp_path, [archive])
    _nothing_extracted(tmp_path, archive, verified=True)


# --------------------------------------------------------------------------------------
# After download: data lists, and the command
# --------------------------------------------------------------------------------------
def test_data_lists_are_made_for_fetched_splits(tmp_path, server, table, monkeypatch):
    calls = []
    monkeypatch.setattr(dl, "create_data_lists", lambda root, **kw: calls.append((Path(root), kw)))
    run(tmp_path, table, data_lists=tmp_path / "lists")
    assert calls == [(tmp_path, {"out_folder": tmp_path / "lists", "splits": None})]   # every split found
    run(tmp_path, table, data_lists=True)
    assert calls[-1] == (tmp_path, {"out_folder": tmp_path / "data_lists", "splits": None})


def test_command_downloads_and_reports_failures(tmp_path, server, table, monkeypatch, capsys):
    monkeypatch.setattr(dl, "ARCHIVES", tuple(table))
    assert dl.main(["--root", str(tmp_path), "--what", "benchmark"]) == 0
    assert "benchmark.tar: extracted" in capsys.readouterr().out
    broken = Archive(**{**table[0].__dict__, "url": server.url("gone.zip")})
    monkeypatch.setattr(dl, "ARCHIVES", (broken,))
    # a failure is a DownloadError (a UserError: __main__ prints it as one line, exit 2)
    with pytest.raises(DownloadError, match=re.escape(broken.url) + ": HTTP 404"):
        dl.main(["--root", str(tmp_path / "other"), "--what", "div2k"])


# --------------------------------------------------------------------------------------
# Other sources: a course's mirror, an archive already on disk, a course's own checksums
# --------------------------------------------------------------------------------------
def _elsewhere(server, table, base="mirror"):
    """The table's archives moved to ``<server>/<base>/<name>``; the table keeps dead URLs."""
    for a in table:
        server.files[f"{base}/{a.name}"] = server.files.pop(a.name)
    return [Archive(**{**a.__dict__, "url": server.url(f"gone/{a.name}")}) for a in table], server.url(base)


def test_mirror_fetches_the_same_names_checked_against_the_table(tmp_path, server, table, capsys):
    dead, mirror = _elsewhere(server, table)
    assert run(tmp_path, dead, mirror=mirror) == {a.name: "extracted" for a in table}
    assert server.requests_for("mirror/SHA256SUMS") == [(None, 404)]       # optional: none there
    assert all(server.requests_for(f"mirror/{a.name}") for a in table)
    assert not any(n.startswith("gone/") for n, _, _ in server.log)
    # a mirror serving something else under a published name is refused, as a download is
    server.files["mirror/benchmark.tar"] = make_tar({**BENCH_FILES, "benchmark/Set5/HR/x.png": _png(9)})
    with pytest.raises(DownloadError, match=r"mirror/benchmark\.tar: the downloaded file (is|has)"):
        run(tmp_path / "other", dead, "benchmark", mirror=mirror)


def test_mirror_with_its_own_archives_and_sha256sums(tmp_path, server, table, capsys):
    dead, mirror = _elsewhere(server, table)
    own = make_tar({"benchmark/Set5/HR/bird.png": _png(30), "benchmark/Set5/LR_bicubic/X4/birdx4.png": _png(31),
                    **{k: v for k, v in BENCH_FILES.items() if "Set14" in k}})
    server.files["mirror/benchmark.tar"] = own
    server.files["mirror/SHA256SUMS"] = (f"{hashlib.sha256(own).hexdigest()}  benchmark.tar\n"
                                         f"{dead[0].sha256} *{dead[0].name}\n").encode()
    assert run(tmp_path, dead, mirror=mirror)["benchmark.tar"] == "extracted"
    out = capsys.readouterr().out
    assert "benchmark.tar: checked against " + mirror + "/SHA256SUMS (the course's own archive" in out
    assert "DIV2K_train_HR.zip: checked" not in out                        # same hash as the table: published
    assert (tmp_path / "benchmark/Set5/HR/bird.png").is_file()
    # a later plain run (no mirror) keeps the course's folders instead of refusing or replacing them
    assert run(tmp_path, dead)["benchmark.tar"] == "skipped"
    # the course's own archive with a wrong hash in its list is refused
    server.files["mirror/SHA256SUMS"] = f"{'0' * 64}  benchmark.tar\n".encode()
    with pytest.raises(DownloadError, match="has sha256 .* expected 0000"):
        run(tmp_path / "again", dead, "benchmark", mirror=mirror)
    server.files["mirror/SHA256SUMS"] = b"not a checksum line\n"
    with pytest.raises(DownloadError, match=r"SHA256SUMS, line 1: expected '<sha256>  <file name>'"):
        run(tmp_path / "again", dead, "benchmark", mirror=mirror)


def test_archive_already_fetched(tmp_path, server, table, capsys, monkeypatch):
    dead, _ = _elsewhere(server, table)
    src = tmp_path / "fetched"
    src.mkdir()
    for a in table:
        (src / a.name).write_bytes(server.files[f"mirror/{a.name}"])
    root = tmp_path / "data"
    assert run(root, dead, files=[src / "benchmark.tar", src / "DIV2K_train_HR.zip"]) == {
        "benchmark.tar": "extracted", "DIV2K_train_HR.zip": "extracted"}
    assert (src / "benchmark.tar").is_file() and (root / "benchmark/Set14/HR/comic.png").is_file()
    assert not server.log                                                   # nothing downloaded
    assert run(root, dead, files=[src / "benchmark.tar"]) == {"benchmark.tar": "skipped"}
    # bad input: one line naming the file (truncated, wrong, unknown name, absent); the file stays
    monkeypatch.setattr(dl, "ARCHIVES", tuple(dead))
    cut = src / "cut" / "DIV2K_train_LR_bicubic_X4.zip"
    cut.parent.mkdir()
    cut.write_bytes((src / "DIV2K_train_LR_bicubic_X4.zip").read_bytes()[:-100])
    wrong = src / "wrong" / "DIV2K_train_LR_bicubic_X4.zip"
    wrong.parent.mkdir()
    wrong.write_bytes((src / "DIV2K_train_HR.zip").read_bytes())
    (src / "notes.zip").write_bytes(b"x")
    for path, match in [(cut, r"is \d+ bytes, expected \d+: a wrong or truncated file"),
                        (wrong, r"(is \d+ bytes, expected|has sha256)"),
                        (src / "notes.zip", r"notes\.zip: not an archive of the table .*DIV2K_train_HR\.zip"),
                        (src / "cut" / "benchmark.tar", r"benchmark\.tar: no such file")]:
        with pytest.raises(DownloadError) as info:
            dl.main(["--root", str(tmp_path / "d2"), "--archive", str(path)])
        err = str(info.value)
        assert len(err.splitlines()) == 1 and str(path.name) in err, err
        assert re.search(match, err), err
    assert cut.is_file() and wrong.is_file()                                # the user's files stay put
    assert not (tmp_path / "d2" / "DIV2K").exists()
    # a course's own archive given with its checksums file
    own = make_tar({"benchmark/Set5/HR/bird.png": _png(40), "benchmark/Set5/LR_bicubic/X4/birdx4.png": _png(41),
                    "benchmark/Set14/HR/a.png": _png(42), "benchmark/Set14/LR_bicubic/X4/ax4.png": _png(43)})
    (src / "own").mkdir()
    (src / "own" / "benchmark.tar").write_bytes(own)
    (src / "own" / "SHA256SUMS").write_text(f"{hashlib.sha256(own).hexdigest()}  benchmark.tar\n")
    assert dl.main(["--root", str(tmp_path / "d3"), "--archive", str(src / "own" / "benchmark.tar"),
                    "--checksums", str(src / "own" / "SHA256SUMS"), "--data-lists"]) == 0
    assert (tmp_path / "d3/data_lists/Set5_images.csv").read_text() == \
        "benchmark/Set5/HR/bird.png,benchmark/Set5/LR_bicubic/X4/birdx4.png\n"


def test_complete_folders_from_a_mirror_are_skipped_without_a_request(tmp_path, server, table):
    dead, mirror = _elsewhere(server, table)
    run(tmp_path, dead, mirror=mirror)
    server.log.clear()
    assert set(run(tmp_path, dead, mirror=mirror).values()) == {"skipped"}
    assert server.log == []                                             # not even SHA256SUMS


# --------------------------------------------------------------------------------------
# Hostile or unwritable archives: size cap, links, clashes, long names, a full disk
# --------------------------------------------------------------------------------------
def _bomb_zip(n_bytes: int) -> bytes:
    """A real DIV2K-layout zip whose last member deflates ``n_bytes`` of zeros to a few KB."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in HR_FILES.items():
            z.writestr(name, data)
        z.writestr("DIV2K_train_HR/0004.png", b"\0" * n_bytes)
    return buf.getvalue()


def _bomb_tar_gz(n_bytes: int) -> bytes:
    """benchmark.tar that is really a gzip'd tar (tarfile opens either) holding ``n_bytes`` of zeros."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in {**BENCH_FILES, "benchmark/Set5/HR/zeros.png": b"\0" * n_bytes}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _complete_set14(root: Path, server) -> None:
    """A folder finished by an earlier run: a refused archive must leave it exactly as it was."""
    run(root, [serve(server, "benchmark.tar", "benchmark", make_tar(BENCH_FILES), BENCH_MAP)])
    shutil.rmtree(root / "benchmark/Set5")


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_extraction_is_capped_relative_to_the_expected_size(tmp_path, server, fmt):
    """A 4 MiB member in an archive of a few KB: refused before a byte is written, naming the cap."""
    root = tmp_path / "root"
    if fmt == "zip":                                      # a folder of another archive, done earlier
        _complete_set14(root, server)
        kept = root / "benchmark/Set14"
    else:
        run(root, [serve(server, "DIV2K_train_HR.zip", "div2k", make_zip(HR_FILES), HR_MAP)])
        kept = root / "DIV2K/DIV2K_train_HR"
    before = {p: p.read_bytes() for p in kept.rglob("*") if p.is_file()}
    if fmt == "zip":    # a table entry: the cap is 2 x the table's size
        data = _bomb_zip(4 << 20)
        archive = serve(server, "DIV2K_train_HR.zip", "div2k", data, HR_MAP)
        why = rf"2 x the {len(data):,} bytes the table expects"
    else:               # a course's own archive (no size in the table): 10 x the file's own size
        data = _bomb_tar_gz(4 << 20)
        archive = serve(server, "benchmark.tar", "benchmark", data, BENCH_MAP, size=None)   # as with_source makes it
        why = rf"10 x the archive's own {len(data):,} bytes"
    assert len(data) < 20_000
    with pytest.raises(DownloadError) as info:
        run(root, [archive])
    msg = str(info.value)
    assert archive.name in msg and "over the cap of" in msg and re.search(why, msg), msg
    assert re.search(r"would take 4,19\d,\d{3} bytes", msg), msg
    assert leftovers(root) == [] and not (root / "DIV2K" if fmt == "zip" else root / "benchmark").exists()
    assert {p: p.read_bytes() for p in kept.rglob("*") if p.is_file()} == before


def test_bytes_written_are_counted_against_the_cap(tmp_path, server, table, monkeypatch):
    """Should a member write more than the declared sizes add up to, extraction stops at the cap."""
    archive = table[0]
    real_copy = ex._copy_member

    def lying(member, dest):
        real_copy(member, dest)
        with open(dest, "ab") as f:                     # as if the member held more than it said
            f.write(b"\0" * len(server.files[archive.name]))

    monkeypatch.setattr(ex, "_copy_member", lying)
    with pytest.raises(DownloadError, match=r"DIV2K_train_HR\.zip: extraction wrote [\d,]+ bytes, over the cap"):
        run(tmp_path, [archive])
    assert leftovers(tmp_path) == [] and not (tmp_path / "DIV2K").exists()


def test_member_longer_than_declared_is_refused(tmp_path):
    src = io.BytesIO(b"x" * 10)
    member = ex._Member("a.png", ["a.png"], False, 4, lambda: src)
    with pytest.raises(DownloadError, match=r"member 'a\.png' holds more bytes than the 4 its archive declares"):
        ex._copy_member(member, tmp_path / "a.png")


def test_cap_leaves_room_for_real_archives(tmp_path):
    """PNGs do not shrink in a zip and a tar stores its files as they are: the real archives fit."""
    for a in dl.ARCHIVES:
        assert ex.extraction_cap(a, tmp_path)[0] == 2 * a.size
    own = tmp_path / "benchmark.tar"
    own.write_bytes(b"\0" * 1000)
    assert ex.extraction_cap(replace_size(dl.ARCHIVES[-1], None), own) == (10_000, "10 x the archive's own 1,000 bytes")


def replace_size(a: Archive, size):
    return Archive(**{**a.__dict__, "size": size})


def _zip_with_link(link_name: str, target: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in HR_FILES.items():
            z.writestr(name, data)
        info = zipfile.ZipInfo(link_name)
        info.create_system = 3                                  # Unix, as `zip --symlinks` writes it
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, target)
    return buf.getvalue()


@pytest.mark.parametrize("mode", [stat.S_IFLNK | 0o777, stat.S_IFIFO | 0o644], ids=["symlink", "fifo"])
def test_zip_symlink_and_special_entries_are_refused(tmp_path, server, mode):
    data = _zip_with_link("DIV2K_train_HR/0004.png", "/etc/passwd")
    if mode != stat.S_IFLNK | 0o777:
        z = zipfile.ZipFile(io.BytesIO(data))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as out:
            for info in z.infolist():
                if info.filename.endswith("0004.png"):
                    info.external_attr = mode << 16
                out.writestr(info, z.read(info.filename))
        data = buf.getvalue()
    archive = serve(server, "DIV2K_train_HR.zip", "div2k", data, HR_MAP)
    kind = "a symbolic link" if stat.S_ISLNK(mode) else "a special file"
    with pytest.raises(DownloadError, match=rf"unsafe member 'DIV2K_train_HR/0004\.png' of .*: {kind}"):
        run(tmp_path, [archive])
    assert not (tmp_path / "DIV2K").exists() and leftovers(tmp_path) == []


def test_zip_from_windows_without_unix_modes_extracts(tmp_path, server):
    """DOS attributes only (top 16 bits 0): plain files, as before."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in HR_FILES.items():
            info = zipfile.ZipInfo(name)
            info.create_system, info.external_attr = 0, 0x20      # FILE_ATTRIBUTE_ARCHIVE
            z.writestr(info, data)
    archive = serve(server, "DIV2K_train_HR.zip", "div2k", buf.getvalue(), HR_MAP)
    assert run(tmp_path, [archive]) == {archive.name: "extracted"}
    assert (tmp_path / "DIV2K/DIV2K_train_HR/0001.png").read_bytes() == HR_FILES["DIV2K_train_HR/0001.png"]


CLASHES = {
    "file-then-folder": {"DIV2K_train_HR/0001.png": _png(1), "DIV2K_train_HR/0001.png/x.png": _png(2)},
    "folder-then-file": {"DIV2K_train_HR/sub/x.png": _png(1), "DIV2K_train_HR/sub": _png(2)},
}


@pytest.mark.parametrize("fmt", ["zip", "tar"])
@pytest.mark.parametrize("case", [*CLASHES, "long-name"])
def test_layout_errors_are_download_errors_naming_the_member(tmp_path, server, fmt, case):
    """Without the checks these are raw OSErrors (File exists / Not a directory / name too long)."""
    if case == "long-name":
        member = "DIV2K_train_HR/" + "a" * 252 + ".png"             # 256 bytes in one component
        files = {**HR_FILES, member: _png(5)}
        match = rf"member '{member}' of .*is 256 bytes, more than the 255"
    else:
        files = {**HR_FILES, **CLASHES[case]}
        member = list(CLASHES[case])[1]
        clash = {"file-then-folder": "DIV2K_train_HR/0001.png", "folder-then-file": "DIV2K_train_HR/sub"}[case]
        match = rf"member '{re.escape(member)}' of .*: {re.escape(clash)} is both a file and a folder"
    if fmt == "zip":
        archive = serve(server, "DIV2K_train_HR.zip", "div2k", make_zip(files), HR_MAP)
    else:
        archive = serve(server, "benchmark.tar", "benchmark", make_tar(files), HR_MAP)
    root = tmp_path / "root"
    _complete_set14(root, server) if fmt == "zip" else None
    with pytest.raises(DownloadError, match=match):
        run(root, [archive])
    assert not (root / "DIV2K").exists() and leftovers(root) == []
    if fmt == "zip":
        assert (root / "benchmark/Set14/HR/comic.png").read_bytes() == BENCH_FILES["benchmark/Set14/HR/comic.png"]


def test_unwritable_member_is_a_download_error_naming_it(tmp_path, server, table, monkeypatch):
    """Any other OSError while writing (here EISDIR) names the member, not a raw traceback."""
    def refuse(member, dest):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(dest))

    monkeypatch.setattr(ex, "_copy_member", refuse)
    with pytest.raises(DownloadError, match=r"cannot extract member 'DIV2K_train_HR/0001\.png' of .*: Is a directory"):
        run(tmp_path, [table[0]])
    assert leftovers(tmp_path) == []


def test_disk_full_while_extracting(tmp_path, server, table, monkeypatch):
    archive = table[2]                                      # two target folders
    root = tmp_path / "root"
    run(root, [table[0]])                                   # an earlier archive's folder stays
    real_copy, calls = ex._copy_member, []

    def full(member, dest):
        calls.append(dest)
        if len(calls) == 3:
            with open(dest, "wb") as f:
                f.write(b"half")
            raise OSError(errno.ENOSPC, "No space left on device", str(dest))
        real_copy(member, dest)

    monkeypatch.setattr(ex, "_copy_member", full)
    with pytest.raises(DownloadError) as info:
        run(root, [archive])
    msg = str(info.value)
    assert msg.startswith("disk full while extracting benchmark.tar into ") and str(root / "benchmark/Set5") in msg
    assert len(msg.splitlines()) == 1
    assert leftovers(root) == [] and not (root / "benchmark").exists()
    assert (root / "DIV2K/DIV2K_train_HR/0001.png").is_file()
    monkeypatch.setattr(ex, "_copy_member", real_copy)
    assert run(root, [archive]) == {archive.name: "extracted"}     # space freed: the rerun finishes


def test_disk_full_while_downloading_is_not_retried(tmp_path, server, table, monkeypatch):
    archive = table[0]
    real_open = open

    class FullFile:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[:10])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fake_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return FullFile(f) if str(path).endswith(".part") and "b" in mode and mode != "rb" else f

    monkeypatch.setattr(dl, "open", fake_open, raising=False)
    part = tmp_path / dl.DOWNLOADS / (archive.name + ".part")
    with pytest.raises(DownloadError, match=rf"disk full while downloading .* into {re.escape(str(part))} \(10 bytes"):
        run(tmp_path, [archive], retries=3)
    assert len(server.requests_for(archive.name)) == 1                 # no retry can help
    monkeypatch.undo()
    run(tmp_path, [archive])                                          # resumes from the 10 bytes
    assert server.requests_for(archive.name)[-1] == ("bytes=10-", 206)


@pytest.mark.parametrize("argv, match", [
    (["--retries", "-1"], r"argument --retries: expected a whole number >= 0, got '-1'"),
    (["--retries", "two"], r"argument --retries: expected a whole number >= 0, got 'two'"),
    (["--timeout", "0"], r"argument --timeout: expected a number of seconds > 0, got '0'"),
    (["--timeout", "-5"], r"argument --timeout: expected a number of seconds > 0, got '-5'"),
    (["--timeout", "nan"], r"argument --timeout: expected a number of seconds > 0, got 'nan'"),
])
def test_bad_retries_and_timeout_are_refused_when_parsing(tmp_path, server, argv, match, capsys):
    with pytest.raises(SystemExit) as info:
        dl.main(["--root", str(tmp_path), *argv])
    assert info.value.code == 2
    assert re.search(match, capsys.readouterr().err.strip().splitlines()[-1])
    assert not tmp_path.joinpath(dl.DOWNLOADS).exists() and server.log == []
    with pytest.raises(DownloadError, match="retries must be >= 0"):
        download(tmp_path, "benchmark", retries=-1)
