"""The pure parts of service/client/ (cli, options, output): arguments, where results go, progress bars, error lines."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import pytest

from service.client.cli import build_parser, main
from service.client.http import ApiError
from service.client.options import DEFAULT_SERVER, UsageError, connection_settings, output_targets
from service.client.output import ProgressBar, feed_lines, format_error, job_error, render_progress
from tests.conftest import free_port


def test_submit_arguments() -> None:
    args = build_parser().parse_args(
        [
            "submit",
            "a.pdf",
            "b.png",
            "--lang",
            "eng+deu",
            "--dpi",
            "150",
            "--force-ocr",
            "--priority",
            "low",
            "--wait",
            "2.5",
            "--format",
            "json",
            "--output",
            "out/",
            "-q",
        ]
    )
    assert args.command == "submit" and args.files == ["a.pdf", "b.png"]
    assert (args.lang, args.dpi, args.force_ocr, args.wait, args.format, args.output, args.quiet) == (
        "eng+deu",
        150,
        True,
        2.5,
        "json",
        "out/",
        True,
    )
    assert not args.follow
    assert args.priority == "low" and build_parser().parse_args(["submit", "a.pdf"]).priority is None


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["submit"],
        ["submit", "a.pdf", "--format", "docx"],
        ["submit", "a.pdf", "--wait", "-1"],
        ["submit", "a.pdf", "--wait", "soon"],
        ["submit", "a.pdf", "--dpi", "high"],
        ["status"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage: ocr-service" in capsys.readouterr().err


def test_server_and_key_come_from_arguments_then_environment_then_defaults() -> None:
    parser = build_parser()
    env = {"OCR_SERVICE_URL": "http://ocr.internal:9000", "OCR_SERVICE_KEY": "key-from-env-123"}
    assert connection_settings(parser.parse_args(["status", "x"]), {}) == (DEFAULT_SERVER, None)
    assert connection_settings(parser.parse_args(["status", "x"]), env) == (
        "http://ocr.internal:9000",
        "key-from-env-123",
    )
    after = parser.parse_args(["status", "x", "--server", "https://a.example", "--key", "k1"])
    before = parser.parse_args(["--server", "https://a.example", "--key", "k1", "status", "x"])
    assert connection_settings(after, env) == connection_settings(before, env) == ("https://a.example", "k1")
    with pytest.raises(UsageError):
        connection_settings(parser.parse_args(["status", "x", "--server", "localhost:8000"]), {})


def test_a_missing_file_is_a_usage_error_before_anything_is_sent(capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing listens on the port: reaching the network would be another error.
    assert main(["submit", "no-such-file.pdf", "--server", f"http://127.0.0.1:{free_port()}"]) == 2
    assert capsys.readouterr().err == "error: no-such-file.pdf: no such readable file\n"


def test_a_pdf_is_never_written_to_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = tmp_path / "a.pdf"
    document.write_bytes(b"%PDF")
    assert main(["submit", str(document), "--format", "pdf", "--server", f"http://127.0.0.1:{free_port()}"]) == 2
    assert "--output" in capsys.readouterr().err
    with pytest.raises(UsageError):
        output_targets(["a.pdf"], None, "pdf", stdout_is_tty=False)
    with pytest.raises(UsageError):
        output_targets(["a.pdf"], "-", "pdf", stdout_is_tty=True)
    assert output_targets(["a.pdf"], "-", "pdf", stdout_is_tty=False) == [None]
    with pytest.raises(UsageError):
        output_targets(["a.pdf", "b.pdf"], "-", "pdf", stdout_is_tty=False)


def test_an_unreachable_server_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = f"http://127.0.0.1:{free_port()}"
    assert main(["status", "abc", "--server", server, "--key", "secret-key-123456"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot reach {server}: ") and err.count("\n") == 1
    assert "secret-key-123456" not in err


def test_output_targets(tmp_path: Path) -> None:
    assert output_targets(["a.pdf", "b.pdf"], None, "text", stdout_is_tty=True) == [None, None]
    assert output_targets(["a.pdf"], str(tmp_path / "a.txt"), "text", stdout_is_tty=True) == [tmp_path / "a.txt"]
    # An existing directory, or a path ending with "/", receives the file under its own name.
    assert output_targets(["scan.pdf"], str(tmp_path), "pdf", stdout_is_tty=True) == [tmp_path / "scan.searchable.pdf"]
    assert output_targets(["scan.pdf"], "out/", "json", stdout_is_tty=True) == [Path("out/scan.json")]
    several = output_targets(["a.pdf", "b.png", "a.tiff", "a.pdf"], "out", "text", stdout_is_tty=True)
    assert several == [Path("out/a.txt"), Path("out/b.txt"), Path("out/a-2.txt"), Path("out/a-3.txt")]


def test_progress_bar_rendering() -> None:
    running = {"status": "running", "progress": 50, "message": "OCR page 1 of 2"}
    assert render_progress("scan.pdf", running) == "scan.pdf [############------------]  50% running   OCR page 1 of 2"
    assert (
        render_progress("x", {"status": "queued", "progress": 0, "message": "Queued"})
        == "x [" + "-" * 24 + "]   0% queued"
    )
    done = render_progress("x", {"status": "completed", "progress": 140, "message": "Completed"})
    assert done == "x [" + "#" * 24 + "] 100% completed"


def test_progress_is_one_line_per_change_when_not_a_terminal() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, "a.pdf", tty=False)
    queued = {"status": "queued", "progress": 0, "message": "Queued"}
    for job in (
        queued,
        queued,
        queued | {"status": "running", "progress": 40},
        queued | {"status": "completed", "progress": 100},
    ):
        bar.update(job)
    bar.finish()
    lines = stream.getvalue().split("\n")
    assert len(lines) == 4 and lines[-1] == "" and "\r" not in stream.getvalue()
    assert lines[1].startswith("a.pdf [#########") and "40% running" in lines[1]


def test_progress_is_redrawn_in_place_on_a_terminal() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, "a.pdf", tty=True, columns=50)
    bar.update({"status": "running", "progress": 10, "message": "OCR page 1 of 10 with a long step name"})
    bar.update({"status": "queued", "progress": 0, "message": "Queued"})
    bar.finish()
    first, second = stream.getvalue().split("\r")[1:]
    assert len(first) == 49, "cut to the terminal's width so that \\r redraws the whole line"
    assert second.startswith("a.pdf [----") and second.endswith("queued     \n"), (
        "blanks what is left of the longer line"
    )
    assert len(second) == 50
    silent = ProgressBar(None, "a.pdf")
    silent.update({"status": "running", "progress": 10})
    silent.finish()


def test_error_lines() -> None:
    error = ApiError(415, "unsupported_media_type", "The document is not a PDF,\nPNG, JPEG or TIFF.")
    assert format_error(error) == "error: unsupported_media_type: The document is not a PDF, PNG, JPEG or TIFF."
    assert format_error(error, subject="notes.txt").startswith("error: notes.txt: unsupported_media_type: ")
    unauthorized = ApiError(401, "unauthorized", "Send an API key as 'Authorization: Bearer <key>'.")
    assert format_error(unauthorized).endswith("(give --key or set OCR_SERVICE_KEY)")
    busy = ApiError(429, "too_many_jobs", "Too many active jobs.", retry_after_s=3)
    assert format_error(busy) == "error: too_many_jobs: Too many active jobs. (retry in 3 s)"
    failed = {"status": "failed", "error": {"code": "encrypted_document", "message": "The PDF is encrypted."}}
    assert format_error(job_error(failed), "a.pdf") == "error: a.pdf: encrypted_document: The PDF is encrypted."
    assert format_error(job_error({"status": "cancelled", "error": None})) == "error: cancelled: The job was cancelled."


def test_feed_lines() -> None:
    now = datetime(2026, 1, 2, 13, 4, 5)
    newer = {"id": "b" * 32, "status": "running", "progress": 40, "message": "OCR page 2 of 5", "filename": "b.pdf"}
    older = {"id": "a" * 32, "status": "completed", "progress": 100, "message": "Completed", "filename": "a.pdf"}
    assert feed_lines("snapshot", {"jobs": [newer, older]}, now) == [
        "13:04:05 aaaaaaaa completed 100% a.pdf: Completed",
        "13:04:05 bbbbbbbb running    40% b.pdf: OCR page 2 of 5",
    ]
    assert feed_lines("progress", newer, now) == ["13:04:05 bbbbbbbb running    40% b.pdf: OCR page 2 of 5"]
    assert feed_lines("deleted", {"id": "c" * 32}, now) == ["13:04:05 cccccccc deleted"]
