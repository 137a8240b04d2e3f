//! Provider kinds: their default base URLs, environment prefixes, auth styles.
//!
//! Everything a provider *type* implies lives in one table so adding a provider
//! of the OpenAI-compatible family is one line here, not a code path.

use std::fmt;
use switchyard_filters::ir::WireDialect;

/// How the provider credential is sent upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>` (OpenAI family).
    Bearer,
    /// `api-key: <key>` (Azure OpenAI).
    ApiKeyHeader,
    /// `x-api-key: <key>` (Anthropic).
    XApiKey,
    /// `x-goog-api-key: <key>` (Gemini).
    GoogApiKey,
}

impl AuthStyle {
    /// The header that carries `key` in this style.
    pub fn header(self, key: &str) -> (&'static str, String) {
        match self {
            AuthStyle::Bearer => ("authorization", format!("Bearer {key}")),
            AuthStyle::ApiKeyHeader => ("api-key", key.to_string()),
            AuthStyle::XApiKey => ("x-api-key", key.to_string()),
            AuthStyle::GoogApiKey => ("x-goog-api-key", key.to_string()),
        }
    }
}

/// A provider type; instances (e.g. `openai-east`) share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// api.openai.com or any OpenAI-compatible endpoint.
    OpenAi,
    /// Azure OpenAI (deployment URLs + `api-version`, or the `/openai/v1` API).
    Azure,
    /// GroqCloud.
    Groq,
    /// xAI (Grok).
    Xai,
    /// DeepSeek.
    DeepSeek,
    /// Mistral La Plateforme.
    Mistral,
    /// OpenRouter.
    OpenRouter,
    /// Together AI.
    Together,
    /// Fireworks AI.
    Fireworks,
    /// Cerebras Inference.
    Cerebras,
    /// Z.ai (GLM).
    Zai,
    /// Local Ollama (OpenAI-compatible `/v1`).
    Ollama,
    /// vLLM's OpenAI-compatible server.
    Vllm,
    /// llama.cpp's `llama-server`.
    LlamaCpp,
    /// Anthropic Messages API (base URL without `/v1`, SDK convention).
    Anthropic,
    /// Google Gemini native API (`generateContent`).
    Gemini,
}

/// Static facts about a provider kind.
#[derive(Debug)]
pub struct KindInfo {
    /// The kind.
    pub kind: ProviderKind,
    /// Name used in config `type:` and as the default provider name.
    pub name: &'static str,
    /// Environment prefixes (`OPENAI` → `OPENAI_API_KEY`), longest first wins.
    pub env_prefixes: &'static [&'static str],
    /// Default base URL (SDK convention, includes `/v1` where the SDK does).
    pub default_base_url: Option<&'static str>,
    /// Whether a key is optional (local servers).
    pub key_optional: bool,
    /// Credential header style.
    pub auth: AuthStyle,
}

