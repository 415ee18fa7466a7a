"""hive_project.cli.output: text from others loses every terminal control; tables stay one row a line."""

from __future__ import annotations

import click
import pytest

from hive_project.cli.output import clean, status, table


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        pytest.param("a\x1b]0;new title\x07b", "ab", id="osc-bel"),
        pytest.param("a\x1b]2;new title\x1b\\b", "ab", id="osc-st"),
        pytest.param("a\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\b", "alinkb", id="osc-hyperlink"),
        pytest.param("a\x1bP+q544e\x1b\\b", "ab", id="dcs"),
        pytest.param("a\x1b[2J\x1b[1;1H\x1b[31mred\x1b[0mb", "aredb", id="csi"),
        pytest.param("a\x1b[?1049hb", "ab", id="csi-private"),
        pytest.param("a\x1bcb", "ab", id="esc-reset"),
        pytest.param("a\x1b(0b", "ab", id="esc-charset"),
        pytest.param("a\x1b7\x1b8b", "ab", id="esc-save-restore"),
        pytest.param("a\x1b", "a", id="lone-esc"),
        pytest.param("a\x9b2Jb\x9d0;title\x9cc", "abc", id="c1-csi-and-osc"),
        pytest.param("a\x07\x08\x0b\x0c\x0e\x7fb", "ab", id="c0-and-del"),
        pytest.param("a\u202eb\u2066c", "abc", id="bidi-overrides"),
        pytest.param("a\x1b]0;unterminated\nb", "a b", id="unterminated-osc-stops-at-the-line"),
        pytest.param("one\ntwo\r\nthree\rfour\tfive", "one two three four five", id="line-breaks-in-a-cell"),
        pytest.param("naïve ✓ 日本", "naïve ✓ 日本", id="ordinary-unicode-kept"),
    ],
)
def test_clean_removes_terminal_controls(text, shown):
    assert clean(text) == shown


def test_clean_multiline_keeps_line_breaks_as_newlines_only():
    assert clean("one\r\ntwo\rthree\n\x1b[Kfour\tx", multiline=True) == "one\ntwo\nthree\nfour\tx"


def test_table_hostile_cell_stays_one_row_and_own_styles_are_kept():
    forged = "job\nabcdef12  succeeded  forged\r\x1b]0;t\x07"

    text = table(["ID", "STATUS", "TASK"], [("1234", status("queued"), forged)])

    lines = text.splitlines()
    assert len(lines) == 3
    assert click.unstyle(lines[2]).split() == ["1234", "queued", "job", "abcdef12", "succeeded", "forged"]
    assert click.style("queued", fg="blue") in lines[2]  # the CLI's own colour survives
    assert "\x1b]" not in text and "\r" not in text and "\x07" not in text


def test_status_cleans_what_it_styles():
    assert click.unstyle(status("queued\x1b]0;x\x07")) == "queued"
