"""download() against a real HTTP server on 127.0.0.1."""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nyctaxi.source import NotPublishedError, SourceError, download

BODY = b"x" * 3_000_000


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/ok.csv.gz"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)
        elif self.path.endswith("/short.csv.gz"):  # announces more than it sends, then hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[:1000])
            self.close_connection = True
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
    assert leftovers(tmp_path / "d") == ["ok.csv.gz"]


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


def test_nobody_listening(tmp_path):
    with pytest.raises(SourceError, match="Connection refused|ConnectionRefused"):
        download("http://127.0.0.1:9/yellow/m.csv.gz", tmp_path / "m.csv.gz")
