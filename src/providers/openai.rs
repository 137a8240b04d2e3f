//! The OpenAI-compatible family: api.openai.com and every server that speaks
//! its API under a base URL (`{base}/chat/completions`, `{base}/embeddings`,
//! `{base}/models`, `Authorization: Bearer`). Adding one is adding a row.

use super::{Adapter, AuthStyle, Capabilities, Family, Operation, Provider};
use std::collections::HashSet;
use switchyard_filters::ir::WireDialect;

/// Paths under the base URL, the OpenAI way.
#[derive(Debug)]
pub struct OpenAiCompatible;

impl Adapter for OpenAiCompatible {
    fn path(&self, p: &Provider, op: Operation, _model: &str) -> String {
        format!("{}/{}", p.base.path, operation_path(op))
    }
}

/// The OpenAI name of an operation's path (shared with Azure).
pub fn operation_path(op: Operation) -> &'static str {
    match op {
        Operation::Chat { .. } | Operation::CountTokens => "chat/completions",
        Operation::Embeddings => "embeddings",
        Operation::Models => "models",
    }
}

/// Model ids from an OpenAI/Anthropic list (`data[].id`) or a Gemini list
/// (`models[].name`, `models/` prefix removed).
pub fn parse_model_list(body: &[u8]) -> Result<HashSet<String>, String> {
    #[derive(serde::Deserialize)]
    struct Item {
        id: Option<String>,
        name: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct List {
        data: Option<Vec<Item>>,
        models: Option<Vec<Item>>,
    }
    let list: List = serde_json::from_slice(body).map_err(|e| format!("not a model list: {e}"))?;
    let items = list
        .data
        .or(list.models)
        .ok_or("not a model list: no `data` or `models`")?;
    Ok(items
        .into_iter()
        .filter_map(|i| {
            i.id.or_else(|| i.name.map(|n| n.trim_start_matches("models/").to_string()))
        })
        .collect())
}

const HOSTED: Capabilities = Capabilities {
    embeddings: true,
    count_tokens: false,
    responses: false,
    batches: false,
    files: false,
};

const LOCAL: Capabilities = HOSTED;

/// One hosted OpenAI-compatible provider.
const fn hosted(name: &'static str, env: &'static [&'static str], url: &'static str) -> Family {
    Family {
        name,
        env_prefixes: env,
        default_base_url: Some(url),
        bare_url_path: None,
        key_optional: false,
        auth: AuthStyle::Bearer,
        wire: WireDialect::OpenAi,
        capabilities: HOSTED,
        adapter: &OpenAiCompatible,
    }
}

/// One local OpenAI-compatible server: registered from its URL alone, key
/// optional, `/v1` appended to a URL without a path.
const fn local(name: &'static str, env: &'static [&'static str]) -> Family {
    Family {
        name,
        env_prefixes: env,
        default_base_url: None,
        bare_url_path: Some("/v1"),
        key_optional: true,
        auth: AuthStyle::Bearer,
        wire: WireDialect::OpenAi,
        capabilities: LOCAL,
        adapter: &OpenAiCompatible,
    }
}

/// The OpenAI-compatible families (OpenAI itself first).
pub const FAMILIES: [Family; 13] = [
    Family {
        capabilities: Capabilities {
            responses: true,
            batches: true,
            files: true,
            ..HOSTED
        },
        ..hosted("openai", &["OPENAI"], "https://api.openai.com/v1")
    },
    hosted("groq", &["GROQ"], "https://api.groq.com/openai/v1"),
    hosted("xai", &["XAI"], "https://api.x.ai/v1"),
    hosted("deepseek", &["DEEPSEEK"], "https://api.deepseek.com/v1"),
    hosted("mistral", &["MISTRAL"], "https://api.mistral.ai/v1"),
    hosted("openrouter", &["OPENROUTER"], "https://openrouter.ai/api/v1"),
    hosted("together", &["TOGETHER"], "https://api.together.xyz/v1"),
    hosted("fireworks", &["FIREWORKS"], "https://api.fireworks.ai/inference/v1"),
    hosted("cerebras", &["CEREBRAS"], "https://api.cerebras.ai/v1"),
    hosted("zai", &["ZAI"], "https://api.z.ai/api/paas/v4"),
    local("ollama", &["OLLAMA"]),
    local("vllm", &["VLLM"]),
    local("llamacpp", &["LLAMACPP", "LLAMA_CPP"]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_lists_of_each_dialect() {
        let openai = parse_model_list(br#"{"object":"list","data":[{"id":"gpt-4o"}]}"#).expect("openai");
        assert!(openai.contains("gpt-4o"));
        let gemini = parse_model_list(br#"{"models":[{"name":"models/gemini-2.5-flash"}]}"#).expect("gemini");
        assert!(gemini.contains("gemini-2.5-flash"));
        assert!(parse_model_list(br#"{"x":1}"#).is_err());
    }
}
