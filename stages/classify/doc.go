// Package classify assigns a document its risk category (Flotta Auto, RC
// Professionale, Fabbricato, Rischi Tecnologici, Altro by default) with a
// confidence, and extracts the fields a broker fills a quote with:
// contraente, partita IVA, codice fiscale, contacts, address, plates,
// limit, start date.
//
// Category scoring sits behind the small Model interface. The default
// model is trained: multinomial logistic regression over hashed features
// (2^18 buckets) of word unigrams and bigrams and character 3-5 grams,
// after Italian-aware normalisation (lowercase, accents folded, every
// number one token). Logistic regression was chosen over complement
// naive Bayes, which is also implemented (TrainOptions.Algorithm), by
// measurement: with 5-fold cross-validation over insurance-dev and the
// built-in examples always in training, logistic regression classifies
// 0.98 of the documents right and complement NB 0.89-0.92; CNB's scores
// are also far from probabilities (its fitted temperature is ~0.02), so
// its confidences carry less information after calibration.
//
// Confidence is calibrated: the softmax is divided by a temperature
// fitted to minimise the log-loss of out-of-fold predictions (3 folds
// over the training set), so documents scored 0.8 are right about 80% of
// the time on mail the model has not seen (TestCalibration measures the
// expected calibration error). Below Classifier.ReviewThreshold the
// document is flagged NeedsReview rather than trusted.
//
// The labelled examples are data, in training/*.jsonl (written for this
// package, at least 30 per category: requests, questionnaires, vehicle
// lists, building descriptions, CAR contracts, claims, complaints,
// invoices...). The built-in model is trained from them at first use in
// the process rather than generated at build time: training is
// deterministic (fixed seeds) and takes about 0.3 s of CPU, the repository
// holds no binary blob that can drift from its data, and a change to the
// examples takes effect on the next build with nothing to regenerate.
// `prismflow train` trains on a broker's own labelled mail (and the
// insurance-dev corpus) and writes a model file (gzip'd gob of the
// non-zero weights) that Open loads.
//
// The taxonomy file stays the source of category names. A taxonomy
// category without training examples is scored by the keyword model
// (KeywordModel: the taxonomy's weighted cue terms), which decides how
// much probability such categories get; the trained model shares the
// rest among its own. A category the trained model knows but the
// taxonomy lacks is filed under the fallback and flagged for review.
//
// Field extraction favours precision: every value comes from a validated
// pattern (partita IVA and codice fiscale check digits, plate alphabet,
// province sigle, real calendar dates) and carries where it was found
// (section, page, rune offsets of the exact span), so a reviewer can
// check it at a glance. A candidate that fails validation is dropped,
// never reported with a bad checksum.
//
// A field read from the envelope rather than from a section's text (the
// sender's e-mail address when the text gives none, a plant type named
// only in the subject) has SectionIndex, Start and End -1 and Page 0.
// Page is the section's first page when the section spans several: the
// split stage does not mark page breaks inside a section's text.
//
// Category-specific fields (professione, fatturato_eur and massimale_eur
// for RC Professionale; valore_fabbricato_eur, superficie_mq and
// anno_costruzione for Fabbricato; tipo_impianto and valore_impianto_eur
// for Rischi Tecnologici) are only looked for in their category, as the
// field conventions of the broker's truth files have them.
//
// With classify.provider set to an LLM (openai, bedrock), the model is
// asked for a second opinion through prompts/classify.tmpl (a versioned
// template; its JSON schema beside it): category from the taxonomy,
// confidence and the fields it sees. The built-in model always runs too,
// both answers go on the event, and a disagreement flags the document
// for review (the rule is on Classifier.Handle). The LLM is never
// trusted for a field value: each passes the built-in validators and must
// occur in the text, where the built-in code finds its span; the rest are
// dropped. A confident calibrated model is not overruled by a
// self-reported confidence, which is why the LLM only wins a
// disagreement when the built-in model is itself unsure.
//
// The stage is pure: the same input gives the same output, which keeps
// replays idempotent (with an LLM, the response cache keeps a replay's
// answer the same). It carries the analyze stage's feedback through.
package classify
