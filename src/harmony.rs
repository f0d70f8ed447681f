//! Harmony, the chat format gpt-oss was trained on
//! (https://github.com/openai/harmony/blob/main/docs/format.md): its tokens, the one-turn
//! request `generate` renders (through `conversation::render`), stop ids, and a streaming parser
//! that splits the model's output into channels.
//!
//! Special-token ids are looked up through the tokenizer by their text, never hard-coded, so
//! the parser runs the same on o200k_harmony and on small test vocabularies.

use std::fmt;
use std::str::FromStr;

use crate::tokenizer::{DecodeStream, Tokenizer};
use crate::{Error, Result};

pub const START: &str = "<|start|>";
pub const END: &str = "<|end|>";
pub const MESSAGE: &str = "<|message|>";
pub const CHANNEL: &str = "<|channel|>";
pub const CONSTRAIN: &str = "<|constrain|>";
pub const RETURN: &str = "<|return|>";
pub const CALL: &str = "<|call|>";
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// The first line of harmony's default system message.
pub const DEFAULT_IDENTITY: &str = "You are ChatGPT, a large language model trained by OpenAI.";
pub const KNOWLEDGE_CUTOFF: &str = "2024-06";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reasoning {
    Low,
    #[default]
    Medium,
    High,
}

impl Reasoning {
    pub fn as_str(self) -> &'static str {
        match self {
            Reasoning::Low => "low",
            Reasoning::Medium => "medium",
            Reasoning::High => "high",
        }
    }
}

impl fmt::Display for Reasoning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Reasoning {
    type Err = Error;

    fn from_str(s: &str) -> Result<Reasoning> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" => Ok(Reasoning::Low),
            "medium" => Ok(Reasoning::Medium),
            "high" => Ok(Reasoning::High),
            _ => Err(Error::argument(
                "reasoning",
                format!("'{s}' is not one of low, medium, high"),
            )),
        }
    }
}

/// One user turn and the system/developer context around it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatRequest {
    /// Replaces `DEFAULT_IDENTITY`, the first line of the system message.
    pub system_identity: Option<String>,
    /// `YYYY-MM-DD`; the `Current date:` line is left out when `None`.
    pub current_date: Option<String>,
    pub reasoning: Reasoning,
    /// Rendered as a developer message under `# Instructions`.
    pub developer_instructions: Option<String>,
    pub user: String,
}

impl ChatRequest {
    pub fn new(user: impl Into<String>) -> ChatRequest {
        ChatRequest {
            user: user.into(),
            ..ChatRequest::default()
        }
    }
}

