package console

import (
	"fmt"
	"net/http"
	"time"

	"golang.org/x/text/language"
)

// langCookie remembers a language chosen with the switch (?lang=).
const langCookie = "prismflow_lang"

// supported are the interface languages, the default first: a browser
// that prefers neither gets Italian.
var supported = []language.Tag{language.Italian, language.English}

var matcher = language.NewMatcher(supported)

// chooseLang picks the interface language: ?lang= (remembered in a
// cookie), else the cookie, else the browser's Accept-Language.
func chooseLang(w http.ResponseWriter, r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "it" || l == "en" {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
		return l
	}
	if c, err := r.Cookie(langCookie); err == nil && (c.Value == "it" || c.Value == "en") {
		return c.Value
	}
	tags, _, err := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	if err != nil || len(tags) == 0 {
		return "it"
	}
	_, i, _ := matcher.Match(tags...)
	if supported[i] == language.English {
		return "en"
	}
	return "it"
}

// translate returns the text of key in lang, formatted with args. A key
// missing from a language falls back to Italian, then to the key itself,
// so a forgotten message shows up in the page rather than breaking it
// (a test holds both tables to the same keys).
func translate(lang, key string, args ...any) string {
	s, ok := messages[lang][key]
	if !ok {
		if s, ok = messages["it"][key]; !ok {
			s = key
		}
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

// age says how long ago t was, briefly, in lang.
func age(lang string, now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return translate(lang, "age.now")
	case d < time.Hour:
		return translate(lang, "age.minutes", int(d.Minutes()))
	case d < 48*time.Hour:
		return translate(lang, "age.hours", int(d.Hours()))
	default:
		return translate(lang, "age.days", int(d.Hours()/24))
	}
}

// messages holds every interface text, per language.
var messages = map[string]map[string]string{
	"it": {
		"app.name":            "prismflow",
		"nav.inbox":           "Documenti",
		"nav.pipeline":        "Pipeline",
		"nav.skip":            "Vai al contenuto",
		"nav.lang":            "English",
		"nav.signout":         "Esci",
		"nav.tenant":          "Cliente: %s",
		"signin.title":        "Accedi",
		"signin.intro":        "Inserisci la chiave API del tuo cliente (prismflow apikey create --tenant T).",
		"signin.key":          "Chiave API",
		"signin.submit":       "Accedi",
		"signin.invalid":      "Chiave API sconosciuta o revocata.",
		"signin.expired":      "La sessione è scaduta: accedi di nuovo.",
		"inbox.title":         "Documenti",
		"inbox.filters":       "Filtri",
		"inbox.status":        "Stato",
		"inbox.category":      "Categoria",
		"inbox.any":           "Tutti",
		"inbox.search":        "Cerca",
		"inbox.search.hint":   "nome file, mittente, campi",
		"inbox.since":         "Dal",
		"inbox.until":         "Al",
		"inbox.apply":         "Filtra",
		"inbox.reset":         "Azzera",
		"inbox.empty":         "Nessun documento.",
		"inbox.next":          "Pagina successiva",
		"inbox.first":         "Prima pagina",
		"inbox.col.status":    "Stato",
		"inbox.col.document":  "Documento",
		"inbox.col.category":  "Categoria",
		"inbox.col.from":      "Mittente / origine",
		"inbox.col.pages":     "Pagine",
		"inbox.col.age":       "Ricevuto",
		"inbox.keys":          "Tasti: j/k scorrono i documenti, Invio apre, / cerca.",
		"inbox.live":          "Aggiornamento in tempo reale",
		"upload.title":        "Carica un documento",
		"upload.file":         "File",
		"upload.password":     "Password (PDF cifrati)",
		"upload.submit":       "Carica",
		"upload.done":         "Caricato: %s",
		"status.processing":   "in lavorazione",
		"status.done":         "completato",
		"status.failed":       "fallito",
		"source.upload":       "caricamento",
		"source.imap":         "casella e-mail",
		"source.attachment":   "allegato",
		"age.now":             "adesso",
		"age.minutes":         "%d min fa",
		"age.hours":           "%d h fa",
		"age.days":            "%d g fa",
		"doc.back":            "← Documenti",
		"doc.status":          "Stato",
		"doc.error":           "Errore",
		"doc.redrive":         "Rilancia dalla coda degli errori",
		"doc.redriven":        "Record rilanciati dalla coda degli errori: il documento viene rielaborato.",
		"doc.nothing":         "Nessun record da rilanciare per questo documento.",
		"doc.run":             "Esecuzione %d",
		"doc.runs":            "Esecuzioni",
		"doc.run.latest":      "(ultima)",
		"doc.reload":          "Nuovi risultati: ricarica",
		"doc.received":        "Ricevuto",
		"doc.source":          "Origine",
		"doc.parent":          "Allegato di",
		"doc.sender":          "Mittente",
		"doc.subject":         "Oggetto",
		"doc.language":        "Lingua",
		"doc.pages":           "Pagine",
		"doc.page":            "Pagina %d",
		"doc.page.alt":        "Pagina %d del documento originale",
		"doc.page.text":       "Testo estratto",
		"doc.page.empty":      "(nessun testo)",
		"doc.ocr":             "OCR %.0f%%",
		"doc.digital":         "testo digitale",
		"doc.sections":        "Sezioni",
		"doc.section.pages":   "pagine %d–%d",
		"doc.feedback":        "Osservazioni",
		"doc.feedback.none":   "Nessuna osservazione.",
		"doc.feedback.other":  "Altre osservazioni",
		"doc.suggestion":      "Suggerimento",
		"doc.accept":          "Accetta",
		"doc.reject":          "Rifiuta",
		"doc.comment":         "Commento",
		"doc.decision.accept": "Accettata da %s, %s",
		"doc.decision.reject": "Rifiutata da %s, %s",
		"doc.category":        "Categoria",
		"doc.confidence":      "confidenza %.0f%%",
		"doc.needs_review":    "da verificare",
		"doc.fields":          "Campi",
		"doc.fields.none":     "Nessun campo estratto.",
		"doc.field.source":    "Mostra nel testo",
		"doc.field.original":  "valore originale: %s",
		"doc.field.none":      "(nessuno)",
		"doc.corrected":       "corretto da %s, %s",
		"doc.correct":         "Correggi",
		"doc.correct.value":   "Valore corretto",
		"doc.downloads":       "Download",
		"doc.download.form":   "Modulo PDF",
		"doc.download.reply":  "Bozza di risposta (e-mail)",
		"doc.reprocess":       "Rielabora",
		"doc.reprocess.stage": "Dalla fase",
		"doc.reprocessed":     "Rielaborazione avviata: la nuova esecuzione comparirà tra poco.",
		"doc.stages":          "Fasi",
		"chat.title":          "Domande sul documento",
		"chat.question":       "Domanda",
		"chat.submit":         "Chiedi",
		"chat.you":            "Domanda di %s",
		"chat.retrieval":      "Risposta per ricerca nei passaggi del documento (senza LLM)",
		"chat.llm":            "Risposta di %s",
		"chat.citation":       "§%d",
		"chat.unavailable":    "Le domande sui documenti non sono configurate.",
		"chat.failed":         "Nessuna risposta: %s",
		"pipeline.title":      "Pipeline",
		"pipeline.stage":      "Fase",
		"pipeline.rate":       "Eventi/s",
		"pipeline.inflight":   "In corso",
		"pipeline.lag":        "Ritardo (record)",
		"pipeline.dead":       "Errori",
		"pipeline.stats.off":  "Statistiche non disponibili in questo processo.",
		"pipeline.dlq":        "Coda degli errori",
		"pipeline.dlq.none":   "Nessun record in errore.",
		"pipeline.dlq.at":     "Quando",
		"pipeline.dlq.doc":    "Documento",
		"pipeline.dlq.err":    "Errore",
		"pipeline.dlq.tries":  "Tentativi",
		"pipeline.redrive":    "Rilancia",
		"pipeline.redriven":   "Record %s rilanciato.",
		"error.title":         "Errore",
		"error.404":           "Pagina o documento non trovato.",
		"error.400":           "Richiesta non valida: %s",
		"error.403":           "Richiesta rifiutata: token CSRF mancante o non valido. Ricarica la pagina e riprova.",
		"error.503":           "Servizio momentaneamente non disponibile; riprova tra poco.",
		"error.home":          "Torna ai documenti",
	},
	"en": {
		"app.name":            "prismflow",
		"nav.inbox":           "Documents",
		"nav.pipeline":        "Pipeline",
		"nav.skip":            "Skip to content",
		"nav.lang":            "Italiano",
		"nav.signout":         "Sign out",
		"nav.tenant":          "Tenant: %s",
		"signin.title":        "Sign in",
		"signin.intro":        "Enter your tenant's API key (prismflow apikey create --tenant T).",
		"signin.key":          "API key",
		"signin.submit":       "Sign in",
		"signin.invalid":      "Unknown or revoked API key.",
		"signin.expired":      "Your session has ended: sign in again.",
		"inbox.title":         "Documents",
		"inbox.filters":       "Filters",
		"inbox.status":        "Status",
		"inbox.category":      "Category",
		"inbox.any":           "All",
		"inbox.search":        "Search",
		"inbox.search.hint":   "file name, sender, fields",
		"inbox.since":         "From",
		"inbox.until":         "To",
		"inbox.apply":         "Filter",
		"inbox.reset":         "Clear",
		"inbox.empty":         "No documents.",
		"inbox.next":          "Next page",
		"inbox.first":         "First page",
		"inbox.col.status":    "Status",
		"inbox.col.document":  "Document",
		"inbox.col.category":  "Category",
		"inbox.col.from":      "Sender / source",
		"inbox.col.pages":     "Pages",
		"inbox.col.age":       "Received",
		"inbox.keys":          "Keys: j/k move through documents, Enter opens, / searches.",
		"inbox.live":          "Live updates",
		"upload.title":        "Upload a document",
		"upload.file":         "File",
		"upload.password":     "Password (encrypted PDFs)",
		"upload.submit":       "Upload",
		"upload.done":         "Uploaded: %s",
		"status.processing":   "processing",
		"status.done":         "done",
		"status.failed":       "failed",
		"source.upload":       "upload",
		"source.imap":         "mailbox",
		"source.attachment":   "attachment",
		"age.now":             "just now",
		"age.minutes":         "%d min ago",
		"age.hours":           "%d h ago",
		"age.days":            "%d d ago",
		"doc.back":            "← Documents",
		"doc.status":          "Status",
		"doc.error":           "Error",
		"doc.redrive":         "Redrive from the dead-letter queue",
		"doc.redriven":        "Records redriven from the dead-letter queue: the document is being processed again.",
		"doc.nothing":         "No dead letters to redrive for this document.",
		"doc.run":             "Run %d",
		"doc.runs":            "Runs",
		"doc.run.latest":      "(latest)",
		"doc.reload":          "New results: reload",
		"doc.received":        "Received",
		"doc.source":          "Source",
		"doc.parent":          "Attachment of",
		"doc.sender":          "Sender",
		"doc.subject":         "Subject",
		"doc.language":        "Language",
		"doc.pages":           "Pages",
		"doc.page":            "Page %d",
		"doc.page.alt":        "Page %d of the original document",
		"doc.page.text":       "Extracted text",
		"doc.page.empty":      "(no text)",
		"doc.ocr":             "OCR %.0f%%",
		"doc.digital":         "digital text",
		"doc.sections":        "Sections",
		"doc.section.pages":   "pages %d–%d",
		"doc.feedback":        "Feedback",
		"doc.feedback.none":   "No feedback.",
		"doc.feedback.other":  "Other feedback",
		"doc.suggestion":      "Suggestion",
		"doc.accept":          "Accept",
		"doc.reject":          "Reject",
		"doc.comment":         "Comment",
		"doc.decision.accept": "Accepted by %s, %s",
		"doc.decision.reject": "Rejected by %s, %s",
		"doc.category":        "Category",
		"doc.confidence":      "confidence %.0f%%",
		"doc.needs_review":    "needs review",
		"doc.fields":          "Fields",
		"doc.fields.none":     "No fields extracted.",
		"doc.field.source":    "Show in text",
		"doc.field.original":  "original value: %s",
		"doc.field.none":      "(none)",
		"doc.corrected":       "corrected by %s, %s",
		"doc.correct":         "Correct",
		"doc.correct.value":   "Corrected value",
		"doc.downloads":       "Downloads",
		"doc.download.form":   "Form PDF",
		"doc.download.reply":  "Reply draft (e-mail)",
		"doc.reprocess":       "Reprocess",
		"doc.reprocess.stage": "From stage",
		"doc.reprocessed":     "Reprocessing started: the new run will show shortly.",
		"doc.stages":          "Stages",
		"chat.title":          "Ask about the document",
		"chat.question":       "Question",
		"chat.submit":         "Ask",
		"chat.you":            "Asked by %s",
		"chat.retrieval":      "Answer by searching the document's passages (no LLM)",
		"chat.llm":            "Answer by %s",
		"chat.citation":       "§%d",
		"chat.unavailable":    "Document chat is not configured.",
		"chat.failed":         "No answer: %s",
		"pipeline.title":      "Pipeline",
		"pipeline.stage":      "Stage",
		"pipeline.rate":       "Events/s",
		"pipeline.inflight":   "In flight",
		"pipeline.lag":        "Lag (records)",
		"pipeline.dead":       "Dead letters",
		"pipeline.stats.off":  "Statistics are not available in this process.",
		"pipeline.dlq":        "Dead-letter queue",
		"pipeline.dlq.none":   "No dead letters.",
		"pipeline.dlq.at":     "When",
		"pipeline.dlq.doc":    "Document",
		"pipeline.dlq.err":    "Error",
		"pipeline.dlq.tries":  "Attempts",
		"pipeline.redrive":    "Redrive",
		"pipeline.redriven":   "Record %s redriven.",
		"error.title":         "Error",
		"error.404":           "Page or document not found.",
		"error.400":           "Bad request: %s",
		"error.403":           "Request refused: missing or invalid CSRF token. Reload the page and try again.",
		"error.503":           "Service unavailable for the moment; try again shortly.",
		"error.home":          "Back to documents",
	},
}
