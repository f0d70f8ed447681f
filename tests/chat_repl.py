"""Drives `oss-wgpu chat` through a pseudo-terminal (pexpect; run by tests/server.rs).

Usage: chat_repl.py BIN MODEL
"""

import sys

import pexpect

bin_, model = sys.argv[1:]
PROMPT = ">>> "


def spawn(*extra):
    return pexpect.spawn(
        bin_, ["chat", "--model", model, "--date", "2025-01-01", *extra],
        timeout=60, encoding="utf-8")


# The real tiny model: a turn, the commands, Ctrl-D to leave.
p = spawn("--temperature", "0", "--max-tokens", "16")
p.expect_exact(PROMPT)
p.sendline("hello")
p.expect_exact(PROMPT)
for command, answer in [("/reasoning high", "(reasoning high)"),
                        ("/reasoning extreme", "not one of low, medium, high"),
                        ("/show-reasoning", "(reasoning shown)"),
                        ("/reset", "(conversation cleared)")]:
    p.sendline(command)
    p.expect_exact(answer)
    p.expect_exact(PROMPT)
p.sendline("second turn")
p.expect_exact(PROMPT)
p.sendeof()
p.expect(pexpect.EOF)
p.close()
assert p.exitstatus == 0, p.exitstatus

# The scripted engine (slow enough to interrupt): streaming, reasoning shown, Ctrl-C stops the
# reply and not the program, twice.
long = ("<|channel|>analysis<|message|>thinking hard<|end|><|start|>assistant<|channel|>final"
        "<|message|>" + "word " * 100 + "<|return|>")
p = spawn("--scripted-reply", long, "--show-reasoning")
p.expect_exact(PROMPT)
for turn in ("tell me a story", "another one"):
    p.sendline(turn)
    p.expect_exact("thinking hard")
    p.expect_exact("word word")
    p.sendintr()
    p.expect_exact("[stopped]")
    p.expect_exact(PROMPT)
# Ctrl-C at the prompt clears the line only.
p.sendintr()
p.expect_exact(PROMPT)
p.sendline("/quit")
p.expect(pexpect.EOF)
p.close()
assert p.exitstatus == 0, p.exitstatus
print("chat: ok")
