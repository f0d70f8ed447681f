//! `/v1/responses` with `"stream": true`: the Responses API's typed SSE events. Each run of
//! reasoning, text or tool-call deltas is one output item: `output_item.added`, its deltas,
//! its `.done` events and `output_item.done`; `response.created` first and
//! `response.completed` (or `.incomplete`) with the whole response last.

use axum::response::sse::Event;
use axum::response::Response;
use serde_json::{json, Value};

use crate::conversation::{Delta, ReplyParser, ToolCall};

use super::engine::JobHandle;
use super::next_id;
use super::responses::{function_call_item, message_item, reasoning_item, response, status};
use super::stream::{self, Step};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Reasoning,
    Message,
    Call(usize),
}

struct Open {
    kind: Kind,
    id: String,
    text: String,
    call: Option<ToolCall>,
}

/// Turns deltas into events, remembering every finished item for the final response.
struct Items {
    open: Option<Open>,
    done: Vec<Value>,
    seq: u64,
    events: Vec<Event>,
}

impl Items {
    fn emit(&mut self, kind: &str, mut body: Value) {
        body["type"] = json!(kind);
        body["sequence_number"] = json!(self.seq);
        self.seq += 1;
        self.events
            .push(Event::default().event(kind).data(body.to_string()));
    }

    fn index(&self) -> usize {
        self.done.len()
    }

    fn start(&mut self, kind: Kind, call: Option<ToolCall>) {
        let (prefix, item) = match kind {
            Kind::Reasoning => (
                "rs_",
                json!({"type": "reasoning", "summary": [], "content": []}),
            ),
            Kind::Message => (
                "msg_",
                json!({"type": "message", "role": "assistant", "status": "in_progress", "content": []}),
            ),
            Kind::Call(_) => (
                "fc_",
                json!({"type": "function_call", "status": "in_progress",
                "arguments": "", "call_id": call.as_ref().map(|c| c.id.clone()),
                "name": call.as_ref().map(|c| c.name.clone())}),
            ),
        };
        let id = next_id(prefix);
        let mut item = item;
        item["id"] = json!(id);
        let index = self.index();
        self.emit(
            "response.output_item.added",
            json!({"output_index": index, "item": item}),
        );
        if kind == Kind::Message {
            self.emit("response.content_part.added", json!({"item_id": id, "output_index": index,
                "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}));
        }
        self.open = Some(Open {
            kind,
            id,
            text: String::new(),
            call,
        });
    }

    fn close(&mut self, final_status: &str) {
        let Some(open) = self.open.take() else {
            return;
        };
        let index = self.index();
        let (id, text) = (open.id.as_str(), open.text.as_str());
        let item = match open.kind {
            Kind::Reasoning => {
                self.emit(
                    "response.reasoning_text.done",
                    json!({"item_id": id,
                    "output_index": index, "content_index": 0, "text": text}),
                );
                reasoning_item(id, text)
            }
            Kind::Message => {
                self.emit(
                    "response.output_text.done",
                    json!({"item_id": id,
                    "output_index": index, "content_index": 0, "text": text}),
                );
                self.emit(
                    "response.content_part.done",
                    json!({"item_id": id,
                    "output_index": index, "content_index": 0,
                    "part": {"type": "output_text", "text": text, "annotations": []}}),
                );
                message_item(id, text, final_status)
            }
            Kind::Call(_) => {
                self.emit(
                    "response.function_call_arguments.done",
                    json!({"item_id": id,
                    "output_index": index, "arguments": text}),
                );
                let call = ToolCall {
                    arguments: text.to_owned(),
                    ..open.call.clone().unwrap_or(ToolCall {
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    })
                };
                function_call_item(id, &call, final_status)
            }
        };
        self.emit(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.done.push(item);
    }

    fn delta(&mut self, d: &Delta) {
        let want = match d {
            Delta::Reasoning(_) => Kind::Reasoning,
            Delta::Content(_) => Kind::Message,
            Delta::ToolCall { index, .. } | Delta::ToolArguments { index, .. } => {
                Kind::Call(*index)
            }
        };
        if let Delta::ToolCall { id, name, .. } = d {
            self.close("completed");
            let call = ToolCall {
                id: id.clone(),
                name: name.clone(),
                arguments: String::new(),
            };
            self.start(want, Some(call));
            return;
        }
        if self.open.as_ref().map(|o| o.kind) != Some(want) {
            self.close("completed");
            self.start(want, None);
        }
        let index = self.index();
        let Some(open) = self.open.as_mut() else {
            return;
        };
        let (kind, text) = match d {
            Delta::Reasoning(t) => ("response.reasoning_text.delta", t),
            Delta::Content(t) => ("response.output_text.delta", t),
            Delta::ToolArguments { text, .. } => ("response.function_call_arguments.delta", text),
            Delta::ToolCall { .. } => return,
        };
        open.text.push_str(text);
        let id = open.id.clone();
        let mut body = json!({"item_id": id, "output_index": index, "delta": text});
        if kind != "response.function_call_arguments.delta" {
            body["content_index"] = json!(0);
        }
        self.emit(kind, body);
    }
}

pub fn sse(mut handle: JobHandle, parser: ReplyParser, id: String, model: String) -> Response {
    stream::sse(move |events| async move {
        let mut items = Items {
            open: None,
            done: Vec::new(),
            seq: 0,
            events: Vec::new(),
        };
        let created = json!({"id": id, "object": "response", "created_at": super::unix_now(),
            "model": model, "status": "in_progress", "output": []});
        items.emit("response.created", json!({"response": created.clone()}));
        items.emit("response.in_progress", json!({"response": created}));
        let mut parser = Some(parser);
        loop {
            let step = stream::next_step(&mut handle, &mut parser).await;
            let last = match step {
                Ok(Step::Deltas(deltas)) => {
                    deltas.iter().for_each(|d| items.delta(d));
                    false
                }
                Ok(Step::Done(done, deltas)) => {
                    let (reply, finished) = *done;
                    deltas.iter().for_each(|d| items.delta(d));
                    let st = status(&reply);
                    items.close(st);
                    let output = std::mem::take(&mut items.done);
                    let body = response(&id, &model, &reply, &finished, output);
                    let kind = if st == "completed" {
                        "response.completed"
                    } else {
                        "response.incomplete"
                    };
                    items.emit(kind, json!({"response": body}));
                    true
                }
                Err(e) => {
                    items.emit(
                        "error",
                        json!({"message": e.to_string(), "code": null,
                        "param": null}),
                    );
                    true
                }
            };
            for ev in items.events.drain(..) {
                events.send(ev).await?;
            }
            if last {
                return Ok(());
            }
        }
    })
}
