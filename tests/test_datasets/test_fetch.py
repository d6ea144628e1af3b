"""tools/fetch_data.py against a real HTTP server on 127.0.0.1.

The server lays the unchanged upstream files of ``DSC_MM_DATA`` out as OWNER/REPO/COMMIT/PATH
(the ``--mirror`` layout), answers HTTP Range requests, and can cut a file short to play a
dropped connection. One module-scoped fetch builds the whole folder; the tests compare it with
``DSC_MM_DATA`` file by file. The failures (resume, checksum, 404, refused connection, full
disk) are played on a synthetic served file, so they run without the real data too.
"""
import contextlib
import errno
import hashlib
import http.server
import re
import socket
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dsc_mm.datasets.fetch import (FetchError, UpstreamFile, build_manifest, load_manifest,
                                   upstream_files)
from dsc_mm.datasets.fetch import download as download_module
from dsc_mm.datasets.fetch import mini_real
from dsc_mm.datasets.fetch.download import download


class _MirrorHandler(http.server.BaseHTTPRequestHandler):
    """GET with optional ``Range: bytes=N-``; ``server.cut[path]`` bytes only when set."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        path = self.server.root / self.path.lstrip('/')
        range_header = self.headers.get('Range')
        self.server.requests.append((self.path, range_header))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if range_header:
            start = int(re.fullmatch(r'bytes=(\d+)-', range_header).group(1))
            self.send_response(206)
            self.send_header('Content-Range', f'bytes {start}-{len(data) - 1}/{len(data)}')
        else:
            self.send_response(200)
        self.send_header('Content-Length', str(len(data) - start))
        self.end_headers()
        cut = self.server.cut.get(self.path)
        body = data[start:] if cut is None else data[start:max(cut, start)]
        self.wfile.write(body)
        if cut is not None:
            self.close_connection = True  # fewer bytes than Content-Length: a dropped line

    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture(scope='module', autouse=True)
def no_proxy_for_localhost():
    """urllib honours http_proxy: a CI runner's proxy must not stand between us and 127.0.0.1."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('no_proxy', '127.0.0.1')
        patch.setenv('NO_PROXY', '127.0.0.1')
        yield


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """A real HTTP server on 127.0.0.1 serving a tmp folder; yields (base url, server)."""
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _MirrorHandler)
    server.root, server.requests, server.cut = tmp_path_factory.mktemp('mirror'), [], {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_address[1]}/', server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope='module')
def mirror(server, shared_data):
    """The server, now serving the upstream files of DSC_MM_DATA as OWNER/REPO/COMMIT/PATH."""
    url, http_server = server
    for file in upstream_files():
        target = http_server.root / file.owner / file.repo / file.commit / file.src
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(shared_data / file.dst)
    return url, http_server


@pytest.fixture(scope='module')
def blob(server):
    """One served file of 300 000 random bytes (no real data needed): its manifest entry."""
    _, http_server = server
    data = np.random.default_rng(0).bytes(300_000)
    file = UpstreamFile('test', 'owner', 'repo', 'c0' * 20, 'folder/blob.bin', 'test/blob.bin',
                        hashlib.sha256(data).hexdigest(), len(data))
    target = http_server.root / file.owner / file.repo / file.commit / file.src
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return file


@pytest.fixture(scope='module')
def fetched(mirror, load_script, tmp_path_factory):
    """One run of tools/fetch_data.py through the mirror: (out folder, its stdout, requests)."""
    url, server = mirror
    start = len(server.requests)
    out = tmp_path_factory.mktemp('fetched') / 'mini-real'
    fetch_data = load_script('tools/fetch_data.py')
    capture = tmp_path_factory.mktemp('log') / 'stdout.txt'
    with open(capture, 'w') as log, contextlib.redirect_stdout(log):  # not a TTY, as in CI
        fetch_data.main(['--out', str(out), '--mirror', url])
    return out, capture.read_text(), server.requests[start:]


def _same_png(a: Path, b: Path) -> bool:
    with Image.open(a) as x, Image.open(b) as y:
        return (x.mode == y.mode and x.getpalette() == y.getpalette()
                and np.array_equal(np.asarray(x), np.asarray(y)))


