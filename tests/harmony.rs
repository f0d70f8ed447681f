//! Harmony and the tokenizer on the real o200k_harmony vocabulary, built from the o200k_base
//! ranks that tiktoken-rs embeds (no download). tiktoken is the reference: openai/harmony
//! encodes with it. Our `Tokenizer` reads a tokenizer.json, so the test converts the ranks into
//! one (byte-level BPE) and checks both paths give the same ids.

mod common;

use common::o200k::{hf, tiktoken};
use oss_wgpu::conversation::render::single_turn_text;
use oss_wgpu::harmony::{stop_ids, Channel, ChatRequest, Event, HarmonyParser};
use oss_wgpu::harmony::{Reasoning, StopKind};

const VOCAB: usize = 201_088;

fn spec_request() -> ChatRequest {
    ChatRequest::new("What is 2 + 2?")
}

#[test]
fn spec_prompt_ids_on_the_real_vocabulary() {
    let ids = tiktoken().encode_with_special_tokens(&single_turn_text(&spec_request()).unwrap());
    // harmony docs/format.md: <|start|> system <|message|> ... <|end|> <|start|> assistant.
    assert_eq!(&ids[..3], &[200006, 17360, 200008]);
    assert_eq!(&ids[ids.len() - 3..], &[200007, 200006, 173781]);
    // <|end|><|start|>user<|message|> in the middle.
    assert!(ids.windows(4).any(|w| w == [200007, 200006, 1428, 200008]));
    assert_eq!(tiktoken().encode_ordinary("hello world"), vec![24912, 2375]);
}

#[test]
fn tokenizer_json_path_matches_tiktoken() {
    let t = hf();
    let dated = ChatRequest {
        current_date: Some("2025-08-05".into()),
        reasoning: Reasoning::High,
        developer_instructions: Some("Talk like a pirate.\n\n- Be brief.".into()),
        system_identity: Some("You are a test.".into()),
        user: "Déjà vu? 2+2=4; naïve café 日本語テキスト 🦀🧬 \r\n\ttabs   and   spaces\n\n\n"
            .into(),
    };
    let texts = [
        "hello world".to_string(),
        single_turn_text(&spec_request()).unwrap(),
        single_turn_text(&dated).unwrap(),
        "I'M DONE, you're right: they'll see it's 12345678 o'clock!!!  ".into(),
        "<|channel|>analysis<|message|>x<|end|><|start|>assistant<|channel|>final<|message|>y<|return|>".into(),
        "fn main() {\n    println!(\"{}\", 1_000_000 / 7);\n}\n".into(),
        "Ελληνικά, русский, العربية, עברית, हिन्दी, 한국어, ไทย".into(),
        "   leading and trailing   ".into(),
    ];
    for text in &texts {
        let expected = tiktoken().encode_with_special_tokens(text);
        let ids = t.encode(text).unwrap();
        assert_eq!(ids, expected, "encoding {text:?}");
        assert_eq!(&t.decode(&ids).unwrap(), text);
    }
    assert_eq!(t.encode("hello world").unwrap(), vec![24912, 2375]);
    assert_eq!(t.vocab_size(), VOCAB);
    for (s, id) in [
        ("<|startoftext|>", 199998),
        ("<|endoftext|>", 199999),
        ("<|return|>", 200002),
        ("<|constrain|>", 200003),
        ("<|channel|>", 200005),
        ("<|start|>", 200006),
        ("<|end|>", 200007),
        ("<|message|>", 200008),
        ("<|call|>", 200012),
    ] {
        assert_eq!(t.token_id(s), Some(id), "{s}");
        assert!(t.is_special(id));
    }
}

#[test]
fn stop_ids_on_the_real_vocabulary() {
    // The eos_token_id list of
    // https://huggingface.co/openai/gpt-oss-20b/blob/main/generation_config.json.
    assert_eq!(
        stop_ids(hf(), &[200002, 199999, 200012]),
        vec![200002, 200012, 199999]
    );
    assert!(!stop_ids(hf(), &[200007]).contains(&200007));
}

