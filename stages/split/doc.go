// Package split cuts the pages of a document into titled sections, the
// units the analysis stage reviews one at a time, without ever dropping
// text.
//
// A section starts at a heading. Headings are recognised line by line
// from what Italian and English insurance documents and mails use:
//
//   - markdown headings ("# Premessa");
//   - articles and parts ("Art. 3 - Massimali", "Articolo 12", "Sezione A",
//     "Allegato 1", "Chapter 2");
//   - numbered titles ("1. Oggetto", "2.1 Esclusioni", "3) Durata"): short,
//     not ending like a sentence, and not an item of a list (a run of
//     numbers of the same depth, such as "1. Incendio / 2. Furto", is a
//     list and stays inside its section; long numbered lines are clauses
//     of the article above them);
//   - lines in capitals ("DATI DEL CONTRAENTE"), wrapped over several
//     lines or not;
//   - short lines that stand alone between blank lines and read like a
//     title (capital first letter, a real word, no final stop or comma)
//     when body text follows ("Abstract", "Premessa"); a run of such lines
//     is a form's labels, not headings.
//
// A line that continues a wrapped sentence (the line before it is long and
// does not end a sentence) is never a heading, and neither is a line that
// recurs on two or more pages with only its digits changed (running
// headers and footers, "Pagina 2 di 5"). Text before the first heading
// becomes a section titled by its first words. When no heading is found at
// all, each page becomes a section titled "Pagina N" (Italian documents)
// or "Page N" (any other language).
//
// Guarantees:
//   - Nothing is lost: the sections' texts, in Index order, hold every
//     non-space character of every page, in page order. Only whitespace is
//     changed (runs of blank lines become one; a page break becomes a blank
//     line; a line cut for length loses nothing but its line end).
//   - No section text is longer than MaxSectionRunes: a longer section is
//     cut at paragraph ends, else at line ends, else at spaces, and only a
//     single unbroken word longer than the limit is cut mid-word. The
//     pieces keep the title with " (k/n)" appended.
//   - Index counts from 0; PageStart and PageEnd are the first and last
//     pages the section's text comes from.
//   - A document with no text at all is a permanent error ("no text to
//     split") unless some of its pages are waiting for OCR: then it yields
//     zero sections and no error, because the document is not bad, it is
//     not yet read, and the later stages handle an empty list.
//
// The heading rules are plain code rather than a model so that the split is
// deterministic, explainable and fast; what they miss only makes a section
// longer, never loses text.
package split
