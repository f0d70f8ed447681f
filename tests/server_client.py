"""Drives `oss-wgpu serve` with the official `openai` package (run by tests/server.rs).

Usage: server_client.py SCENARIO BASE_URL [ARGS...]
  real BASE_URL BIN MODEL     a server running tiny-a for real: greedy equality with
                              `generate --prompt-ids`, streaming, usage, KV reuse, errors
  scripted BASE_URL           a server replying with the tool-call / final-answer scripts in
                              turn: tool round trip, reasoning, cut mid-analysis, responses
  slow BASE_URL               a server with one long script and --queue 1: disconnect
                              mid-stream, requests queued, queue full
  auth BASE_URL KEY           a server with --api-key
"""

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import openai

DATE = "2025-01-01"


def client(base, key="none"):
    # No retries: a 503 must reach the test, not be retried away.
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=120)


def render_ids(bin_, model, messages):
    out = subprocess.run(
        [bin_, "render", "--model", model, "--date", DATE],
        input=json.dumps({"messages": messages}),
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    return [int(x) for x in out.split(",")]


def generate_ids(bin_, model, ids, n):
    out = subprocess.run(
        [bin_, "generate", "--model", model, "--prompt-ids", ",".join(map(str, ids)),
         "--temperature", "0", "--max-tokens", str(n), "--output", "ids"],
        capture_output=True, text=True, check=True,
    ).stdout
    return out


def real(base, bin_, model):
    c = client(base)
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    ids = render_ids(bin_, model, msgs)
    n = 12
    # The engine path: the rendered ids through /v1/completions equal generate --prompt-ids
    # (twice: the second request re-uses the cache from the first).
    # generate prints the text, a newline unless it ended with one, then the ids line.
    want_text, want_ids = generate_ids(bin_, model, ids, n).removesuffix("\n").rsplit("\n", 1)
    for attempt in range(2):
        r = c.completions.create(model="tiny-a", prompt=ids, max_tokens=n, temperature=0)
        assert r.usage.prompt_tokens == len(ids), r.usage
        assert r.usage.completion_tokens == len(want_ids.split(",")), (r.usage, want_ids)
        got = r.choices[0].text
        assert got.removesuffix("\n") == want_text, (attempt, got, want_text)
        if attempt == 1:
            cached = r.usage.prompt_tokens_details.cached_tokens
            assert cached > 0 and cached % 16 == 0, r.usage
    # Streamed, the same text.
    chunks = list(c.completions.create(model="tiny-a", prompt=ids, max_tokens=n, temperature=0,
                                       stream=True))
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices).removesuffix("\n") == want_text
    # A stop sequence cuts the text before it, streamed or not.
    if len(want_text) >= 4:
        stop = want_text[2:4]
        cut = want_text[: want_text.find(stop)]
        r = c.completions.create(model="tiny-a", prompt=ids, max_tokens=n, temperature=0, stop=[stop])
        assert (r.choices[0].text, r.choices[0].finish_reason) == (cut, "stop"), (r, stop)
        chunks = list(c.completions.create(model="tiny-a", prompt=ids, max_tokens=n,
                                           temperature=0, stop=stop, stream=True))
        assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == cut
        assert chunks[-1].choices[0].finish_reason == "stop"

    # Chat, not streamed: the same prompt as rendered, greedy, a valid reply by length.
    r = c.chat.completions.create(model="tiny-a", messages=msgs, max_tokens=n, temperature=0)
    assert r.usage.prompt_tokens == len(ids), (r.usage, len(ids))
    assert r.usage.completion_tokens == n
    assert r.choices[0].finish_reason in ("length", "stop"), r
    first = r.choices[0].message
    # Greedy is deterministic, with and without a reused cache.
    r2 = c.chat.completions.create(model="tiny-a", messages=msgs, max_tokens=n, temperature=0)
    assert r2.choices[0].message.content == first.content
    assert r2.usage.prompt_tokens_details.cached_tokens > 0

    # Streamed, with usage.
    chunks = list(c.chat.completions.create(
        model="tiny-a", messages=msgs, max_tokens=n, temperature=0, stream=True,
        stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finish in (["length"], ["stop"]), finish
    assert chunks[-1].usage.completion_tokens == n
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == (first.content or ""), (text, first.content)

    # A second turn shares the first turn's prompt.
    msgs2 = msgs + [{"role": "assistant", "content": "Hi."}, {"role": "user", "content": "More?"}]
    r = c.chat.completions.create(model="tiny-a", messages=msgs2, max_tokens=4, temperature=0.7,
                                  top_p=0.9, seed=3, reasoning_effort="high", stop=["x"])
    assert r.usage.prompt_tokens_details.cached_tokens >= 16, r.usage

    # Client errors are 4xx with an OpenAI error body, never 500.
    for bad in (
        dict(messages=[{"role": "wizard", "content": "x"}]),
        dict(messages=msgs, max_tokens=10**6),
        dict(messages=msgs, temperature=5),
        dict(messages=msgs, tool_choice="required", tools=[{"type": "function", "function": {"name": "f"}}]),
        dict(messages=[{"role": "tool", "tool_call_id": "nope", "content": "x"}]),
    ):
        try:
            c.chat.completions.create(model="tiny-a", **bad)
            raise AssertionError(f"accepted: {bad}")
        except openai.BadRequestError as e:
            assert e.body and "message" in e.body, e.body
    # Too long for the context.
    try:
        c.chat.completions.create(model="tiny-a", messages=[{"role": "user", "content": "x " * 400}])
        raise AssertionError("accepted a prompt over the context")
    except openai.BadRequestError as e:
        assert e.code == "context_length_exceeded", e.body
    models = c.models.list()
    assert models.data[0].id == "tiny-a"
    health = json.load(urllib.request.urlopen(base + "/health"))
    assert health["status"] == "ok"


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def scripted(base):
    c = client(base)
    user = [{"role": "user", "content": "Weather in Paris?"}]
    # Job 0: the tool-call script.
    r = c.chat.completions.create(model="m", messages=user, tools=TOOLS)
    m = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls", r
    assert m.reasoning_content == "Need the weather.", m
    assert m.content is None, m
    call = m.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    # Job 1: the round trip, answered with the final script.
    history = user + [
        {"role": "assistant", "content": None, "reasoning_content": m.reasoning_content,
         "tool_calls": [{"id": call.id, "type": "function",
                         "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"sky": "clear"})},
    ]
    r = c.chat.completions.create(model="m", messages=history, tools=TOOLS)
    assert r.choices[0].message.content == "Sunny in Paris.", r
    assert r.choices[0].message.reasoning_content == "It is sunny."
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens_details.reasoning_tokens > 0, r.usage
    # Job 2: the tool call streamed.
    chunks = list(c.chat.completions.create(model="m", messages=user, tools=TOOLS, stream=True))
    name, args, reasoning = "", "", ""
    for ch in chunks:
        d = ch.choices[0].delta
        reasoning += getattr(d, "reasoning_content", None) or ""
        for tc in d.tool_calls or []:
            name += tc.function.name or ""
            args += tc.function.arguments or ""
    assert (name, json.loads(args), reasoning) == ("get_weather", {"city": "Paris"}, "Need the weather.")
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # Job 3: cut by max_tokens in the middle of the analysis: a reply, finish_reason length.
    r = c.chat.completions.create(model="m", messages=user, max_tokens=5)
    assert r.choices[0].finish_reason == "length", r
    assert not r.choices[0].message.content
    assert "It is sunny.".startswith(r.choices[0].message.reasoning_content or ""), r
    # Jobs 4 and 5: the Responses API, stateless, with the function call fed back.
    r = c.responses.create(model="m", input="Weather in Paris?", tools=[
        {"type": "function", "name": "get_weather", "parameters": TOOLS[0]["function"]["parameters"]}])
    kinds = [o.type for o in r.output]
    assert kinds == ["reasoning", "function_call"], kinds
    fc = r.output[1]
    r = c.responses.create(model="m", input=[
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": fc.call_id, "name": fc.name, "arguments": fc.arguments},
        {"type": "function_call_output", "call_id": fc.call_id, "output": "clear"}],
        tools=[{"type": "function", "name": "get_weather"}])
    assert r.output_text == "Sunny in Paris.", r
    assert r.status == "completed"
    # Jobs 6 and 7: the Responses API streamed: typed events, items opened and closed in order.
    events = list(c.responses.create(model="m", input="Weather in Paris?", stream=True, tools=[
        {"type": "function", "name": "get_weather", "parameters": TOOLS[0]["function"]["parameters"]}]))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == {"city": "Paris"}, args
    final = events[-1].response
    assert [o.type for o in final.output] == ["reasoning", "function_call"], final.output
    assert final.output[1].name == "get_weather" and json.loads(final.output[1].arguments) == {"city": "Paris"}
    seq = [e.sequence_number for e in events]
    assert seq == sorted(seq), seq
    events = list(c.responses.create(model="m", input="And now?", stream=True))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    reasoning = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert (reasoning, text) == ("It is sunny.", "Sunny in Paris."), (reasoning, text)
    assert events[-1].response.output_text == "Sunny in Paris."


def slow(base):
    c = client(base)
    user = [{"role": "user", "content": "Tell me a long story."}]
    # Disconnect mid-stream: the next request starts at once instead of waiting for the
    # abandoned one's ~6 s script.
    stream = c.chat.completions.create(model="m", messages=user, stream=True)
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.response.close()
    t0 = time.time()
    r = c.chat.completions.create(model="m", messages=user, max_tokens=5)
    assert r.choices[0].finish_reason == "length"
    assert time.time() - t0 < 3.0, f"waited {time.time() - t0:.1f} s: the disconnect did not cancel"
    # Concurrent requests: one runs, one waits (--queue 1), the rest are refused with 503.
    results = []

    def one():
        try:
            # ~0.9 s of scripted ids: the later requests arrive while this one runs.
            r = c.chat.completions.create(model="m", messages=user, max_tokens=30)
            results.append(r.choices[0].finish_reason)
        except openai.APIStatusError as e:
            results.append((e.status_code, e.body.get("code") if isinstance(e.body, dict) else e.body))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
        time.sleep(0.1)
    for t in threads:
        t.join()
    done = [x for x in results if x == "length"]
    full = [x for x in results if x == (503, "queue_full")]
    assert len(done) >= 2 and len(full) >= 1 and len(done) + len(full) == 4, results


def auth(base, key):
    try:
        client(base, "wrong").models.list()
        raise AssertionError("wrong key accepted")
    except openai.AuthenticationError:
        pass
    assert client(base, key).models.list().data
    # /health needs no key.
    assert json.load(urllib.request.urlopen(base + "/health"))["status"] == "ok"
    # A body over --max-body is refused with an OpenAI-style error, not read to the end.
    big = json.dumps({"messages": [{"role": "user", "content": "x" * (2 << 20)}]}).encode()
    req = urllib.request.Request(base + "/v1/chat/completions", data=big, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req)
        raise AssertionError("an oversized body was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 413, e.code
        assert "error" in json.load(e), "no error body"


if __name__ == "__main__":
    scenario, base, *rest = sys.argv[1:]
    {"real": real, "scripted": scripted, "slow": slow, "auth": auth}[scenario](base, *rest)
    print(f"{scenario}: ok")