def _same_xml(a: Path, b: Path) -> bool:
    def canonical(path):
        return ET.canonicalize(from_file=str(path), strip_text=True)
    return canonical(a) == canonical(b)


def test_manifest_matches_the_reference_data(shared_data):
    assert build_manifest(shared_data) == load_manifest()
    files = upstream_files()
    assert len(files) == 313 and len({f.dst for f in files}) == 313


def test_fetched_folder_equals_the_reference_file_by_file(fetched, shared_data):
    out, _, _ = fetched
    expected = sorted(p.relative_to(shared_data) for p in shared_data.rglob('*') if p.is_file())
    got = sorted(p.relative_to(out) for p in out.rglob('*') if p.is_file())
    assert got == expected  # same names, and no .part or temporary file left behind
    compared = {'png': 0, 'xml': 0, 'bytes': 0}
    for rel in expected:
        a, b = shared_data / rel, out / rel
        if rel.parent.name in ('SegmentationClass', 'SegmentationObject'):
            assert _same_png(a, b), rel  # pixels and palette (the PNG encoder may differ)
            compared['png'] += 1
        elif rel.suffix == '.xml':
            assert _same_xml(a, b), rel
            compared['xml'] += 1
        else:
            assert a.read_bytes() == b.read_bytes(), rel
            compared['bytes'] += 1
    assert compared == {'png': 194, 'xml': 97, 'bytes': 327}


def test_fetch_asks_the_mirror_layout_once_per_file_and_logs_briefly(fetched):
    _, stdout, requests = fetched
    expected = [f'/{f.owner}/{f.repo}/{f.commit}/{f.src}' for f in upstream_files()]
    assert sorted(requests) == sorted((path, None) for path in expected)
    lines = stdout.splitlines()
    assert len(lines) == 11, stdout  # not a TTY: one progress line per tenth, then the summary
    assert lines[-1].startswith('[fetch_data]') and '313 files fetched' in lines[-1]
    assert '--suite mini-real --data' in lines[-1]


def test_second_run_fetches_only_a_damaged_file_and_repairs_derived_ones(
        fetched, mirror, shared_data, load_script, capsys):
    out, _, _ = fetched
    url, server = mirror
    jpeg = 'coco_tiny/val2017/' + sorted((out / 'coco_tiny' / 'val2017').iterdir())[0].name
    xml = 'coco128_voc/VOCdevkit/VOC2012/Annotations/000000000030.xml'
    damaged = bytearray((out / jpeg).read_bytes())
    damaged[1000] ^= 0xFF  # same size, other content: only the sha256 can tell
    (out / jpeg).write_bytes(bytes(damaged))
    (out / xml).write_text('<annotation/>')
    before = len(server.requests)
    load_script('tools/fetch_data.py').main(['--out', str(out), '--mirror', url])
    assert [path for path, _ in server.requests[before:]] == [
        f'/lizhogn/tiny_coco_dataset/68523ddd6c27f9ba5d2f0caf7f6fe95cc2c99311/tiny_coco/'
        f'{jpeg.split("/", 1)[1]}']
    assert '1 files fetched (0.' in capsys.readouterr().out
    assert (out / jpeg).read_bytes() == (shared_data / jpeg).read_bytes()
    assert (out / xml).read_bytes() == (shared_data / xml).read_bytes()
    before = len(server.requests)
    load_script('tools/fetch_data.py').main(['--out', str(out), '--mirror', url])
    assert len(server.requests) == before
    assert '0 files fetched (0.0 MiB), 313 already there' in capsys.readouterr().out


def test_interrupted_download_resumes_with_range(server, blob, tmp_path):
    url, server = server
    file = blob
    path = f'/{file.owner}/{file.repo}/{file.commit}/{file.src}'
    dst = tmp_path / 'train' / 'blob.bin'
    server.cut[path] = 100_000
    try:
        with pytest.raises(FetchError, match=r'kept breaking off at 100000 of \d+ bytes.*rerun'):
            download(file.url(url), dst, file.sha256, file.size, retries=0)
    finally:
        del server.cut[path]
    part = dst.with_name('blob.bin.part')
    assert part.stat().st_size == 100_000 and not dst.exists()
    start = len(server.requests)
    assert download(file.url(url), dst, file.sha256, file.size)
    assert server.requests[start:] == [(path, 'bytes=100000-')]
    assert download_module.sha256_of(dst) == file.sha256 and not part.exists()


