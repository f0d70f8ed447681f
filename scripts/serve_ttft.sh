#!/usr/bin/env bash
# Time to first token with and without KV reuse through `oss-wgpu serve`, on a random-weight
# checkpoint of gpt-oss-20b's exact shapes written by the project's checkpoint writer.
#
#   scripts/serve_ttft.sh [BIN] [PRESET] [DIR]     (defaults: .gpu/bin/oss-wgpu 20b /tmp/oss-wgpu-<preset>)
#
# Needs curl and python3 (standard library only). The checkpoint's tokenizer is the tiny test
# vocabulary (the binary carries no o200k file): every id decodes, prompts are byte-level, and
# only token counts matter for the timing. Turn 1 (streamed) fills the cache; turn 2 (streamed)
# repeats it plus a reply and a new question, so it re-uses turn 1's prompt; then a cold prompt
# of turn 2's exact length (its first id changed, so nothing is shared) via /v1/completions.
set -euo pipefail
BIN=${1:-.gpu/bin/oss-wgpu}
PRESET=${2:-20b}
DIR=${3:-/tmp/oss-wgpu-$PRESET}
DATE=2025-01-01
WORK=$(mktemp -d)

if [ ! -f "$DIR/config.json" ]; then
  "$BIN" write-synthetic "$PRESET" "$DIR" --tokenizer tests/fixtures/tiny-a/tokenizer.json
fi

"$BIN" serve --model "$DIR" --port 0 --date "$DATE" --max-tokens 64 >"$WORK/serve.out" 2>"$WORK/serve.err" &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 1200); do
  grep -q "listening on" "$WORK/serve.out" 2>/dev/null && break
  kill -0 $PID 2>/dev/null || { cat "$WORK/serve.err"; exit 1; }
  sleep 0.5
done
BASE=$(sed -n 's/^listening on //p' "$WORK/serve.out")
echo "server at $BASE ($(tail -n 1 "$WORK/serve.err"))"

python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
story = " ".join(f"Sentence {i} of a long document about caches and attention." for i in range(40))
turn1 = [{"role": "user", "content": "Summarise this: " + story}]
turn2 = turn1 + [{"role": "assistant", "content": "It is about caches."},
                 {"role": "user", "content": "And what does sentence 7 say?"}]
for name, msgs in (("turn1", turn1), ("turn2", turn2)):
    body = {"messages": msgs, "max_tokens": 16, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    open(f"{work}/{name}.json", "w").write(json.dumps(body))
    open(f"{work}/{name}.messages.json", "w").write(json.dumps({"messages": msgs}))
PY

stream() {  # POST $1 streamed; prints the usage chunk's usage and timings
  curl -sN "$BASE/v1/chat/completions" -H 'Content-Type: application/json' -d @"$1" -w '\n%{time_total}\n' >"$1.out"
  python3 - "$1.out" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
last = [json.loads(l[6:]) for l in lines if l.startswith("data: {") and '"usage"' in l][-1]
u, t = last["usage"], last["timings"]
print(f"  prompt {u['prompt_tokens']} tokens, reused {u['prompt_tokens_details']['cached_tokens']}, "
      f"server time to first token {t['time_to_first_token_ms']:.1f} ms, decode {t['decode_tok_s']:.1f} tok/s, "
      f"request {float(lines[-1]) * 1e3:.0f} ms")
PY
}

echo "turn 1 (cold, streamed):"; stream "$WORK/turn1.json"
echo "turn 2 (re-uses turn 1, streamed):"; stream "$WORK/turn2.json"
cp "$WORK/turn2.json.out" "$WORK/turn2.reused"

# The cold prompt: turn 2's ids with the first one changed.
"$BIN" render --tokenizer "$DIR/tokenizer.json" --date "$DATE" "$WORK/turn2.messages.json" >"$WORK/turn2.ids"
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
ids = [int(x) for x in open(f"{work}/turn2.ids").read().strip().split(",")]
ids[0] = (ids[0] + 1) % 256
json.dump({"prompt": ids, "max_tokens": 16, "temperature": 0}, open(f"{work}/cold.json", "w"))
PY
curl -s "$BASE/v1/completions" -H 'Content-Type: application/json' -d @"$WORK/cold.json" -w '\n%{time_total}\n' >"$WORK/cold.out"
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
lines = open(f"{work}/cold.out").read().splitlines()
cold = json.loads(lines[0])
reused = [json.loads(l[6:]) for l in open(f"{work}/turn2.reused").read().splitlines()
          if l.startswith("data: {") and '"usage"' in l][-1]
print(f"cold prompt of the same length: {cold['usage']['prompt_tokens']} tokens, reused "
      f"{cold['usage']['prompt_tokens_details']['cached_tokens']}, server time to first token "
      f"{cold['timings']['time_to_first_token_ms']:.1f} ms")
print(f"TTFT turn 2 (KV reused: {reused['usage']['prompt_tokens_details']['cached_tokens']} of "
      f"{reused['usage']['prompt_tokens']} tokens): {reused['timings']['time_to_first_token_ms']:.1f} ms"
      f"  vs cold: {cold['timings']['time_to_first_token_ms']:.1f} ms")
PY
