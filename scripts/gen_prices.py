#!/usr/bin/env python3
"""Generate Switchyard's built-in price table from the public model catalog.

Usage (from the repository root):

    python3 scripts/gen_prices.py [CATALOG] [-o OUTPUT]

CATALOG defaults to ../shared/data/model-catalog.json and OUTPUT to
src/pricing/prices.tsv (both relative to the repository root). The output is
committed so that a fresh clone builds without the catalog; `src/pricing`'s
tests regenerate it into a temporary file and compare whenever the catalog is
present, so a stale table fails CI instead of silently mispricing.

Why a script rather than a build.rs: the catalog lives outside the repository
and must not be a build input; the generated table is small, reviewable text
whose diffs show exactly which prices changed.

Output format (tab-separated, one row per (scope, model id); rows of a scope
are contiguous and sorted by ASCII-lowercased id, which the Rust side relies
on to binary-search without building hash maps at startup):

    scope  model  input  output  cached_input  cache_write  context_window

Prices are USD per million tokens; `-` means "not listed". `scope` is one of
Switchyard's provider types (`openai`, `anthropic`, ...) for the provider's
own list price, or `*` for the canonical (vendor) price used as a fallback.

Mapping decisions (see also the report in the pull request):

* Catalog provider slugs that equal a Switchyard provider type are used as-is
  (openai, azure, groq, xai, deepseek, mistral, openrouter, together,
  fireworks, anthropic, gemini). `vertex_ai`, `bedrock`, `deepinfra`,
  `cohere`, `runway` have no Switchyard provider type and are not exported
  as provider scopes (their canonical models still are). Cerebras and Z.ai
  have no catalog provider; they fall back to canonical prices at lookup.
  Local servers (ollama, vllm, llamacpp) get no built-in prices.
* A provider entry is indexed under the model part of its key and under its
  `provider_model_id` (the string actually sent to the API), key first.
* Provider pricing wins over the canonical model's. Missing fields (cache
  prices, an output price) are inherited from the canonical pricing only when
  the base prices that both list agree, so a re-priced provider entry never
  borrows a cache price from a different price level.
* Only models usable through Switchyard's endpoints are exported (modes chat,
  completion, responses, embedding); TTS, transcription, image and video
  models are priced per second/character/image, which this table cannot say.
  Embedding-only models without an output price get output 0.
* Canonical aliases are exported as canonical rows, except aliases carrying
  a `:variant` suffix (`:free`, `:thinking`, Bedrock `:0` revisions), whose
  price differs from the base model by definition, and aliases prefixed with
  a catalog provider slug that is not also an OpenRouter vendor slug
  (`vertex_ai/...`, `bedrock/...`, `openrouter/...`: another gateway's routing
  syntax; lookup strips such prefixes anyway). A canonical name always wins
  over another model's alias; `vendor/<name>` belongs to model `<name>`
  before any looser alias; an alias still shared by models with different
  prices is dropped as ambiguous.
* `reasoning_output_per_mtok` is ignored: reasoning tokens are priced as
  output (the issue's rule); tiered prices use the base tier.
"""

import argparse
import json
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CATALOG = os.path.join(REPO_ROOT, "..", "shared", "data", "model-catalog.json")
DEFAULT_OUTPUT = os.path.join(REPO_ROOT, "src", "pricing", "prices.tsv")

# Catalog provider slug -> Switchyard provider type (ProviderKind name).
PROVIDER_MAP = {
    "openai": "openai",
    "azure": "azure",
    "groq": "groq",
    "xai": "xai",
    "deepseek": "deepseek",
    "mistral": "mistral",
    "openrouter": "openrouter",
    "together": "together",
    "fireworks": "fireworks",
    "anthropic": "anthropic",
    "gemini": "gemini",
}

TOKEN_MODES = {"chat", "completion", "responses", "embedding"}
TEXT_MODES = {"chat", "completion", "responses"}
FIELDS = (
    ("input", "input_per_mtok"),
    ("output", "output_per_mtok"),
    ("cached_input", "cached_input_per_mtok"),
    ("cache_write", "cache_write_per_mtok"),
)


