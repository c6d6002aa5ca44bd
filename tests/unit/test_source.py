"""download() against a real HTTP server on 127.0.0.1."""
import gzip
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nyctaxi.failures import ServiceUnreachableError
from nyctaxi.source import NotGzipError, NotPublishedError, SourceError, download, downloaded_version, remote_version

BODY = gzip.compress(os.urandom(1_000_000) + b"x" * 2_000_000)
HTML = b"<!DOCTYPE html><html><body>rate limited</body></html>"
# Whole transfers of bad files, by name.
BAD = {
    "cut": BODY[: len(BODY) // 2],
    "page": HTML,
    "crc": BODY[:-8] + bytes([BODY[-8] ^ 1]) + BODY[-7:],  # the trailer's CRC-32 does not match the data
    "garbled": BODY[:10] + bytes(b ^ 0x55 for b in BODY[10:2000]) + BODY[2000:],  # invalid deflate data
}


class Handler(BaseHTTPRequestHandler):
    etag = '"edition-1"'

    def do_HEAD(self):
        if self.path.endswith("/gets-only.csv.gz"):  # as a pre-signed URL for GET answers a HEAD
            self.send_error(403)
            return
        self.do_GET(body=False)

    def do_GET(self, body=True):
        if self.path.endswith(("/ok.csv.gz", "/gets-only.csv.gz")):  # Range is ignored: the whole body
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.send_header("ETag", Handler.etag)
            self.end_headers()
            if body:
                try:
                    self.wfile.write(BODY)
                except (BrokenPipeError, ConnectionResetError):  # a version check reads the headers only
                    pass
        elif self.path.endswith("/short.csv.gz"):  # announces more than it sends, then hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[:1000])
            self.close_connection = True
        elif (name := self.path.rsplit("/", 1)[-1].removesuffix(".csv.gz")) in BAD:
            body = BAD[name]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.endswith("/busy.csv.gz"):
            self.send_error(503, "Service Unavailable")
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_streams_the_whole_body(server, tmp_path):
    dest = download(f"{server}/yellow/ok.csv.gz", tmp_path / "d" / "ok.csv.gz")
    assert dest.read_bytes() == BODY
    assert leftovers(tmp_path / "d") == ["ok.csv.gz", "ok.csv.gz.version"]


def test_download_records_the_version_that_a_head_request_reports(server, tmp_path, monkeypatch):
    url = f"{server}/yellow/ok.csv.gz"
    dest = download(url, tmp_path / "ok.csv.gz")
    assert downloaded_version(dest) == remote_version(url)
    monkeypatch.setattr(Handler, "etag", '"edition-2"')  # the file is republished
    assert remote_version(url) != downloaded_version(dest)
    download(url, dest)
    assert downloaded_version(dest) == remote_version(url)


def test_version_of_a_file_never_downloaded_is_unknown(tmp_path):
    assert downloaded_version(tmp_path / "absent.csv.gz") is None


def test_head_of_an_unpublished_month_names_it(server):
    with pytest.raises(NotPublishedError, match="yellow_tripdata_2021-08.csv.gz is not published"):
        remote_version(f"{server}/yellow/yellow_tripdata_2021-08.csv.gz")


def test_not_published(server, tmp_path):
    url = f"{server}/yellow/yellow_tripdata_2021-08.csv.gz"
    with pytest.raises(NotPublishedError, match=f"yellow_tripdata_2021-08.csv.gz is not published at {url}"):
        download(url, tmp_path / "d" / "m.csv.gz")
    assert leftovers(tmp_path / "d") == []


def test_server_error_names_url_and_status(server, tmp_path):
    url = f"{server}/yellow/busy.csv.gz"
    with pytest.raises(SourceError, match=f"{url} failed: the server answered HTTP 503"):
        download(url, tmp_path / "d" / "m.csv.gz")
    assert leftovers(tmp_path / "d") == []


def test_connection_closed_early_leaves_nothing(server, tmp_path):
    url = f"{server}/yellow/short.csv.gz"
    with pytest.raises(SourceError, match=url):
        download(url, tmp_path / "d" / "m.csv.gz")
    assert leftovers(tmp_path / "d") == []


def test_a_truncated_gzip_is_a_failed_download(server, tmp_path):
    url = f"{server}/yellow/cut.csv.gz"
    with pytest.raises(SourceError, match=f"download of {url} failed: the gzip stream ends early") as error:
        download(url, tmp_path / "d" / "m.csv.gz")
    assert not isinstance(error.value, NotGzipError)  # worth a retry
    assert leftovers(tmp_path / "d") == []


@pytest.mark.parametrize("name", ["crc", "garbled"])
def test_corrupt_gzip_data_is_a_failed_download(server, tmp_path, name):
    url = f"{server}/yellow/{name}.csv.gz"
    with pytest.raises(SourceError, match=f"download of {url} failed: the gzip data is corrupt") as error:
        download(url, tmp_path / "d" / "m.csv.gz")
    assert not isinstance(error.value, NotGzipError)  # worth a retry
    assert leftovers(tmp_path / "d") == []


def test_a_web_page_instead_of_the_file_is_named_and_not_worth_a_retry(server, tmp_path):
    url = f"{server}/yellow/page.csv.gz"
    with pytest.raises(NotGzipError, match=f"{url} did not send a gzip file but an HTML page"):
        download(url, tmp_path / "d" / "m.csv.gz")
    assert leftovers(tmp_path / "d") == []


def test_nobody_listening_on_this_machine_says_to_start_the_local_stack(tmp_path):
    with pytest.raises(ServiceUnreachableError) as error:
        download("http://127.0.0.1:9/yellow/m.csv.gz", tmp_path / "m.csv.gz")
    assert str(error.value) == ("cannot reach the release server at http://127.0.0.1:9 (connection refused): "
                                "start the local stack with `make stack`, then `source .stack/env` in this shell")
    assert leftovers(tmp_path) == []


def test_a_host_name_that_does_not_resolve_is_named_with_the_fix(tmp_path):
    with pytest.raises(ServiceUnreachableError) as error:
        remote_version("http://release.example.invalid/yellow/m.csv.gz")
    assert str(error.value) == ("cannot reach the release server at http://release.example.invalid (the host name "
                                "does not resolve): check the network, or set NYC_TLC_BASE_URL to a mirror that "
                                "publishes the files")


@pytest.mark.parametrize("name", ["busy", "missing", "short"])
def test_download_errors_pickle_even_where_exceptions_are_pickled_with_their_context(server, tmp_path, name):
    """fetch persists its failures; once distributed is imported (Prefect imports prefect-dask to read
    a cached result), tblib pickles every exception with its context: urllib's HTTPError, which holds
    an open socket, must not be one."""
    import pickle

    import tblib.pickling_support

    tblib.pickling_support.install()  # what importing distributed does
    with pytest.raises(SourceError) as error:
        download(f"{server}/yellow/{name}.csv.gz", tmp_path / "m.csv.gz")
    assert str(pickle.loads(pickle.dumps(error.value))) == str(error.value)


def test_a_server_that_refuses_head_is_asked_with_a_get_of_which_nothing_more_is_read(server, tmp_path):
    url = f"{server}/yellow/gets-only.csv.gz"
    assert remote_version(url) == downloaded_version(download(url, tmp_path / "g.csv.gz"))
