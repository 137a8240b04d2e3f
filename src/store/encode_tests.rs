use super::*;
use crate::record::AuditEntry;
use std::collections::HashMap;

#[derive(Default)]
struct D {
    ids: HashMap<String, u32>,
    strs: Vec<String>,
}
impl Interner for D {
    fn intern(&mut self, s: &str) -> Option<u32> {
        if let Some(i) = self.ids.get(s) {
            return Some(*i);
        }
        let i = self.strs.len() as u32;
        self.strs.push(s.to_string());
        self.ids.insert(s.to_string(), i);
        Some(i)
    }
}
impl Resolver for D {
    fn resolve(&self, id: u32) -> Option<&str> {
        self.strs.get(id as usize).map(String::as_str)
    }
}

fn rec(id: &str, ts: u64) -> UsageRecord {
    UsageRecord {
        request_id: id.into(),
        ts_ms: ts,
        endpoint: "chat".into(),
        dialect: "openai".into(),
        provider: "openai".into(),
        provider_type: "openai".into(),
        model: "fast".into(),
        upstream_model: "gpt-4o-mini".into(),
        status: 200,
        usage: Usage {
            input_tokens: 1200,
            output_tokens: 300,
            cached_input_tokens: 1024,
            cache_write_tokens: 0,
            reasoning_tokens: 12,
        },
        usage_source: switchyard_filters::stream::UsageSource::Estimated,
        cost_usd: Some(0.000_123_4),
        cost_source: CostSource::Config,
        duration_ms: 812,
        ttft_ms: Some(120),
        user_path: "/acme/search/alice".into(),
        tags: vec![("env".into(), "prod".into()), ("app".into(), "bot".into())],
        key_id: "key_0123456789ab".into(),
        key_name: "checkout-app".into(),
        partial: true,
        error: None,
        attempts: 3,
    }
}

#[test]
fn block_round_trip_is_exact() {
    let mut d = D::default();
    let a = rec("0123456789abcdef00000001", 1_700_000_000_000);
    let mut b = rec("Not-Hex-Id", 1_700_000_000_050);
    b.upstream_model = b.model.clone();
    b.cost_usd = None;
    b.cost_source = CostSource::Unknown;
    b.ttft_ms = None;
    b.error = Some("x".repeat(MAX_INTERNED_LEN + 10));
    b.tags.clear();
    let buf = encode_block(&[&a, &b], &mut d);
    let (h, views) = decode_block(&buf, &d).expect("decode");
    assert_eq!(h.count, 2);
    assert_eq!((h.min_ts, h.max_ts), (a.ts_ms, b.ts_ms));
    assert_eq!(views[0].to_record(), a);
    assert_eq!(views[1].to_record(), b);
    assert_eq!(block_header(&buf).expect("hdr"), h);
    // A realistic record is a few dozen bytes.
    let one = encode_block(&[&a], &mut d);
    assert!(one.len() < 64, "{} bytes", one.len());
}

#[test]
fn damaged_bytes_are_errors_not_panics() {
    let mut d = D::default();
    let a = rec("ab", 5);
    let buf = encode_block(&[&a], &mut d);
    for cut in 0..buf.len() {
        assert!(decode_block(&buf[..cut], &d).is_err());
    }
    assert!(decode_counters(&[0xff; 3]).is_err());
}

fn audit(id: &str, ts: u64) -> AuditEntry {
    AuditEntry {
        request_id: id.into(),
        ts_ms: ts,
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        client: "127.0.0.1".into(),
        route: "openai/gpt-4o".into(),
        status: 502,
        upstream_status: Some(500),
        duration_ms: 10,
        ttft_ms: None,
        error: Some("upstream_error".into()),
        user_path: "/a".into(),
        key_id: "k1".into(),
        request_headers: vec![
            ("authorization".into(), "[REDACTED]".into()),
            ("user-agent".into(), "OpenAI/Python 1.54.4".into()),
        ],
        request_body: Some("{}".into()),
        response_body: None,
        bodies_truncated: false,
        attempts: vec![
            crate::record::AttemptRecord {
                provider: "openai".into(),
                model: "gpt-4o".into(),
                status: Some(500),
                error: Some("upstream_status".into()),
                duration_ms: 4,
            },
            crate::record::AttemptRecord {
                provider: "openai".into(),
                model: "gpt-4o".into(),
                status: None,
                error: Some("upstream_timeout".into()),
                duration_ms: 6,
            },
        ],
    }
}

