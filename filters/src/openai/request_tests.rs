//! The OpenAI request codec's tests (kept apart so `request.rs` stays readable).

use super::*;

#[test]
fn decodes_core_fields_and_keeps_unknown_ones() {
    let body = br#"{"model":"gpt-4o","messages":[{"role":"developer","content":"be brief"},
        {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"low"}}]}],
        "max_completion_tokens":100,"stop":"END","seed":7,"stream":true,"stream_options":{"include_usage":true},
        "reasoning_effort":"low","tool_choice":"required"}"#;
    let r = decode_request(body).unwrap();
    assert_eq!(r.messages[0].role, Role::System);
    assert_eq!(r.max_tokens, Some(100));
    assert_eq!(r.stop, vec!["END"]);
    assert!(r.stream && r.include_usage);
    assert_eq!(r.tool_choice, Some(ToolChoice::Required));
    assert_eq!(r.reasoning.unwrap().effort, Some(Effort::Low));
    assert_eq!(r.extra.fields.get("seed"), Some(&json!(7)));
    assert!(matches!(
        &r.messages[1].content[1],
        Part::Image {
            source: ImageSource::Base64 { .. },
            ..
        }
    ));
}

#[test]
fn errors_name_the_param() {
    let e = decode_request(br#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("messages[0].role"));
    let e = decode_request(br#"{"model":"m","messages":[],"max_tokens":-1}"#).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("max_tokens"));
    assert!(decode_request(b"[1]").is_err());
}

#[test]
fn each_message_field_error_names_its_param() {
    let cases: &[(&str, &str, &str)] = &[
        (r#"[1]"#, "messages[0]", "`messages[0]` must be an object"),
        (
            r#"[{"content":"x"}]"#,
            "messages[0].role",
            "`messages[0].role` is required and must be a string",
        ),
        (
            r#"[{"role":"user","content":"x"},{"role":3}]"#,
            "messages[1].role",
            "is required",
        ),
        (
            r#"[{"role":"user","name":1,"content":"x"}]"#,
            "messages[0].name",
            "`messages[0].name` must be a string",
        ),
        (
            r#"[{"role":"user","content":7}]"#,
            "messages[0].content",
            "must be a string or an array of parts",
        ),
        (
            r#"[{"role":"user","content":[{"type":"audio"}]}]"#,
            "messages[0].content[0].type",
            "not supported",
        ),
        (
            r#"[{"role":"tool","content":"x"}]"#,
            "messages[0].tool_call_id",
            "is required",
        ),
        (
            r#"[{"role":"assistant","tool_calls":[{"function":{"name":"f"}}]}]"#,
            "messages[0].tool_calls[0].id",
            "is required",
        ),
    ];
    for (messages, param, says) in cases {
        let body = format!(r#"{{"model":"m","messages":{messages}}}"#);
        let e = decode_request(body.as_bytes()).unwrap_err();
        assert_eq!(e.param.as_deref(), Some(*param), "{messages}");
        assert!(e.message.contains(says), "{messages}: {}", e.message);
    }
    let e = decode_request(br#"{"model":"m","messages":{"role":"user"}}"#).unwrap_err();
    assert_eq!(
        (e.param.as_deref(), e.message.as_str()),
        (Some("messages"), "`messages` must be an array")
    );
    let e = decode_request(br#"{"messages":[]}"#).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("model"));
    let e = decode_request(br#"{"model":"m"}"#).unwrap_err();
    assert_eq!(e.message, "`messages` is required");
    let e = decode_request(b"{\"model\":").unwrap_err();
    assert!(e.message.starts_with("request body is not valid JSON"), "{}", e.message);
    let e = decode_request(b"[1]").unwrap_err();
    assert_eq!(e.message, "request body must be a JSON object");
}

#[test]
fn a_repeated_key_counts_once_with_its_last_value_and_unknown_fields_keep_their_order() {
    let body =
        br#"{"zeta":1,"model":"a","messages":[{"role":"system","role":"user","content":"first","content":"last"}],
        "alpha":{"k":[1,2]},"model":"b","mid":null}"#;
    let r = decode_request(body).unwrap();
    assert_eq!(r.model, "b");
    assert_eq!(r.messages.len(), 1);
    assert_eq!(r.messages[0].role, Role::User);
    assert_eq!(r.messages[0].content, vec![Part::text("last")]);
    let keys: Vec<&str> = r.extra.fields.keys().map(String::as_str).collect();
    assert_eq!(keys, ["zeta", "alpha", "mid"]);
    assert_eq!(r.extra.fields["alpha"], json!({"k": [1, 2]}));
    assert_eq!(r.extra.fields["mid"], Value::Null);
}

#[test]
fn assistant_reasoning_leads_its_text_and_legacy_function_calls_still_decode() {
    let body = br#"{"model":"m","messages":[
        {"role":"assistant","reasoning_content":"","reasoning":"ignored: reasoning_content is present","content":"a"},
        {"role":"assistant","reasoning":"think","content":"b","function_call":{"name":"f","arguments":{"x":1}}},
        {"role":"function","name":"f","content":"42"}]}"#;
    let r = decode_request(body).unwrap();
    assert_eq!(r.messages[0].content, vec![Part::text("a")]);
    assert_eq!(
        r.messages[1].content,
        vec![
            Part::Thinking {
                text: "think".into(),
                signature: None
            },
            Part::text("b"),
            Part::ToolCall(ToolCall {
                id: "f".into(),
                name: "f".into(),
                arguments: r#"{"x":1}"#.into()
            }),
        ]
    );
    match &r.messages[2].content[..] {
        [Part::ToolResult(t)] => assert_eq!(
            (t.tool_call_id.as_str(), &t.content[..]),
            ("f", &[Part::text("42")][..])
        ),
        other => panic!("expected one tool result, got {other:?}"),
    }
}

#[test]
fn round_trips_tool_loop() {
    let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"weather?"},
        {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get","arguments":"{\"c\":\"Paris\"}"}}]},
        {"role":"tool","tool_call_id":"call_1","content":"sunny"}],
        "tools":[{"type":"function","function":{"name":"get","parameters":{"type":"object"}}}]}"#;
    let r = decode_request(body).unwrap();
    let out: Value = serde_json::from_slice(&encode_request(&r).unwrap()).unwrap();
    assert_eq!(
        out["messages"][1]["tool_calls"][0]["function"]["arguments"],
        "{\"c\":\"Paris\"}"
    );
    assert_eq!(out["messages"][2]["role"], "tool");
    assert_eq!(out["messages"][2]["tool_call_id"], "call_1");
    assert_eq!(out["tools"][0]["function"]["name"], "get");
}