/// Runs `text`, encoded by tiktoken, through the parser; returns (channel, text) per message.
fn parse_real(text: &str) -> (Vec<(Channel, String)>, Vec<Event>) {
    let ids = tiktoken().encode_with_special_tokens(text);
    let mut parser = HarmonyParser::new(hf()).unwrap();
    let mut events = Vec::new();
    for id in ids {
        events.extend(parser.push(id).unwrap());
    }
    events.extend(parser.finish().unwrap());
    let mut messages: Vec<(Channel, String)> = Vec::new();
    for e in &events {
        match e {
            Event::MessageStart(h) => messages.push((h.channel.clone(), String::new())),
            Event::Text { text, .. } => {
                assert!(!text.contains('\u{FFFD}'), "split character in {events:?}");
                messages.last_mut().unwrap().1.push_str(text);
            }
            _ => {}
        }
    }
    (messages, events)
}

#[test]
fn parser_on_real_ids() {
    let output = "<|channel|>analysis<|message|>User asks: \"What is 2 + 2?\" Simple arithmetic. \
                  Provide answer.<|end|><|start|>assistant<|channel|>final<|message|>2 + 2 = 4.\
                  <|return|>";
    let ids = tiktoken().encode_with_special_tokens(output);
    // harmony docs/format.md: the channel names are single tokens.
    assert_eq!(&ids[..3], &[200005, 35644, 200008]);
    assert!(ids.windows(3).any(|w| w == [200005, 17196, 200008]));
    let (messages, events) = parse_real(output);
    assert_eq!(
        messages,
        vec![
            (
                Channel::Analysis,
                "User asks: \"What is 2 + 2?\" Simple arithmetic. Provide answer.".into()
            ),
            (Channel::Final, "2 + 2 = 4.".into()),
        ]
    );
    assert_eq!(events.last(), Some(&Event::Stop(StopKind::Return)));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Stop(_)))
            .count(),
        1
    );
}

#[test]
fn parser_keeps_characters_whole_on_real_ids() {
    let content = "Crab 🦀, DNA 🧬, hieroglyph 𓀀, rare 䶵 and ꙮ.";
    let ids = tiktoken().encode_ordinary(content);
    // Precondition: some token of this text is not valid UTF-8 on its own.
    assert!(
        ids.iter()
            .any(|&id| String::from_utf8(tiktoken().decode_bytes(&[id]).unwrap()).is_err()),
        "no split character in {ids:?}; pick rarer characters"
    );
    let (messages, _) = parse_real(&format!("<|channel|>final<|message|>{content}<|return|>"));
    assert_eq!(messages, vec![(Channel::Final, content.to_string())]);
}

/// Seeded random strings over a pool that exercises every branch of the o200k split pattern
/// (letter cases, marks, digits, apostrophe suffixes, whitespace runs, newlines, symbols).
#[test]
fn tokenizer_json_path_matches_tiktoken_on_random_text() {
    const SEED: u64 = 0x0200_6ba5;
    const STRINGS: usize = 400;
    let pool: Vec<&str> = vec![
        "a",
        "Z",
        "é",
        "É",
        "ß",
        "ǅ",
        "ʰ",
        "中",
        "ー",
        "\u{301}",
        "\u{94d}",
        "0",
        "7",
        "٣",
        "Ⅻ",
        "'",
        "'s",
        "'T",
        "'re",
        "'LL",
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "\u{a0}",
        "\u{3000}",
        ".",
        ",",
        "!",
        "/",
        "-",
        "_",
        "€",
        "🦀",
        "👩‍💻",
        "<|",
        "|>",
        "<|start|>",
        "<|end|>",
        "word",
        " Word",
        "WORD",
        "camelCase",
        "12345",
        "\\",
        "\"",
        "(",
        ")",
    ];
    let mut state = SEED;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..STRINGS {
        let len = 1 + (next() % 12) as usize;
        let text: String = (0..len)
            .map(|_| pool[(next() % pool.len() as u64) as usize])
            .collect();
        let expected = tiktoken().encode_with_special_tokens(&text);
        assert_eq!(
            hf().encode(&text).unwrap(),
            expected,
            "seed {SEED:#x}, {text:?}"
        );
    }
}
