// Package render turns a classified document into what a broker's
// assistant works with: the category's quote request form, filled in and
// followed by a summary of the document, and a reply e-mail draft to the
// client, both stored in the blob store.
//
// # The form
//
// Every category of the taxonomy has a form template, a PDF AcroForm
// laid out like a broker's quote request ("Richiesta di quotazione –
// Flotta Auto") whose text fields are named after the extracted fields
// (contraente, partita_iva, targhe, massimale_eur, decorrenza, ...): a
// field is filled when the classifier found a value of that name. The
// templates are files a broker can edit or replace: forms/<category>.pdf
// ("Flotta Auto" → flotta_auto.pdf) are embedded, and a folder given in
// Options.Forms (config render.forms) replaces them. The embedded ones
// are built from the pdfcpu JSON page descriptions in forms/src by
//
//	go generate ./stages/render
//
// so that a change of layout or labels is a reviewable text diff.
//
// form.pdf is the filled template followed by the summary pages
// (document, classification, every extracted field, the form fields
// still to ask the client for, the feedback by severity), flattened:
// each field's appearance becomes page content and the AcroForm is
// removed, so the values read as ordinary text in any viewer or text
// extractor and the form can be forwarded to an insurer as it is.
// pdfcpu fills the fields and draws their appearances but has no flatten
// command, so flatten does the standard step on pdfcpu's object model;
// the summary carries no fields, so the two parts never clash on names.
// Values are written the Italian way: amounts "1.250.000,00 €", dates
// dd/mm/yyyy.
//
// # The reply
//
// The draft (reply.eml, RFC 5322) is written from per-category Italian
// text/template files embedded from templates/ or read from
// Options.Templates.
//
// # Guarantees
//
// NewWithOptions checks at construction time that every taxonomy
// category has a reply template and a valid form template with AcroForm
// text fields, so a misconfigured deployment fails at start, not on the
// first document. A category outside the taxonomy gets the fallback's
// (the last category's) form and text.
//
// Outputs are stored under outputs/<doc id>/run-<run>/ with fixed names:
// a replay of the same run overwrites its outputs instead of adding new
// ones, and a new run keeps the previous run's outputs for comparison.
package render

//go:generate go run ./internal/genforms -src forms/src -out forms
