// Package chat answers a reviewer's questions about one document from the
// document's own sections, and says where in the document each answer
// comes from.
//
// Two kinds of Answerer exist:
//
//   - Retrieval (provider "rules") uses no language model. The sections
//     are cut into passages (sentences, short paragraphs, list items,
//     table rows, a form's label with its value) whose byte offsets are
//     kept, and ranked against the question with BM25 over Snowball stems
//     (Italian and English, github.com/blevesearch/snowballstem, the Go
//     output of the Snowball project's own compiler), minus stop words.
//     A small insurance glossary (lexicon/glossary.txt) bridges Italian
//     and English ("scadenza" for "expire") and forms whose stems differ;
//     question cues look for kinds of value found by pattern ("targa"
//     finds plates, "quando" favours dates); the section's heading counts
//     for its passages at half weight. The answer quotes the best one to
//     three passages, each an exact span of its section, and says plainly
//     that no language model wrote it; a question that matches nothing is
//     answered with exactly that. The index is built per question (a few
//     tens of milliseconds for a 40-page document): nothing is kept
//     between questions, so nothing goes stale when a document is
//     reprocessed.
//   - LLM (providers "openai", "bedrock") sends a grounded prompt (a
//     versioned template: the numbered sections, the earlier turns, the
//     question) and streams the model's answer as it is written. The model
//     cites sections as [S<n>] followed by a quoted span; every citation is
//     checked against the section text and dropped unless the quote is an
//     exact span of an existing section, so a citation shown to a reviewer
//     always points at words that are there. When the provider fails
//     before writing anything (error, open circuit breaker), the answer
//     falls back to retrieval and says the model was unavailable.
//
// In both, [S<n>] in an answer's text names Section.Index n, the same
// number as Citation.Section, so a page can link both the same way.
//
// Answers stream through an emit callback rather than a channel: the
// caller (an HTTP handler writing server-sent events) decides how to
// deliver a piece, and its error (the browser went away) stops the
// answer at once.
package chat
