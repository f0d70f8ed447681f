//! The model's output as an API reply: final text (`content`), reasoning (the analysis
//! channel) and tool calls (messages to `functions.NAME`), as deltas while ids arrive and as a
//! whole at the end.
//!
//! Built on [`HarmonyParser`], which already accepts the header variants models emit (the
//! recipient before or after `<|channel|>`, `json` without `<|constrain|>`). Output cut
//! anywhere (max_tokens) still makes a reply: what was complete, `finish_reason: length`.

use crate::harmony::{Channel, Event, HarmonyParser, StopKind};
use crate::tokenizer::Tokenizer;

use super::render::FUNCTIONS;
use super::ConversationError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The message content as generated: JSON when the model followed the schema, and possibly
    /// cut short when the reply ended by length.
    pub arguments: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delta {
    Reasoning(String),
    Content(String),
    /// A tool call starts; its arguments follow as `ToolArguments` of the same index.
    ToolCall {
        index: usize,
        id: String,
        name: String,
    },
    ToolArguments {
        index: usize,
        text: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub content: String,
    pub reasoning: String,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: FinishReason,
    /// Generated ids that were reasoning (from an analysis message's `<|message|>` to its end).
    pub reasoning_tokens: usize,
}

#[derive(Clone, Debug, Default)]
pub struct ReplyOptions {
    /// Whether tools were offered: only then is a message to a recipient a tool call (else
    /// its text is content).
    pub tools: bool,
    /// Stop sequences, matched in the content; the reply ends before the first one.
    pub stop: Vec<String>,
    /// Tool call ids are this prefix and the call's index.
    pub call_id_prefix: String,
}

/// Stop sequences in streamed text: text is released as soon as it cannot be the start of a
/// stop sequence, and cut before the first match.
#[derive(Clone, Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Text not yet released: it could be the start of a stop sequence.
    held: String,
    hit: bool,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> StopMatcher {
        StopMatcher {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            ..StopMatcher::default()
        }
    }

    /// Whether a stop sequence matched (nothing more is released after it).
    pub fn hit(&self) -> bool {
        self.hit
    }

    /// Adds `text`; returns what can be released.
    pub fn push(&mut self, text: &str) -> String {
        if self.hit {
            return String::new();
        }
        if self.stops.is_empty() {
            return text.to_owned();
        }
        self.held.push_str(text);
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            self.held.truncate(at);
            self.hit = true;
            return std::mem::take(&mut self.held);
        }
        // Hold back the longest stop's length minus one byte, on a character boundary.
        let keep = self.stops.iter().map(|s| s.len() - 1).max().unwrap_or(0);
        let mut cut = self.held.len().saturating_sub(keep);
        while !self.held.is_char_boundary(cut) {
            cut -= 1;
        }
        let rest = self.held.split_off(cut);
        std::mem::replace(&mut self.held, rest)
    }

    /// Releases what is held (the text ended without a match).
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

enum Target {
    Nothing,
    Reasoning,
    Content,
    Tool(usize),
}

pub struct ReplyParser {
    parser: HarmonyParser,
    opts: ReplyOptions,
    content: String,
    reasoning: String,
    tool_calls: Vec<ToolCall>,
    target: Target,
    stop: StopMatcher,
    done: Option<FinishReason>,
    reasoning_tokens: usize,
}

impl ReplyParser {
    pub fn new(tokenizer: &Tokenizer, opts: ReplyOptions) -> Result<Self, ConversationError> {
        Ok(ReplyParser {
            parser: HarmonyParser::new(tokenizer)?,
            stop: StopMatcher::new(opts.stop.clone()),
            opts,
            content: String::new(),
            reasoning: String::new(),
            tool_calls: Vec::new(),
            target: Target::Nothing,
            done: None,
            reasoning_tokens: 0,
        })
    }

    /// Whether the reply is complete (a stop token or a stop sequence): generation can end.
    pub fn is_done(&self) -> bool {
        self.done.is_some()
    }

    /// Feeds one generated id; ids after the reply is done are ignored.
    pub fn push(&mut self, id: u32) -> Result<Vec<Delta>, ConversationError> {
        let mut out = Vec::new();
        if self.done.is_none() {
            for ev in self.parser.push(id)? {
                self.event(ev, &mut out);
            }
            if matches!(self.target, Target::Reasoning) {
                self.reasoning_tokens += 1;
            }
        }
        Ok(out)
    }

    /// Ends the reply: what is still held back, and the whole reply. Without a stop the reply
    /// ended by length.
    pub fn finish(mut self) -> Result<(Vec<Delta>, Reply), ConversationError> {
        let mut out = Vec::new();
        if self.done.is_none() {
            for ev in self.parser.finish()? {
                self.event(ev, &mut out);
            }
        }
        self.release_held(&mut out);
        let reply = Reply {
            content: self.content,
            reasoning: self.reasoning,
            tool_calls: self.tool_calls,
            finish_reason: self.done.unwrap_or(FinishReason::Length),
            reasoning_tokens: self.reasoning_tokens,
        };
        Ok((out, reply))
    }

