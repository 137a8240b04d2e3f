//! Different dialects: SSE framing ([`SseDecoder`]) → the provider dialect's
//! decoder → IR [`StreamEvent`]s → the caller dialect's encoder.
//!
//! Output for each upstream event is written the moment the event is
//! complete. OpenAI callers get chunks, a usage chunk only when they asked,
//! then `data: [DONE]`; Anthropic callers get exactly one `message_start`,
//! contiguous blocks, one `message_delta`, one `message_stop`. When the
//! provider reported no usage, the caller still sees figures: the input
//! estimate in `message_start` and the estimate of both counts at the end.

use super::{Step, StreamFailure};
use crate::error::{Dialect, ErrorInfo};
use crate::ir::ResponseOptions;
use crate::ir::{StreamEvent, WireDialect};
use crate::sse::{SseDecoder, SseItem};
use crate::usage::Usage;
use crate::{anthropic, gemini, openai};

/// Per-dialect stream decoders (upstream SSE event → IR events).
#[derive(Debug)]
enum Decoder {
    OpenAi(openai::StreamDecoder),
    Anthropic(anthropic::StreamDecoder),
    Gemini(gemini::StreamDecoder),
}

impl Decoder {
    fn decode(&mut self, ev: &crate::sse::SseEvent, out: &mut Vec<StreamEvent>) {
        match self {
            Decoder::OpenAi(d) => d.decode(ev, out),
            Decoder::Anthropic(d) => d.decode(ev, out),
            Decoder::Gemini(d) => d.decode(ev, out),
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        match self {
            Decoder::OpenAi(d) => d.finish(out),
            Decoder::Anthropic(d) => d.finish(out),
            Decoder::Gemini(d) => d.finish(out),
        }
    }
}

/// Per-dialect stream encoders (IR events → caller SSE bytes).
#[derive(Debug)]
enum Encoder {
    OpenAi(openai::StreamEncoder),
    Anthropic(anthropic::StreamEncoder),
}

impl Encoder {
    fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi(e) => e.encode(ev, out),
            Encoder::Anthropic(e) => e.encode(ev, out),
        }
    }
}

/// The translating relay.
#[derive(Debug)]
pub(crate) struct Translate {
    sse: SseDecoder,
    decoder: Decoder,
    encoder: Encoder,
    events: Vec<StreamEvent>,
    /// The latest usage the provider reported (`None`: nothing yet).
    reported: Option<Usage>,
    input_estimate: u64,
    output_chars: u64,
    first_token: bool,
}

impl Translate {
    pub(crate) fn new(
        upstream: WireDialect,
        caller: Dialect,
        opts: ResponseOptions,
        input_estimate: u64,
        max_event_bytes: usize,
    ) -> Self {
        let decoder = match upstream {
            WireDialect::OpenAi => Decoder::OpenAi(openai::StreamDecoder::new()),
            WireDialect::Anthropic => Decoder::Anthropic(anthropic::StreamDecoder::new()),
            WireDialect::Gemini => Decoder::Gemini(gemini::StreamDecoder::new(opts.id.clone())),
        };
        let encoder = match caller {
            Dialect::OpenAi => Encoder::OpenAi(openai::StreamEncoder::new(opts)),
            Dialect::Anthropic => Encoder::Anthropic(anthropic::StreamEncoder::new(opts)),
        };
        Translate {
            sse: SseDecoder::with_max_event_bytes(max_event_bytes),
            decoder,
            encoder,
            events: Vec::new(),
            reported: None,
            input_estimate,
            output_chars: 0,
            first_token: false,
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Step {
        for piece in bytes.chunks(64 * 1024) {
            if let Err(crate::sse::SseError::EventTooLarge { limit }) = self.sse.push(piece) {
                return Step::Failed(StreamFailure::TooLarge { limit });
            }
            match self.drain(out) {
                Step::Continue => {}
                other => return other,
            }
        }
        Step::Continue
    }

    pub(crate) fn end_of_input(&mut self, out: &mut Vec<u8>) -> Step {
        self.sse.finish();
        match self.drain(out) {
            Step::Continue => {}
            other => return other,
        }
        let mut evs = std::mem::take(&mut self.events);
        self.decoder.finish(&mut evs);
        let mut step = Step::Continue;
        for ev in evs.drain(..) {
            step = self.handle(ev, out);
            if !matches!(step, Step::Continue) {
                break;
            }
        }
        self.events = evs;
        step
    }

    fn drain(&mut self, out: &mut Vec<u8>) -> Step {
        let mut evs = std::mem::take(&mut self.events);
        let mut step = Step::Continue;
        'items: while let Some(item) = self.sse.next_item() {
            if let SseItem::Event(ev) = item {
                self.decoder.decode(&ev, &mut evs);
                for e in evs.drain(..) {
                    step = self.handle(e, out);
                    if !matches!(step, Step::Continue) {
                        break 'items;
                    }
                }
            }
        }
        evs.clear();
        self.events = evs;
        step
    }

    fn handle(&mut self, mut ev: StreamEvent, out: &mut Vec<u8>) -> Step {
        match &mut ev {
            StreamEvent::Start { usage, .. } => {
                if *usage != Usage::default() {
                    self.reported = Some(*usage);
                } else if usage.input_tokens == 0 {
                    usage.input_tokens = self.input_estimate;
                }
            }
            StreamEvent::Usage(u) if *u != Usage::default() => self.reported = Some(*u),
            StreamEvent::Text(t) | StreamEvent::Thinking(t) if !t.is_empty() => {
                self.first_token = true;
                self.output_chars += t.chars().count() as u64;
            }
            StreamEvent::ToolCallStart { .. } => self.first_token = true,
            StreamEvent::ToolCallArgs { fragment, .. } => self.output_chars += fragment.chars().count() as u64,
            StreamEvent::Error(e) => return Step::Failed(StreamFailure::Upstream(e.clone())),
            StreamEvent::Malformed(detail) => return Step::Failed(StreamFailure::Malformed(detail.clone())),
            StreamEvent::Done => {
                if self.reported.is_none() {
                    let estimate = Usage {
                        input_tokens: self.input_estimate,
                        output_tokens: crate::estimate::text_tokens(self.output_chars),
                        ..Usage::default()
                    };
                    self.encoder.encode(&StreamEvent::Usage(estimate), out);
                }
                self.encoder.encode(&ev, out);
                return Step::Complete;
            }
            _ => {}
        }
        self.encoder.encode(&ev, out);
        Step::Continue
    }

    pub(crate) fn write_error(&mut self, info: ErrorInfo, out: &mut Vec<u8>) {
        self.encoder.encode(&StreamEvent::Error(info), out);
    }

    pub(crate) fn reported_usage(&self) -> Option<Usage> {
        self.reported
    }

    pub(crate) fn output_chars(&self) -> u64 {
        self.output_chars
    }

    pub(crate) fn first_token_seen(&self) -> bool {
        self.first_token
    }
}

/// Encodes a whole response's events as the caller's stream.
pub(crate) fn replay(resp: &crate::ir::ChatResponse, caller: Dialect, opts: ResponseOptions) -> Vec<u8> {
    let mut encoder = match caller {
        Dialect::OpenAi => Encoder::OpenAi(openai::StreamEncoder::new(opts)),
        Dialect::Anthropic => Encoder::Anthropic(anthropic::StreamEncoder::new(opts)),
    };
    let mut out = Vec::new();
    for ev in resp.stream_events() {
        encoder.encode(&ev, &mut out);
    }
    out
}