#[test]
fn audit_block_round_trip_and_listing_without_bodies() {
    let a = audit("0123456789abcdef00000001", 42);
    let mut b = audit("r2", 42);
    b.upstream_status = None;
    b.ttft_ms = Some(7);
    b.error = Some("x".repeat(MAX_INTERNED_LEN + 10));
    b.request_body = None;
    b.bodies_truncated = true;
    b.request_headers.push(("x-odd".into(), String::new()));
    let mut c = audit("0123456789abcdef00000002", 50);
    c.error = None;
    let buf = encode_audit_block(&[&a, &b, &c]);
    let (h, views) = decode_audit_block(&buf).expect("block");
    assert_eq!((h.count, h.min_ts, h.max_ts), (3, 42, 50));
    assert_eq!(block_header(&buf).expect("hdr"), h);
    assert_eq!(
        views.iter().map(|v| v.has_bodies).collect::<Vec<_>>(),
        [true, false, true]
    );
    let strip = |a: &AuditEntry| AuditEntry {
        request_body: None,
        response_body: None,
        ..a.clone()
    };
    for (v, e) in views.iter().zip([&a, &b, &c]) {
        assert_eq!(v.to_entry(), strip(e));
    }
    let bodies = encode_audit_bodies(&a).expect("has a body");
    let mut back = views[0].to_entry();
    decode_audit_bodies(&bodies, &mut back).expect("bodies");
    assert_eq!(back, a);
    assert_eq!(encode_audit_bodies(&b), None);
    let found = find_in_audit_block(&buf, "r2").expect("find").expect("r2");
    assert_eq!(found.to_entry(), strip(&b));
    assert!(find_in_audit_block(&buf, "r3").expect("find").is_none());
    // A rewrite keeps which entries have bodies stored apart.
    let kept = [&views[1], &views[2]];
    let again = rewrite_audit_block(&kept);
    let (_, v2) = decode_audit_block(&again).expect("rewritten");
    assert_eq!(v2.iter().map(|v| v.has_bodies).collect::<Vec<_>>(), [false, true]);
    assert_eq!(v2[1].to_entry(), strip(&c));
    for cut in 0..buf.len() {
        assert!(decode_audit_block(&buf[..cut]).is_err());
    }
}

#[test]
fn older_usage_blocks_still_read_without_key_names_and_attempt_counts() {
    let mut d = D::default();
    let r = rec("r1", 5);
    let v3 = encode_block(&[&r], &mut d);
    assert_eq!(decode_block(&v3, &d).expect("v3").1[0].key_name, "checkout-app");
    // Version 2 had no key name at the end (here one dictionary id byte).
    let mut v2 = v3[..v3.len() - 1].to_vec();
    v2[0] = 2;
    let (h, views) = decode_block(&v2, &d).expect("v2");
    assert_eq!((h.version, views[0].attempts, views[0].key_name), (2, 3, ""));
    // Version 1 had no attempt count either.
    let mut v1 = v3[..v3.len() - 2].to_vec();
    v1[0] = 1;
    let (h, views) = decode_block(&v1, &d).expect("v1");
    assert_eq!((h.version, views[0].attempts), (1, 1));
    assert_eq!(
        views[0].to_record(),
        UsageRecord {
            attempts: 1,
            key_name: String::new(),
            ..r
        }
    );
    v1[0] = 4;
    assert!(decode_block(&v1, &d).is_err(), "a future version is refused");
}

#[test]
fn one_attempt_on_the_route_costs_a_varint_and_reads_back_whole() {
    let mut a = audit("0123456789abcdef00000001", 1);
    a.attempts.truncate(1);
    a.attempts[0].error = None;
    let mut longer = a.clone();
    longer.attempts[0].model = "gpt-4o-2024-08-06".into();
    let (short, long) = (encode_audit_block(&[&a]), encode_audit_block(&[&longer]));
    assert!(short.len() + 10 < long.len(), "{} vs {}", short.len(), long.len());
    for (buf, want) in [(&short, &a), (&long, &longer)] {
        let (_, v) = decode_audit_block(buf).expect("decode");
        assert_eq!(v[0].to_entry().attempts, want.attempts);
    }
}

#[test]
fn audit_block_strings_repeat_by_reference() {
    let one = encode_audit_block(&[&audit("0123456789abcdef00000001", 1)]).len();
    let a = audit("0123456789abcdef00000001", 1);
    let b = audit("0123456789abcdef00000002", 2);
    let two = encode_audit_block(&[&a, &b]).len();
    // The second entry: id, timestamp, numbers and one-byte references
    // (its two attempts: about five bytes each).
    assert!(two - one <= 50, "{one} then {two} bytes");
}

#[test]
fn counters_round_trip() {
    let c = Counters {
        requests: 3,
        errors: 1,
        partial: 1,
        input_tokens: 10,
        output_tokens: 20,
        cached_input_tokens: 5,
        cache_write_tokens: 2,
        reasoning_tokens: 1,
        cost_usd: 0.25,
        cost_unknown: 1,
        duration_ms: 999,
    };
    assert_eq!(decode_counters(&encode_counters(&c)).expect("dec"), c);
}