/// Ids to stop sampling on: `<|return|>`, `<|call|>` and the model's generation_config
/// `eos_token_id`s, in that order without repeats. Never `<|end|>`: the model emits it between
/// its analysis and final messages.
pub fn stop_ids(tokenizer: &Tokenizer, generation_config_eos: &[u32]) -> Vec<u32> {
    let end = tokenizer.token_id(END);
    let mut ids: Vec<u32> = Vec::new();
    let candidates = [RETURN, CALL]
        .iter()
        .filter_map(|s| tokenizer.token_id(s))
        .chain(generation_config_eos.iter().copied());
    for id in candidates {
        if Some(id) != end && !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// The ids of harmony's structural tokens in one vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HarmonyTokens {
    pub start: u32,
    pub end: u32,
    pub message: u32,
    pub channel: u32,
    pub constrain: u32,
    pub return_: u32,
    pub call: u32,
    pub end_of_text: Option<u32>,
}

impl HarmonyTokens {
    pub fn from_tokenizer(tokenizer: &Tokenizer) -> Result<HarmonyTokens> {
        let get = |s: &str| {
            tokenizer.token_id(s).ok_or_else(|| Error::Tokenizer {
                path: tokenizer.path().to_path_buf(),
                message: format!("no {s} token: not a harmony (gpt-oss) tokenizer"),
            })
        };
        Ok(HarmonyTokens {
            start: get(START)?,
            end: get(END)?,
            message: get(MESSAGE)?,
            channel: get(CHANNEL)?,
            constrain: get(CONSTRAIN)?,
            return_: get(RETURN)?,
            call: get(CALL)?,
            end_of_text: tokenizer.token_id(END_OF_TEXT),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Channel {
    Analysis,
    Commentary,
    Final,
    Other(String),
}

impl Channel {
    fn from_name(name: &str) -> Channel {
        match name {
            "analysis" => Channel::Analysis,
            "commentary" => Channel::Commentary,
            "final" => Channel::Final,
            other => Channel::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Channel::Analysis => "analysis",
            Channel::Commentary => "commentary",
            Channel::Final => "final",
            Channel::Other(s) => s,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message header: `{role}[ to={recipient}]<|channel|>{channel}[ to={recipient}][ {type}]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub role: String,
    /// `Final` when the header names no channel.
    pub channel: Channel,
    /// `functions.get_weather` for `to=functions.get_weather`.
    pub recipient: Option<String>,
    /// `json` for ` <|constrain|>json`, `code` for ` code`.
    pub content_type: Option<String>,
}

impl Header {
    fn parse(text: &str) -> Header {
        let (before, after) = text.split_once(CHANNEL).unwrap_or((text, ""));
        let words = (before.split_whitespace().map(|w| (w, false)))
            .chain(after.split_whitespace().map(|w| (w, true)));
        let (mut role, mut channel, mut recipient, mut content_type) = (None, None, None, None);
        for (word, after_channel) in words {
            if let Some(r) = word.strip_prefix("to=") {
                recipient = Some(r.to_owned());
            } else if let Some(t) = word.strip_prefix(CONSTRAIN) {
                // A bare `<|constrain|>` leaves its type to the next word.
                if !t.is_empty() {
                    content_type = Some(t.to_owned());
                }
            } else if !after_channel && role.is_none() {
                role = Some(word.to_owned());
            } else if after_channel && channel.is_none() {
                channel = Some(Channel::from_name(word));
            } else {
                content_type = Some(word.to_owned());
            }
        }
        Header {
            // Only a header written without `<|start|>{role}` (after an `<|end|>`) lacks a role,
            // and only the assistant writes here.
            role: role.unwrap_or_else(|| "assistant".to_owned()),
            channel: channel.unwrap_or(Channel::Final),
            recipient,
            content_type,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopKind {
    /// `<|return|>`: the final answer is complete.
    Return,
    /// `<|call|>`: the message is a tool call; the caller runs the tool.
    Call,
    /// `<|endoftext|>`, in the HF generation_config's eos list.
    EndOfText,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A header is complete (`<|message|>` seen); content on `header.channel` follows.
    MessageStart(Header),
    /// Content text, whole UTF-8 characters only.
    Text {
        channel: Channel,
        text: String,
    },
    /// The message is closed: by `<|end|>`, by a stop token, or by a `<|start|>` that came
    /// without an `<|end|>`.
    MessageEnd,
    Stop(StopKind),
}

enum State {
    /// Collecting a header: decoded text so far, and ordinary ids not yet decoded.
    Header { text: String, ids: Vec<u32> },
    Content {
        channel: Channel,
        stream: DecodeStream,
    },
}

/// Splits sampled ids into harmony messages as they arrive.
///
/// Starts inside the assistant header that the prompt opened with `<|start|>assistant`, so the
/// first ids are typically `<|channel|>analysis<|message|>`. It does not stop by itself: after
/// `Event::Stop` it accepts further ids as a new message.
pub struct HarmonyParser {
    tokenizer: Tokenizer,
    tokens: HarmonyTokens,
    state: State,
}

impl HarmonyParser {
    pub fn new(tokenizer: &Tokenizer) -> Result<HarmonyParser> {
        Ok(HarmonyParser {
            tokens: HarmonyTokens::from_tokenizer(tokenizer)?,
            tokenizer: tokenizer.clone(),
            state: State::Header {
                text: "assistant".to_owned(),
                ids: Vec::new(),
            },
        })
    }

    /// The channel of the message whose content is being read, `None` inside a header.
    pub fn channel(&self) -> Option<&Channel> {
        match &self.state {
            State::Content { channel, .. } => Some(channel),
            State::Header { .. } => None,
        }
    }

    fn new_header() -> State {
        State::Header {
            text: String::new(),
            ids: Vec::new(),
        }
    }

    /// Feeds one sampled id; returns what it completed.
    pub fn push(&mut self, id: u32) -> Result<Vec<Event>> {
        let t = self.tokens;
        let mut events = Vec::new();
        let is_stop = id == t.return_ || id == t.call || Some(id) == t.end_of_text;
        if id == t.end || id == t.start || is_stop {
            // Anything that closes the message flushes its held-back text first.
            if let State::Content { .. } = self.state {
                self.flush_content(&mut events)?;
                events.push(Event::MessageEnd);
            }
            self.state = Self::new_header();
            if id == t.return_ {
                events.push(Event::Stop(StopKind::Return));
            } else if id == t.call {
                events.push(Event::Stop(StopKind::Call));
            } else if Some(id) == t.end_of_text {
                events.push(Event::Stop(StopKind::EndOfText));
            }
            return Ok(events);
        }

        match &mut self.state {
            State::Header { text, ids } => {
                let structural = id == t.channel || id == t.constrain || id == t.message;
                if !structural {
                    if self.tokenizer.is_special(id) {
                        log::debug!("harmony: special id {id} ignored in a header");
                    } else {
                        ids.push(id);
                    }
                    return Ok(events);
                }
                // Header text is decoded a run at a time, so a run is never cut inside a
                // character.
                if !ids.is_empty() {
                    text.push_str(&self.tokenizer.decode(ids)?);
                    ids.clear();
                }
                if id == t.channel {
                    text.push_str(CHANNEL);
                } else if id == t.constrain {
                    // Spaced so `<|constrain|>json` stays a word apart from the channel name.
                    text.push(' ');
                    text.push_str(CONSTRAIN);
                } else {
                    let header = Header::parse(text);
                    self.state = State::Content {
                        channel: header.channel.clone(),
                        stream: self.tokenizer.decode_stream(),
                    };
                    events.push(Event::MessageStart(header));
                }
            }
            State::Content { channel, stream } => {
                if self.tokenizer.is_special(id) {
                    // <|channel|>, <|message|>, reserved ids: not text, and no structure here.
                    log::debug!("harmony: special id {id} ignored in {channel} content");
                } else if let Some(text) = stream.step(id)? {
                    events.push(Event::Text {
                        channel: channel.clone(),
                        text,
                    });
                }
            }
        }
        Ok(events)
    }

    /// Releases content text still held back (a character cut off by the end of sampling).
    pub fn finish(&mut self) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        self.flush_content(&mut events)?;
        Ok(events)
    }

    fn flush_content(&mut self, events: &mut Vec<Event>) -> Result<()> {
        if let State::Content { channel, stream } = &mut self.state {
            if let Some(text) = stream.flush()? {
                events.push(Event::Text {
                    channel: channel.clone(),
                    text,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::test_support::tiny;

    #[test]
    fn reasoning_parses() {
        assert_eq!("HIGH".parse::<Reasoning>().unwrap(), Reasoning::High);
        assert_eq!(" low".parse::<Reasoning>().unwrap(), Reasoning::Low);
        assert_eq!(Reasoning::default(), Reasoning::Medium);
        let err = "maximum".parse::<Reasoning>().unwrap_err();
        assert!(matches!(err, Error::Argument { ref name, .. } if name == "reasoning"));
    }

    #[test]
    fn stop_ids_never_include_end() {
        let t = tiny();
        let id = |s| t.token_id(s).unwrap();
        let eos = [id(RETURN), id(END_OF_TEXT), id(CALL), id(END)];
        assert_eq!(
            stop_ids(&t, &eos),
            vec![id(RETURN), id(CALL), id(END_OF_TEXT)]
        );
        assert_eq!(stop_ids(&t, &[]), vec![id(RETURN), id(CALL)]);
    }

    /// Feeds `text` (harmony tokens spelled out) through the parser one id at a time.
    fn parse(t: &Tokenizer, text: &str) -> Vec<Event> {
        let mut p = HarmonyParser::new(t).unwrap();
        let mut events = Vec::new();
        for id in t.encode(text).unwrap() {
            events.extend(p.push(id).unwrap());
        }
        events.extend(p.finish().unwrap());
        events
    }

    /// Content text per message, with adjacent text events of one channel joined.
    fn texts(events: &[Event]) -> Vec<(Channel, String)> {
        let mut out: Vec<(Channel, String)> = Vec::new();
        let mut open = false;
        for e in events {
            match e {
                Event::MessageStart(h) => {
                    out.push((h.channel.clone(), String::new()));
                    open = true;
                }
                Event::Text { channel, text } => {
                    assert!(open, "text outside a message: {events:?}");
                    let last = out.last_mut().unwrap();
                    assert_eq!(&last.0, channel);
                    last.1.push_str(text);
                }
                Event::MessageEnd => open = false,
                Event::Stop(_) => {}
            }
        }
        out
    }

    #[test]
    fn separates_channels_and_stops_on_return_not_end() {
        let t = tiny();
        let events = parse(
            &t,
            "<|channel|>analysis<|message|>Need 2+2. héllo<|end|>\
             <|start|>assistant<|channel|>final<|message|>4 🦀<|return|>",
        );
        assert_eq!(
            texts(&events),
            vec![
                (Channel::Analysis, "Need 2+2. héllo".into()),
                (Channel::Final, "4 🦀".into())
            ]
        );
        let ends = events.iter().filter(|e| **e == Event::MessageEnd).count();
        assert_eq!(ends, 2);
        let stops: Vec<_> = events
            .iter()
            .filter(|e| matches!(e, Event::Stop(_)))
            .collect();
        assert_eq!(stops, vec![&Event::Stop(StopKind::Return)]);
        assert_eq!(events.last(), Some(&Event::Stop(StopKind::Return)));
        // Text events never carry part of a character.
        for e in &events {
            if let Event::Text { text, .. } = e {
                assert!(!text.contains('\u{FFFD}'), "{events:?}");
            }
        }
    }

    #[test]
    fn multibyte_characters_split_across_ids_come_out_whole() {
        let t = tiny();
        let mut p = HarmonyParser::new(&t).unwrap();
        for id in t.encode("<|channel|>final<|message|>").unwrap() {
            p.push(id).unwrap();
        }
        assert_eq!(p.channel(), Some(&Channel::Final));
        // 🦀 is four byte tokens in the tiny vocabulary: nothing comes out until the last one.
        let crab = t.encode("🦀").unwrap();
        assert_eq!(crab.len(), 4);
        for &id in &crab[..3] {
            assert_eq!(p.push(id).unwrap(), vec![]);
        }
        assert_eq!(
            p.push(crab[3]).unwrap(),
            vec![Event::Text {
                channel: Channel::Final,
                text: "🦀".into()
            }]
        );
        // A character cut off by <|end|> is released (lossily) before the message ends.
        p.push(crab[0]).unwrap();
        let end = t.token_id(END).unwrap();
        assert_eq!(
            p.push(end).unwrap(),
            vec![
                Event::Text {
                    channel: Channel::Final,
                    text: "\u{FFFD}".into()
                },
                Event::MessageEnd
            ]
        );
    }

    #[test]
    fn tool_call_header_and_call_stop() {
        let t = tiny();
        let events = parse(
            &t,
            "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>\
             {\"location\": \"SF\"}<|call|>",
        );
        assert_eq!(
            events.first(),
            Some(&Event::MessageStart(Header {
                role: "assistant".into(),
                channel: Channel::Commentary,
                recipient: Some("functions.get_weather".into()),
                content_type: Some("json".into()),
            }))
        );
        assert_eq!(
            texts(&events),
            vec![(Channel::Commentary, "{\"location\": \"SF\"}".into())]
        );
        assert_eq!(
            &events[events.len() - 2..],
            &[Event::MessageEnd, Event::Stop(StopKind::Call)]
        );
    }

    #[test]
    fn header_forms() {
        let h = Header::parse("assistant to=browser.search<|channel|>commentary code");
        assert_eq!(h.role, "assistant");
        assert_eq!(h.channel, Channel::Commentary);
        assert_eq!(h.recipient.as_deref(), Some("browser.search"));
        assert_eq!(h.content_type.as_deref(), Some("code"));
        let h = Header::parse("browser.search to=assistant<|channel|>commentary");
        assert_eq!(h.role, "browser.search");
        assert_eq!(h.recipient.as_deref(), Some("assistant"));
        let h = Header::parse("assistant");
        assert_eq!(
            (h.channel, h.recipient, h.content_type),
            (Channel::Final, None, None)
        );
        assert_eq!(
            Header::parse("assistant<|channel|>thoughts").channel,
            Channel::Other("thoughts".into())
        );
    }

    #[test]
    fn content_without_a_channel_is_final_and_stray_specials_are_not_text() {
        let t = tiny();
        let events = parse(&t, "<|message|>plain<|reserved_1|> answer<|endoftext|>");
        assert_eq!(
            texts(&events),
            vec![(Channel::Final, "plain answer".into())]
        );
        assert_eq!(events.last(), Some(&Event::Stop(StopKind::EndOfText)));
    }

    #[test]
    fn keeps_parsing_after_a_stop() {
        let t = tiny();
        let events = parse(
            &t,
            "<|channel|>analysis<|message|>a<|return|><|start|>assistant<|channel|>final\
             <|message|>b<|end|>",
        );
        assert_eq!(
            texts(&events),
            vec![
                (Channel::Analysis, "a".into()),
                (Channel::Final, "b".into())
            ]
        );
    }

    #[test]
    fn a_vocabulary_without_harmony_tokens_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let json = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null,
            "model": {"type": "WordLevel", "vocab": {"a": 0, "[UNK]": 1}, "unk_token": "[UNK]"}
        });
        std::fs::write(&path, json.to_string()).unwrap();
        let t = Tokenizer::from_file(&path).unwrap();
        let err = HarmonyParser::new(&t).err().expect("no harmony tokens");
        assert!(err.to_string().contains("<|start|>"), "{err}");
    }
}