def num(value):
    """A finite non-negative number from the catalog, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        return None
    return value


def raw_prices(pricing):
    """The four token prices of a catalog pricing object (None when absent)."""
    if not isinstance(pricing, dict):
        return {k: None for k, _ in FIELDS}
    return {k: num(pricing.get(src)) for k, src in FIELDS}


def has_base(prices):
    return prices["input"] is not None or prices["output"] is not None


def merge(provider, canonical):
    """Provider prices, completed from canonical ones when the levels agree."""
    if not has_base(provider):
        return dict(canonical)
    agree = all(
        provider[k] is None or canonical[k] is None or provider[k] == canonical[k]
        for k in ("input", "output")
    )
    if not agree:
        return dict(provider)
    return {k: provider[k] if provider[k] is not None else canonical[k] for k, _ in FIELDS}


def finish(prices, modes, context_window):
    """A row tuple, or None when the entry has no usable token price."""
    if prices["input"] is None:
        return None
    output = prices["output"]
    if output is None:
        if modes & TEXT_MODES:
            return None  # a text model without an output price: unknown, not 0
        output = 0.0
    ctx = context_window if isinstance(context_window, int) and context_window > 0 else None
    return (prices["input"], output, prices["cached_input"], prices["cache_write"], ctx)


def modes_of(model):
    modes = model.get("modes") if isinstance(model, dict) else None
    return {m for m in modes if isinstance(m, str)} if isinstance(modes, list) else set()


def valid_id(model_id):
    return isinstance(model_id, str) and model_id and not any(c in model_id for c in "\t\n\r")


def ascii_lower(text):
    """Lowercases A-Z only, exactly like Rust's `to_ascii_lowercase`, so the
    sort order written here is the order the Rust side binary-searches."""
    return text.translate(ASCII_LOWER)


ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def pick(candidates, warnings):
    """Choose (id spelling, row) among candidates [(priority, source, id, row)]
    that share one lowercased id in one scope.

    The best priority wins; within it, rows must agree or the id is dropped
    as ambiguous (a wrong price is worse than an unknown one).
    """
    best = min(c[0] for c in candidates)
    top = sorted(c[1:] for c in candidates if c[0] == best)
    model_id = min(i for _, i, _ in top)
    rows = {r for _, _, r in top}
    if len(rows) == 1:
        return model_id, top[0][2]
    # Same prices but different context windows: keep the largest window.
    if len({r[:4] for r in rows}) == 1:
        return model_id, max(rows, key=lambda r: r[4] or 0)
    warnings.append(f"ambiguous {model_id!r}: {', '.join(s for s, _, _ in top)}; dropped")
    return None


def build(catalog):
    models = catalog.get("models") or {}
    provider_models = catalog.get("provider_models") or {}
    warnings = []

    canonical_prices = {}
    for name, model in models.items():
        if isinstance(model, dict):
            canonical_prices[name] = raw_prices(model.get("pricing"))

    # (scope, lowercased id) -> [(priority, source, id, row)]
    table = {}

    def add(scope, model_id, priority, source, row):
        if row is None or not valid_id(model_id):
            return
        table.setdefault((scope, ascii_lower(model_id)), []).append((priority, source, model_id, row))

    for key in sorted(provider_models):
        entry = provider_models[key]
        if not isinstance(entry, dict) or entry.get("enabled") is False or "/" not in key:
            continue
        slug, model_part = key.split("/", 1)
        scope = PROVIDER_MAP.get(slug)
        if scope is None:
            continue
        ref = entry.get("model_ref")
        canonical = models.get(ref) if isinstance(ref, str) else None
        if not isinstance(canonical, dict):
            warnings.append(f"{key}: model_ref {ref!r} not in models; skipped")
            continue
        modes = modes_of(canonical)
        if not modes & TOKEN_MODES:
            continue
        prices = merge(raw_prices(entry.get("pricing")), canonical_prices.get(ref) or raw_prices(None))
        ctx = entry.get("context_window") or canonical.get("context_window")
        row = finish(prices, modes, ctx)
        add(scope, model_part, 0, key, row)
        add(scope, entry.get("provider_model_id"), 1, key + " (provider_model_id)", row)

    # Alias prefixes that name a catalog provider (`vertex_ai/`, `bedrock/`,
    # `openrouter/`) are routing hints of other gateways, not model ids; but
    # a slug that OpenRouter also uses as a vendor (`openai/`, `anthropic/`)
    # is a real `vendor/model` id and stays.
    vendors = {
        k.split("/")[1]
        for k in provider_models
        if k.startswith("openrouter/") and k.count("/") >= 2
    }
    routing_prefixes = set(catalog.get("providers") or {}) - vendors

    for name in sorted(models):
        model = models[name]
        if not isinstance(model, dict):
            continue
        modes = modes_of(model)
        if not modes & TOKEN_MODES:
            continue
        row = finish(canonical_prices[name], modes, model.get("context_window"))
        add("*", name, 0, name, row)
        aliases = model.get("aliases")
        for alias in aliases if isinstance(aliases, list) else []:
            if not isinstance(alias, str) or ":" in alias:
                continue
            if "/" in alias and alias.split("/", 1)[0] in routing_prefixes:
                continue
            # `vendor/<this model's name>` belongs to this model more surely
            # than a looser alias another model lists.
            priority = 1 if alias.rsplit("/", 1)[-1] == name else 2
            add("*", alias, priority, f"{name} (alias {alias})", row)

    rows = []
    for (scope, _), cands in table.items():
        chosen = pick(cands, warnings)
        if chosen is not None:
            rows.append((scope, chosen[0], chosen[1]))
    rows.sort(key=lambda r: (r[0] == "*", r[0], ascii_lower(r[1])))
    return rows, warnings


def fmt(value):
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def render(catalog, rows):
    version = catalog.get("version")
    updated = catalog.get("updated_at")
    lines = [
        f"# Generated by scripts/gen_prices.py from model-catalog.json version {version} "
        f"updated_at {updated}. Do not edit: rerun the script.",
        "# scope\tmodel\tinput\toutput\tcached_input\tcache_write\tcontext_window"
        " (USD per 1M tokens; - = not listed; scope * = canonical)",
    ]
    for scope, model_id, row in rows:
        lines.append("\t".join([scope, model_id] + [fmt(v) for v in row]))
    return "\n".join(lines) + "\n"


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("catalog", nargs="?", default=DEFAULT_CATALOG)
    parser.add_argument("-o", "--output", default=DEFAULT_OUTPUT)
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    args = parser.parse_args(argv)

    with open(args.catalog, encoding="utf-8") as f:
        catalog = json.load(f)
    if catalog.get("version") != 1:
        sys.exit(f"unsupported catalog version {catalog.get('version')!r} (expected 1)")
    rows, warnings = build(catalog)
    text = render(catalog, rows)
    tmp = args.output + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, args.output)

    if not args.quiet:
        counts = {}
        for scope, _, _ in rows:
            counts[scope] = counts.get(scope, 0) + 1
        for w in warnings:
            print(f"warning: {w}", file=sys.stderr)
        summary = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        print(f"wrote {len(rows)} rows to {args.output}: {summary}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