/// The table of supported kinds.
pub const KINDS: &[KindInfo] = &[
    KindInfo {
        kind: ProviderKind::OpenAi,
        name: "openai",
        env_prefixes: &["OPENAI"],
        default_base_url: Some("https://api.openai.com/v1"),
        key_optional: false,
        auth: AuthStyle::Bearer,
    },
    KindInfo {
        kind: ProviderKind::Azure,
        name: "azure",
        env_prefixes: &["AZURE_OPENAI", "AZURE"],
        default_base_url: None,
        key_optional: false,
        auth: AuthStyle::ApiKeyHeader,
    },
    KindInfo {
        kind: ProviderKind::Groq,
        name: "groq",
        env_prefixes: &["GROQ"],
        default_base_url: Some("https://api.groq.com/openai/v1"),
        key_optional: false,
        auth: AuthStyle::Bearer,
    },
    KindInfo {
        kind: ProviderKind::Xai,
        name: "xai",
        env_prefixes: &["XAI"],
        default_base_url: Some("https://api.x.ai/v1"),
        key_optional: false,
        auth: AuthStyle::Bearer,
    },
    KindInfo {
        kind: ProviderKind::DeepSeek,
        name: "deepseek",
        env_prefixes: &["DEEPSEEK"],
        default_base_url: Some("https://api.deepseek.com/v1"),
        key_optional: false,
        auth: AuthStyle::Bearer,
    },
    KindInfo {
        kind: ProviderKind::Mistral,
        name: "mistral",
        env_prefixes: &["MISTRAL"],
        default_base_url: Some("https://api.mistral.ai/v1"),
        key_optional: false,
        auth: AuthStyle::Bearer,
    },
    KindInfo {
        kind: ProviderKind::OpenRouter,
        name: "openrouter",
        env_prefixes: &["OPENROUTER"],
        default_base_url: Some("https://openrouter.ai/api/v1"),
        key_optional: false,
        auth: AuthStyle::Bearer,
    },
    KindInfo {
        kind: ProviderKind::Together,
        name: "together",
        env_prefixes: &["TOGETHER"],
        default_base_url: Some("https://api.together.xyz/v1"),
        key_optional: false,
        auth: AuthStyle::Bearer,
    },
    KindInfo {
        kind: ProviderKind::Fireworks,
        name: "fireworks",
        env_prefixes: &["FIREWORKS"],
        default_base_url: Some("https://api.fireworks.ai/inference/v1"),
        key_optional: false,
        auth: AuthStyle::Bearer,
    },
    KindInfo {
        kind: ProviderKind::Cerebras,
        name: "cerebras",
        env_prefixes: &["CEREBRAS"],
        default_base_url: Some("https://api.cerebras.ai/v1"),
        key_optional: false,
        auth: AuthStyle::Bearer,
    },
    KindInfo {
        kind: ProviderKind::Zai,
        name: "zai",
        env_prefixes: &["ZAI"],
        default_base_url: Some("https://api.z.ai/api/paas/v4"),
        key_optional: false,
        auth: AuthStyle::Bearer,
    },
    KindInfo {
        kind: ProviderKind::Ollama,
        name: "ollama",
        env_prefixes: &["OLLAMA"],
        default_base_url: None,
        key_optional: true,
        auth: AuthStyle::Bearer,
    },
    KindInfo {
        kind: ProviderKind::Vllm,
        name: "vllm",
        env_prefixes: &["VLLM"],
        default_base_url: None,
        key_optional: true,
        auth: AuthStyle::Bearer,
    },
    KindInfo {
        kind: ProviderKind::LlamaCpp,
        name: "llamacpp",
        env_prefixes: &["LLAMACPP", "LLAMA_CPP"],
        default_base_url: None,
        key_optional: true,
        auth: AuthStyle::Bearer,
    },
    KindInfo {
        kind: ProviderKind::Anthropic,
        name: "anthropic",
        env_prefixes: &["ANTHROPIC"],
        default_base_url: Some("https://api.anthropic.com"),
        key_optional: false,
        auth: AuthStyle::XApiKey,
    },
    KindInfo {
        kind: ProviderKind::Gemini,
        name: "gemini",
        env_prefixes: &["GEMINI"],
        default_base_url: Some("https://generativelanguage.googleapis.com/v1beta"),
        key_optional: false,
        auth: AuthStyle::GoogApiKey,
    },
];

impl ProviderKind {
    /// Static facts for this kind.
    pub fn info(self) -> &'static KindInfo {
        // Every kind has exactly one row; the table is checked by a test.
        KINDS.iter().find(|k| k.kind == self).unwrap_or(&KINDS[0])
    }

    /// Parses a config `type:` value.
    pub fn from_name(name: &str) -> Option<ProviderKind> {
        KINDS.iter().find(|k| k.name == name).map(|k| k.kind)
    }

    /// The wire format this provider speaks.
    pub fn wire(self) -> WireDialect {
        match self {
            ProviderKind::Anthropic => WireDialect::Anthropic,
            ProviderKind::Gemini => WireDialect::Gemini,
            ProviderKind::OpenAi
            | ProviderKind::Azure
            | ProviderKind::Groq
            | ProviderKind::Xai
            | ProviderKind::DeepSeek
            | ProviderKind::Mistral
            | ProviderKind::OpenRouter
            | ProviderKind::Together
            | ProviderKind::Fireworks
            | ProviderKind::Cerebras
            | ProviderKind::Zai
            | ProviderKind::Ollama
            | ProviderKind::Vllm
            | ProviderKind::LlamaCpp => WireDialect::OpenAi,
        }
    }

    /// Path appended to a base URL given without one: `/v1` for local
    /// OpenAI-compatible servers (users write `http://localhost:11434`, the
    /// native SDKs' convention, while we speak the OpenAI API under `/v1`),
    /// `/v1beta` for Gemini (whose SDKs take the API version separately).
    pub fn default_path_for_bare_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::Ollama | ProviderKind::Vllm | ProviderKind::LlamaCpp => Some("/v1"),
            ProviderKind::Gemini => Some("/v1beta"),
            _ => None,
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.info().name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_row_and_names_round_trip() {
        for k in KINDS {
            assert_eq!(KINDS.iter().filter(|o| o.kind == k.kind).count(), 1);
            assert_eq!(ProviderKind::from_name(k.name), Some(k.kind));
            assert_eq!(k.kind.info().name, k.name);
        }
    }
}