def test_dropped_connection_is_resumed_within_one_call(server, blob, tmp_path):
    url, server = server
    file = blob
    path = f'/{file.owner}/{file.repo}/{file.commit}/{file.src}'
    server.cut[path] = 50_000
    counted = []

    def drop_cut_after_first_request(nbytes):
        counted.append(nbytes)
        server.cut.pop(path, None)  # the next request gets the rest
    start = len(server.requests)
    assert download(file.url(url), tmp_path / 'blob.bin', file.sha256, file.size,
                    on_bytes=drop_cut_after_first_request)
    assert server.requests[start:] == [(path, None), (path, 'bytes=50000-')]
    assert sum(counted) == file.size


def test_stale_part_file_is_fetched_again_from_the_start(server, blob, tmp_path):
    url, server = server
    file = blob
    path = f'/{file.owner}/{file.repo}/{file.commit}/{file.src}'
    (tmp_path / 'blob.bin.part').write_bytes(bytes(100_000))  # not a prefix of the file
    counted = []
    start = len(server.requests)
    assert download(file.url(url), tmp_path / 'blob.bin', file.sha256, file.size,
                    on_bytes=counted.append)
    assert server.requests[start:] == [(path, 'bytes=100000-'), (path, None)]
    assert download_module.sha256_of(tmp_path / 'blob.bin') == file.sha256
    assert sum(counted) == file.size and list(tmp_path.iterdir()) == [tmp_path / 'blob.bin']


def test_checksum_mismatch_is_one_sentence_and_leaves_nothing(server, blob, tmp_path):
    url, _ = server
    file = blob
    with pytest.raises(FetchError, match=r'does not have the pinned content \(sha256 mismatch'):
        download(file.url(url), tmp_path / 'blob.bin', '0' * 64, file.size)
    assert list(tmp_path.iterdir()) == []


def test_http_404_names_the_url_and_the_mirror_layout(server, tmp_path, load_script, capsys):
    url, _ = server
    with pytest.raises(SystemExit) as exit_info:
        load_script('tools/fetch_data.py').main(['--out', str(tmp_path / 'o'),
                                                 '--mirror', url + 'no-such-base'])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'answered HTTP 404' in err[0]
    assert 'BASE/OWNER/REPO/COMMIT/PATH' in err[0] and 'Traceback' not in err[0]


def test_refused_connection_says_check_the_network(tmp_path, load_script, capsys):
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    with pytest.raises(SystemExit) as exit_info:
        load_script('tools/fetch_data.py').main(['--out', str(tmp_path / 'o'),
                                                 '--mirror', f'http://127.0.0.1:{port}'])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f'Could not reach 127.0.0.1:{port}' in err[0]
    assert 'check the network connection' in err[0]


def test_full_disk_while_writing_is_one_sentence(server, blob, tmp_path, monkeypatch):
    url, _ = server
    file = blob

    class FullDisk:
        def __init__(self, *args):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

        def write(self, data):
            raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(download_module, 'open', FullDisk, raising=False)
    with pytest.raises(FetchError, match=r'The disk holding .* is full while writing blob.bin: '
                                         r'free at least [\d.]+ MiB there and rerun'):
        download(file.url(url), tmp_path / 'blob.bin', file.sha256, file.size)


def test_not_enough_free_space_is_said_before_downloading(tmp_path, monkeypatch):
    monkeypatch.setattr(mini_real, '_free_bytes', lambda folder: 2**20)
    with pytest.raises(FetchError, match=r'needs 48\.\d MiB more but its disk has 1\.0 MiB free'):
        mini_real.fetch_mini_real(tmp_path / 'o', mirror='http://127.0.0.1:9')