    fn event(&mut self, ev: Event, out: &mut Vec<Delta>) {
        match ev {
            Event::MessageStart(h) => {
                let recipient = h
                    .recipient
                    .filter(|r| r != "assistant" && r != "all" && self.opts.tools);
                self.target = if let Some(r) = recipient {
                    let index = self.tool_calls.len();
                    let name = r
                        .strip_prefix(FUNCTIONS)
                        .and_then(|n| n.strip_prefix('.'))
                        .unwrap_or(&r)
                        .to_owned();
                    let id = format!("{}{index}", self.opts.call_id_prefix);
                    out.push(Delta::ToolCall {
                        index,
                        id: id.clone(),
                        name: name.clone(),
                    });
                    self.tool_calls.push(ToolCall {
                        id,
                        name,
                        arguments: String::new(),
                    });
                    Target::Tool(index)
                } else if h.channel == Channel::Analysis {
                    Target::Reasoning
                } else {
                    Target::Content
                };
            }
            Event::Text { text, .. } => match self.target {
                Target::Reasoning => {
                    self.reasoning.push_str(&text);
                    out.push(Delta::Reasoning(text));
                }
                Target::Tool(index) => {
                    self.tool_calls[index].arguments.push_str(&text);
                    out.push(Delta::ToolArguments { index, text });
                }
                Target::Content | Target::Nothing => self.content(text, out),
            },
            Event::MessageEnd => self.target = Target::Nothing,
            Event::Stop(kind) => {
                self.release_held(out);
                self.done = Some(match kind {
                    StopKind::Call if !self.tool_calls.is_empty() => FinishReason::ToolCalls,
                    _ => FinishReason::Stop,
                });
            }
        }
    }

    fn content(&mut self, text: String, out: &mut Vec<Delta>) {
        let released = self.stop.push(&text);
        self.emit_content(released, out);
        if self.stop.hit() {
            self.done = Some(FinishReason::Stop);
        }
    }

    fn release_held(&mut self, out: &mut Vec<Delta>) {
        let held = self.stop.flush();
        self.emit_content(held, out);
    }

    fn emit_content(&mut self, text: String, out: &mut Vec<Delta>) {
        if !text.is_empty() {
            self.content.push_str(&text);
            out.push(Delta::Content(text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::test_support::tiny;

    fn run(text: &str, opts: ReplyOptions) -> (Vec<Delta>, Reply) {
        let t = tiny();
        let mut p = ReplyParser::new(&t, opts).unwrap();
        let mut deltas = Vec::new();
        for id in t.encode(text).unwrap() {
            deltas.extend(p.push(id).unwrap());
        }
        let (rest, reply) = p.finish().unwrap();
        deltas.extend(rest);
        (deltas, reply)
    }

    fn tools() -> ReplyOptions {
        ReplyOptions {
            tools: true,
            call_id_prefix: "call_".into(),
            ..ReplyOptions::default()
        }
    }

    #[test]
    fn reasoning_and_final_are_separate() {
        let (_, r) = run(
            "<|channel|>analysis<|message|>think<|end|><|start|>assistant<|channel|>final\
             <|message|>answer<|return|>",
            ReplyOptions::default(),
        );
        assert_eq!(
            (r.reasoning.as_str(), r.content.as_str()),
            ("think", "answer")
        );
        assert_eq!(r.finish_reason, FinishReason::Stop);
    }

    #[test]
    fn tool_call_with_recipient_before_or_after_the_channel_and_no_constrain() {
        for header in [
            "<|channel|>commentary to=functions.get_weather <|constrain|>json",
            " to=functions.get_weather<|channel|>commentary json",
            " to=functions.get_weather<|channel|>commentary",
        ] {
            let (deltas, r) = run(
                &format!(
                    "<|channel|>analysis<|message|>need weather<|end|><|start|>assistant{header}\
                     <|message|>{{\"city\":\"SF\"}}<|call|>"
                ),
                tools(),
            );
            assert_eq!(
                r.tool_calls,
                vec![ToolCall {
                    id: "call_0".into(),
                    name: "get_weather".into(),
                    arguments: "{\"city\":\"SF\"}".into()
                }],
                "{header}"
            );
            assert_eq!(r.finish_reason, FinishReason::ToolCalls);
            assert_eq!(r.content, "");
            assert!(deltas.contains(&Delta::ToolCall {
                index: 0,
                id: "call_0".into(),
                name: "get_weather".into()
            }));
        }
    }

    #[test]
    fn cut_anywhere_is_a_reply_by_length() {
        let t = tiny();
        let full = "<|channel|>analysis<|message|>think é<|end|><|start|>assistant to=functions.f\
                    <|channel|>commentary <|constrain|>json<|message|>{\"a\":1}<|call|>";
        let ids = t.encode(full).unwrap();
        for cut in 0..ids.len() {
            let mut p = ReplyParser::new(&t, tools()).unwrap();
            for &id in &ids[..cut] {
                p.push(id).unwrap();
            }
            let (_, r) = p.finish().unwrap();
            assert_eq!(r.finish_reason, FinishReason::Length, "cut at {cut}");
            assert!("think é".starts_with(r.reasoning.trim_end_matches('\u{FFFD}')));
        }
    }

    #[test]
    fn stop_sequences_end_the_content_and_are_not_part_of_it() {
        let opts = ReplyOptions {
            stop: vec!["END".into(), "xyz".into()],
            ..ReplyOptions::default()
        };
        let (deltas, r) = run(
            "<|channel|>final<|message|>hello wor ENDnever<|return|>",
            opts.clone(),
        );
        assert_eq!(r.content, "hello wor ");
        assert_eq!(r.finish_reason, FinishReason::Stop);
        let streamed: String = deltas
            .iter()
            .filter_map(|d| match d {
                Delta::Content(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(streamed, r.content);
        // A partial match at the end is released when the reply ends.
        let (_, r) = run("<|channel|>final<|message|>abc EN", opts);
        assert_eq!(
            (r.content.as_str(), r.finish_reason),
            ("abc EN", FinishReason::Length)
        );
    }

    #[test]
    fn a_recipient_without_tools_offered_is_content() {
        let (_, r) = run(
            "<|channel|>commentary to=functions.f<|message|>{}<|call|>",
            ReplyOptions::default(),
        );
        assert!(r.tool_calls.is_empty());
        assert_eq!(
            (r.content.as_str(), r.finish_reason),
            ("{}", FinishReason::Stop)
        );
    }
}
