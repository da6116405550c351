// Package analyze writes reviewer feedback for every section of a
// document: dates in the past, amounts without a currency, missing
// contraente data, expired documents, unsigned declarations.
//
// The work is split in two on purpose. A Provider (the deterministic,
// offline "rules" provider here; LLM providers later) proposes items for
// one section. The Analyzer runs providers over the sections with bounded
// concurrency and enforces what a provider cannot be trusted with:
//
//   - every item's Quote is an exact substring of its section's text;
//     items that quote text the section does not contain are dropped, so a
//     reviewer can always find what an item is about;
//   - item IDs are derived from (document id, section index, type, quote),
//     so a replay of the same document yields the same IDs and downstream
//     stores can upsert instead of duplicating;
//   - the output lists feedback in section order whatever order the
//     sections finished in.
//
// LLM (llm.go) is the provider that asks a model (OpenAI-compatible or
// Bedrock, through prismflow/stages/internal/llm) with the versioned
// prompt in prompts/feedback.tmpl and the answer schema in
// prompts/feedback.schema.json. When the model's answer stays invalid
// after corrections, or the provider's circuit breaker is open, it answers
// with the rules provider instead and says so: the event's Provider then
// names every provider that wrote feedback, e.g. "openai/gpt-4o-mini,
// rules (fallback from openai/gpt-4o-mini)", and SectionsAnalyzed.LLM
// counts model, cached and fallback sections with tokens, cost and
// latency. A provider failing transiently before its breaker opens is an
// error, so the runtime retries the document instead of quietly lowering
// its quality.
//
// The package knows nothing about Kafka: the runtime calls Handle and
// stamps Meta on the result.
package analyze
