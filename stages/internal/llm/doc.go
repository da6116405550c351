// Package llm is the large-language-model layer shared by the stages that
// can ask a model (analyze now, classify later): one Client per
// configured provider, speaking either AWS Bedrock's Converse API
// (aws-sdk-go-v2 bedrockruntime) or any OpenAI-compatible chat-completions
// endpoint (OpenAI, vLLM, Ollama, llama.cpp server).
//
// A Backend knows only its wire protocol: one request, one reply. Client
// wraps a Backend with everything a pipeline needs around a paid, rate
// limited, sometimes failing remote model, once, for every backend:
//
//   - structured output: the caller gives a JSON schema (sent to the model
//     as a forced tool on Bedrock, as response_format on OpenAI) and a
//     Validate function; an answer that does not validate is sent back to
//     the model with the validation error, up to Options.Repairs times,
//     then Complete fails with ErrInvalidOutput so the caller can fall
//     back to its deterministic provider;
//   - throughput: at most Options.Concurrency calls in flight and a token
//     bucket of Options.RatePerSecond (golang.org/x/time/rate) per Client;
//   - transient failures (HTTP 429, Bedrock ThrottlingException, 5xx,
//     timeouts, connection errors) are retried with exponential backoff
//     and full jitter, waiting at least what Retry-After asks;
//   - a circuit breaker (sony/gobreaker) opens after consecutive failed
//     calls, so while a provider is down Complete fails at once with
//     ErrUnavailable and callers fail over instead of queueing behind
//     timeouts;
//   - a PostgreSQL response cache (Cache) keyed by sha256 of provider,
//     model, prompt version and input, so a replay or a duplicate document
//     costs no tokens; only validated answers are cached;
//   - tokens, latency and estimated cost (Options.Prices) on every
//     Response and in Prometheus metrics.
//
// Prompts are versioned template files (Prompt): the version is a prefix
// of the sha256 of the template text, so editing a prompt changes the
// cache key and old answers are never served for a new prompt.
//
// The package has no global state: metrics are registered on the
// Registerer the caller passes, and every limit lives in a Client.
package llm
