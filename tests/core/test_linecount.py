"""Lines of code: blank lines and comments do not count; binary input is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from attune_cli.core.errors import InputFileError
from attune_cli.core.linecount import count_lines_of_code


def test_blank_lines_and_hash_comments_are_not_code(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("# header\n\nimport os\n    # indented comment\nx = 1  # trailing\n\n")
    assert count_lines_of_code(source).lines == 2


def test_c_like_comments_are_not_code(tmp_path: Path) -> None:
    source = tmp_path / "m.ts"
    source.write_text("// line comment\n/**\n * doc\n *\n */\nexport const x = 1;\n*ptr = 2;\n")
    assert count_lines_of_code(source).lines == 2


def test_sql_dash_comments_are_not_code(tmp_path: Path) -> None:
    source = tmp_path / "q.sql"
    source.write_text("-- pick users\nSELECT 1;\n")
    assert count_lines_of_code(source).lines == 1


def test_a_binary_file_is_refused_by_name(tmp_path: Path) -> None:
    blob = tmp_path / "image.py"
    blob.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    with pytest.raises(InputFileError) as caught:
        count_lines_of_code(blob)
    assert str(blob) in str(caught.value)
    assert "binary" in str(caught.value)


def test_a_non_utf8_file_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "latin.py"
    source.write_bytes("nom = 'caf\xe9'\n".encode("latin-1"))
    with pytest.raises(InputFileError, match="not UTF-8"):
        count_lines_of_code(source)


def test_a_folder_skips_hidden_and_dependency_folders_and_unreadable_files(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.py").write_text("x = 1\ny = 2\n")
    (tmp_path / "bad.py").write_bytes(b"\x00\x01binary")
    for skipped in (".git", ".venv", "node_modules", "__pycache__"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "z.py").write_text("q = 1\n" * 50)
    count = count_lines_of_code(tmp_path)
    assert (count.lines, count.files, count.skipped) == (2, 1, 1)


def test_a_folder_without_source_is_refused(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("hello\n")
    with pytest.raises(InputFileError, match="no readable source file"):
        count_lines_of_code(tmp_path)
