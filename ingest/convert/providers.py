"""Portkey `ai_org` -> OpenInference `llm.provider` and `llm.system`.

`llm.provider` is who hosts and bills the model (OpenInference's LLMProvider values: azure,
aws, google, groq, ...). `llm.system` is the AI product whose API and models answered
(LLMSystem values: openai, anthropic, cohere, mistralai, vertexai). The rule, as the
OpenInference instrumentations apply it:
- a provider that serves its own models: system = that product (openai, anthropic, cohere,
  mistralai; google/gemini/vertex -> vertexai). Products without an LLMSystem value (xai,
  groq, deepseek, ollama, ...) use their provider value, so the attribute is never missing.
- a cloud that hosts others' models (azure, bedrock, vertex) follows the model family:
  azure -> openai; a Claude model on bedrock or vertex -> anthropic; other bedrock models ->
  the vendor of the model id (`meta.llama3...` -> meta, `amazon.nova...` -> amazon).
- an unknown `ai_org` is kept as is for both.
"""

from __future__ import annotations

from collections.abc import Iterator

from openinference.semconv.trace import OpenInferenceLLMProviderValues, OpenInferenceLLMSystemValues

from ingest.convert.common import SA, Pair

_P = OpenInferenceLLMProviderValues
_S = OpenInferenceLLMSystemValues
# Portkey `ai_org` (lowercased) -> (llm.provider, llm.system); None: the provider value.
_PROVIDERS: dict[str, tuple[str, str | None]] = {
    "openai": (_P.OPENAI.value, _S.OPENAI.value),
    "azure-openai": (_P.AZURE.value, _S.OPENAI.value),
    "azure-ai": (_P.AZURE.value, _S.OPENAI.value),
    "azure": (_P.AZURE.value, _S.OPENAI.value),
    "anthropic": (_P.ANTHROPIC.value, _S.ANTHROPIC.value),
    "bedrock": (_P.AWS.value, None),
    "aws-bedrock": (_P.AWS.value, None),
    "vertex-ai": (_P.GOOGLE.value, _S.VERTEXAI.value),
    "google": (_P.GOOGLE.value, _S.VERTEXAI.value),
    "gemini": (_P.GOOGLE.value, _S.VERTEXAI.value),
    "palm": (_P.GOOGLE.value, _S.VERTEXAI.value),
    "cohere": (_P.COHERE.value, _S.COHERE.value),
    "mistral-ai": (_P.MISTRALAI.value, _S.MISTRALAI.value),
    "mistralai": (_P.MISTRALAI.value, _S.MISTRALAI.value),
    "x-ai": (_P.XAI.value, None),
    "xai": (_P.XAI.value, None),
    "deepseek": (_P.DEEPSEEK.value, None),
    "groq": (_P.GROQ.value, None),
    "cerebras": (_P.CEREBRAS.value, None),
    "ollama": (_P.OLLAMA.value, None),
    "moonshot": (_P.MOONSHOT.value, None),
    "perplexity-ai": (_P.PERPLEXITY.value, None),
    "fireworks-ai": (_P.FIREWORKS.value, None),
    "together-ai": (_P.TOGETHER.value, None),
}
_HOSTS_OTHERS = frozenset({"bedrock", "aws-bedrock", "vertex-ai", "azure-ai"})
_BEDROCK = frozenset({"bedrock", "aws-bedrock"})
# Model families a cloud can host, by a word of the model name -> llm.system.
_FAMILIES = (
    ("claude", _S.ANTHROPIC.value),
    ("anthropic", _S.ANTHROPIC.value),
    ("cohere", _S.COHERE.value),
    ("command", _S.COHERE.value),
    ("mistral", _S.MISTRALAI.value),
    ("mixtral", _S.MISTRALAI.value),
    ("gpt", _S.OPENAI.value),
)
# Bedrock model ids may start with a cross-region prefix: `us.anthropic.claude-...`.
_REGION_PREFIXES = frozenset({"us", "eu", "apac", "global", "us-gov", "ca", "jp", "au"})


def llm_system(org: str, provider: str, system: str | None, models: list[str]) -> str:
    """The `llm.system` of a request to `org` (lowercased) answered by one of `models`."""
    if org in _HOSTS_OTHERS:
        names = " ".join(models).lower()
        for word, family in _FAMILIES:
            if word in names:
                return family
        if org in _BEDROCK:
            for model in models:
                parts = model.lower().split(".")
                parts = parts[1:] if parts[0] in _REGION_PREFIXES else parts
                if len(parts) > 1 and parts[0]:
                    return parts[0]
    return system or provider


def provider_attributes(
    ai_org: str | None, model: str | None, requested: str | None = None
) -> Iterator[Pair]:
    if not ai_org:
        return
    org = ai_org.strip()
    key = org.lower()
    provider, system = _PROVIDERS.get(key, (org, None))
    yield SA.LLM_PROVIDER, provider
    yield SA.LLM_SYSTEM, llm_system(key, provider, system, [m for m in (model, requested) if m])
