"""Where generated files go: the local directory by default, an S3 bucket when
configured from the environment or the YAML file; secrets stay hidden, and the
default mode never loads the S3 client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from ccapi.config import load_settings
from ccapi.files.store import LocalBackend, file_backend


def test_files_stay_in_the_local_directory_by_default(tmp_path: Path) -> None:
    settings = load_settings(files_dir=tmp_path / "files")
    backend = file_backend(settings)
    assert isinstance(backend, LocalBackend) and backend.directory == tmp_path / "files"


def test_the_bucket_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCAPI_FILES_BACKEND", "s3")
    monkeypatch.setenv("CCAPI_S3__BUCKET", "gw-files")
    monkeypatch.setenv("CCAPI_S3__ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("CCAPI_S3__ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("CCAPI_S3__SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("CCAPI_S3__PATH_STYLE", "false")
    settings = load_settings()
    assert settings.s3.bucket == "gw-files" and settings.s3.path_style is False
    assert settings.s3.secret_access_key is not None
    assert settings.s3.secret_access_key.get_secret_value() == "env-secret"
    assert "env-secret" not in repr(settings) and "env-secret" not in str(settings.model_dump())
    assert repr(file_backend(settings)) == "S3Backend(bucket='gw-files', prefix='')"


def test_the_bucket_comes_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "files_backend: s3\ns3:\n  bucket: gw-files\n  prefix: ccapi/\n  region: eu-west-1\n"
        "  access_key_id: AKIDEXAMPLE\n  secret_access_key: file-secret\n"
    )
    settings = load_settings(config)
    assert (settings.s3.bucket, settings.s3.prefix, settings.s3.region) == ("gw-files", "ccapi/", "eu-west-1")
    assert "file-secret" not in repr(settings)


@pytest.mark.parametrize(
    "text",
    [
        "files_backend: s3\n",  # no bucket
        "files_backend: gcs\n",
        "s3:\n  buckt: typo\n",
        "s3:\n  timeout: 0\n",
    ],
)
def test_a_bad_files_setting_stops_the_start(tmp_path: Path, text: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(ValidationError):
        load_settings(config)


def test_half_given_credentials_stop_the_start_without_showing_the_secret() -> None:
    settings = load_settings(files_backend="s3", s3={"bucket": "gw-files", "secret_access_key": "lonely-secret"})
    with pytest.raises(ValueError, match="S3 file storage settings") as caught:
        file_backend(settings)
    assert "lonely-secret" not in str(caught.value)


def test_the_default_mode_never_imports_the_s3_client(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from ccapi.app import create_app\n"
        "from ccapi.config import load_settings\n"
        f"create_app(load_settings(database_url='sqlite:///{tmp_path}/c.db'))\n"
        "assert 'obstore' not in sys.modules, 'obstore was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
