from __future__ import annotations

import time

import pytest

from training.backends import BackendError, TransientBackendError, get_backend
from training.backends.openai import OpenAIBackend
from training.backends.transformers import TransformersBackend

from .chat_server import ChatServer

HELLO = [[{"role": "user", "content": "Hello?"}]]


def fast_backend(url: str, **kw) -> OpenAIBackend:
    return OpenAIBackend(base_url=url, model="test-model", api_key="sk-alice", backoff_s=0.01, **kw)


def test_openai_backend_retries_a_rate_limit_then_succeeds():
    with ChatServer(lambda body, n: (429, "slow down") if n == 1 else (200, "1. What is the budget?")) as server:
        [result] = fast_backend(server.url).generate(HELLO, {"temperature": 0.2, "max_new_tokens": 32})
    assert result.text == "1. What is the budget?"
    assert (result.prompt_tokens, result.completion_tokens) == (11, 7)
    assert len(server.requests) == 2
    assert server.requests[1]["model"] == "test-model"
    assert server.requests[1]["max_tokens"] == 32
    assert server.requests[1]["temperature"] == 0.2
    assert server.headers[1]["Authorization"] == "Bearer sk-alice"


def test_openai_backend_gives_up_on_server_errors_after_a_bounded_number_of_attempts():
    with (
        ChatServer(lambda body, n: (503, "overloaded")) as server,
        pytest.raises(TransientBackendError, match="after 3 attempts"),
    ):
        fast_backend(server.url, max_retries=2).generate(HELLO, {})
    assert len(server.requests) == 3


def test_openai_backend_does_not_retry_a_refused_request_and_reports_it_per_prompt():
    def reply(body, n):
        return (400, "prompt too long") if "long" in body["messages"][0]["content"] else (200, "Fine?")

    prompts = [[{"role": "user", "content": "a long one"}], [{"role": "user", "content": "short"}]]
    with ChatServer(reply) as server:
        bad, good = fast_backend(server.url).generate(prompts, {})
    assert "HTTP 400" in bad.error
    assert "prompt too long" in bad.error
    assert good.text == "Fine?"
    assert not good.error
    assert len(server.requests) == 2


@pytest.mark.django_db
def test_openai_backend_gets_the_key_from_the_variable_the_system_names(settings):
    from tests.factories import SystemFactory
    from training.generation import system_backend

    settings.PIG_API_KEYS = {"BOB_KEY": "sk-bob", "OPENAI_API_KEY": "sk-shared"}
    bob = SystemFactory(backend="openai", endpoint="http://127.0.0.1:1/v1", model_path="m",
                        generation_params={"api_key_env": "BOB_KEY"})  # fmt: skip
    shared = SystemFactory(backend="openai", endpoint="http://127.0.0.1:1/v1", model_path="m")
    assert system_backend(bob).api_key == "sk-bob"
    assert system_backend(shared).api_key == "sk-shared"


@pytest.mark.django_db
def test_the_site_secret_key_can_never_be_named_as_an_api_key(settings):
    from tests.factories import SystemFactory
    from training.generation import system_backend

    assert "SECRET_KEY" not in settings.PIG_API_KEYS
    thief = SystemFactory(backend="openai", endpoint="http://127.0.0.1:1/v1", model_path="m",
                          generation_params={"api_key_env": "SECRET_KEY"})  # fmt: skip
    assert system_backend(thief).api_key == ""


def test_the_backend_cache_keys_on_everything_that_shapes_the_client():
    url = "http://127.0.0.1:1/v1"
    first = get_backend(backend="openai", model_path="m", endpoint=url, params={"api_key_env": "A"}, api_key="k1")
    # Another key, another timeout or another variable: another client.
    assert (
        get_backend(backend="openai", model_path="m", endpoint=url, params={"api_key_env": "B"}, api_key="k1")
        is not first
    )
    assert (
        get_backend(backend="openai", model_path="m", endpoint=url, params={"api_key_env": "A"}, api_key="k2")
        is not first
    )
    other_timeout = get_backend(
        backend="openai", model_path="m", endpoint=url, params={"api_key_env": "A", "timeout_s": 5}, api_key="k1"
    )
    assert other_timeout is not first
    assert other_timeout.timeout == 5
    # Per-call sampling options are not part of the client: the same instance serves both systems.
    same = get_backend(
        backend="openai", model_path="m", endpoint=url, params={"api_key_env": "A", "temperature": 0.9}, api_key="k1"
    )
    assert same is first


def test_openai_backend_retries_a_refused_connection_with_backoff():
    backend = fast_backend("http://127.0.0.1:9/v1", max_retries=1, timeout=1)
    started = time.perf_counter()
    with pytest.raises(TransientBackendError, match="ConnectionError"):
        backend.generate(HELLO, {})
    assert time.perf_counter() - started < 5


def test_the_static_backend_refuses_to_generate():
    with pytest.raises(BackendError, match="imported"):
        get_backend(backend="static").generate(HELLO, {})


def test_the_vllm_backend_explains_that_vllm_is_missing():
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vllm is installed here")
    with pytest.raises(BackendError, match=r"pip install '\.\[gpu\]'"):
        get_backend(backend="vllm", model_path="/nowhere").generate(HELLO, {})


def test_an_unknown_backend_is_a_clear_error():
    with pytest.raises(BackendError, match="unknown backend 'carrier-pigeon'"):
        get_backend(backend="carrier-pigeon")


def test_backends_are_cached_per_process(tiny_model_dir):
    first = get_backend(backend="transformers", model_path=str(tiny_model_dir))
    assert get_backend(backend="transformers", model_path=str(tiny_model_dir)) is first


def test_transformers_backend_generates_a_left_padded_batch_in_one_call(tiny_model_dir):
    backend = TransformersBackend(str(tiny_model_dir), device="cpu")
    prompts = [
        [{"role": "user", "content": "Hi"}],
        [{"role": "user", "content": "Write an outline for a grant proposal about urban beekeeping please"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the budget?"}],
    ]
    greedy = {"temperature": 0, "max_new_tokens": 8}
    batched = backend.generate(prompts, greedy)
    assert len(batched) == 3
    assert all(0 < r.completion_tokens <= 8 for r in batched)
    # Left padding keeps each prompt's true length: token counts differ per prompt.
    assert batched[0].prompt_tokens < batched[1].prompt_tokens
    alone = backend.generate(prompts[1:2], greedy)[0]
    assert alone.prompt_tokens == batched[1].prompt_tokens
    assert backend.generate(prompts, greedy) == batched  # greedy is deterministic
    sampled = backend.generate(prompts, {"temperature": 1.0, "top_p": 0.9, "max_new_tokens": 8, "seed": 3})
    assert sampled == backend.generate(prompts, {"temperature": 1.0, "top_p": 0.9, "max_new_tokens": 8, "seed": 3})


def test_transformers_backend_reports_a_missing_model_directory(tmp_path):
    with pytest.raises(BackendError, match="model directory not found"):
        TransformersBackend(str(tmp_path / "nope")).generate(HELLO, {})
