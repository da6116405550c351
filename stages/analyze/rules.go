package analyze

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"prismflow/schemas/events"
	"prismflow/stages/internal/itparse"
)

// Feedback types written by the rules provider.
const (
	TypeDateInPast            = "date_in_past"
	TypeInconsistentDates     = "inconsistent_dates"
	TypeAmountWithoutCurrency = "amount_without_currency"
	TypeImplausibleAmount     = "implausible_amount"
	TypeMissingData           = "missing_data"
	TypeExpiredDocument       = "expired_document"
	TypeUnsignedDeclaration   = "unsigned_declaration"
)

// MaxPlausibleAmount is the largest sum in euro the rules accept for a
// limit or an insured value; anything above is almost surely a typo
// (a missing decimal comma, digits typed twice).
const MaxPlausibleAmount = 5e9

// Rules is the deterministic, offline provider: it checks what a broker's
// assistant checks on a request before quoting it. Each check prefers
// silence to a false alarm: a date is judged only when a keyword says what
// it is (decorrenza, scadenza, valido fino al), an amount only when a
// label says it is a limit or a value.
type Rules struct {
	// Now gives the current time; dates before its day are in the past.
	// Tests pin it; nil means time.Now.
	Now func() time.Time
}

// NewRules returns the rules provider with the given clock (nil for
// time.Now).
func NewRules(now func() time.Time) Provider { return &Rules{Now: now} }

// Name implements Provider.
func (r *Rules) Name() string { return "rules" }

// Analyze implements Provider.
func (r *Rules) Analyze(ctx context.Context, req Request) ([]events.FeedbackItem, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	t := now()
	today := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	c := checker{req: req, text: req.Section.Text, today: today, en: strings.HasPrefix(strings.ToLower(req.Language), "en")}
	c.dates()
	c.amounts()
	c.missingData()
	c.expiredWords()
	c.signatures()
	return c.items, nil
}

type checker struct {
	req   Request
	text  string
	today time.Time
	en    bool
	items []events.FeedbackItem
}

func (c *checker) add(typ string, sev events.Severity, quote string, it, en message) {
	m := it
	if c.en {
		m = en
	}
	c.items = append(c.items, events.FeedbackItem{Type: typ, Severity: sev, Message: m.text, Suggestion: m.suggestion, Quote: quote})
}

type message struct{ text, suggestion string }

// dateKind says what a keyword before a date makes of it.
type dateKind int

const (
	dateOther    dateKind = iota
	dateStart             // decorrenza, inizio, a partire dal
	dateExpiry            // scadenza of the cover being asked for
	dateValidity          // validity of a document
	dateEnd               // the "al" of "dal ... al ..."
)

var (
	expiryKW   = regexp.MustCompile(`(?i)(scadenza|scade|scadono|expiry|expires|expiring)[^\n\d]{0,25}$`)
	validityKW = regexp.MustCompile(`(?i)(valid[oaie]\s+fino\s+al|validità|valid until|valid through)[^\n\d]{0,20}$`)
	endKW      = regexp.MustCompile(`(?i)\b(al|to|until)\s*$`)
	// A scadenza of the policy in force, not of the one requested: its
	// being before the new decorrenza is the normal case of a renewal.
	currentPolicy = regexp.MustCompile(`(?i)\b(attual[ei]|in corso|vecchi[ao]|precedente|uscente|current|existing)\b`)
)

func (c *checker) dates() {
	dates := itparse.FindDates(c.text)
	kinds := make([]dateKind, len(dates))
	var start *itparse.Date
	for i, d := range dates {
		from := max(0, d.Start-60)
		if i > 0 {
			from = max(from, dates[i-1].End)
		}
		prefix := c.text[from:d.Start]
		switch {
		case validityKW.MatchString(prefix):
			kinds[i] = dateValidity
		case expiryKW.MatchString(prefix):
			kinds[i] = dateExpiry
		case itparse.StartContext(prefix):
			kinds[i] = dateStart
		case i > 0 && kinds[i-1] == dateStart && d.Start-dates[i-1].End < 8 && endKW.MatchString(prefix):
			kinds[i] = dateEnd
		}
		quote := c.text[d.Start:d.End]
		past := d.Time.Before(c.today)
		switch kinds[i] {
		case dateStart:
			if start == nil {
				start = &dates[i]
			}
			if past {
				c.add(TypeDateInPast, events.SeverityHigh, quote,
					message{fmt.Sprintf("La data di decorrenza %s è già passata.", quote), "Chiedere al cliente la data di decorrenza corretta: una copertura non può decorrere nel passato."},
					message{fmt.Sprintf("The start date %s is in the past.", quote), "Ask the client for the correct start date: cover cannot start in the past."})
			}
		case dateExpiry:
			if past {
				c.add(TypeDateInPast, events.SeverityMedium, quote,
					message{fmt.Sprintf("La scadenza %s è già passata.", quote), "Verificare se la polizza è scaduta e se c'è un periodo senza copertura."},
					message{fmt.Sprintf("The expiry date %s is in the past.", quote), "Check whether the policy has lapsed and cover has a gap."})
			}
		case dateValidity:
			if past {
				c.add(TypeExpiredDocument, events.SeverityHigh, quote,
					message{fmt.Sprintf("Il documento è valido solo fino al %s, data già passata.", quote), "Richiedere un documento in corso di validità."},
					message{fmt.Sprintf("The document is only valid until %s, which has passed.", quote), "Request a document that is still valid."})
			}
		}
		if (kinds[i] == dateExpiry || kinds[i] == dateEnd) && start != nil && !d.Time.After(start.Time) && !currentPolicy.MatchString(sentence(c.text, d.Start)) {
			c.add(TypeInconsistentDates, events.SeverityHigh, quote,
				message{fmt.Sprintf("La scadenza %s non è successiva alla decorrenza %s.", quote, c.text[start.Start:start.End]), "Correggere le date: la scadenza deve seguire la decorrenza."},
				message{fmt.Sprintf("The end date %s is not after the start date %s.", quote, c.text[start.Start:start.End]), "Fix the dates: the end must come after the start."})
		}
	}
}

// sentence returns the text of the sentence around byte offset i (bounded
// by a full stop followed by a space, or a blank line).
func sentence(text string, i int) string {
	from := 0
	for _, sep := range []string{". ", "\n\n"} {
		if k := strings.LastIndex(text[:i], sep); k >= 0 && k+len(sep) > from {
			from = k + len(sep)
		}
	}
	to := len(text)
	for _, sep := range []string{". ", "\n\n"} {
		if k := strings.Index(text[i:], sep); k >= 0 && i+k < to {
			to = i + k
		}
	}
	return text[from:to]
}

var (
	// amountLabel must end right before the number: the amount is then
	// what the label says it is.
	amountLabel  = regexp.MustCompile(`(?i)\b(massimal[ei]|somma assicurata|somme assicurate|capitale assicurato|valore(?: [\p{L}']+){0,4}|importo(?: [\p{L}']+){0,3}|limite di indennizzo|fatturato|sum insured|limit of (?:liability|indemnity))\b[^\d\n]{0,25}$`)
	currencyWord = regexp.MustCompile(`(?i)(€|\beur\b|\beuro\b|\bEUR\b)`)
)

func (c *checker) amounts() {
	for _, a := range itparse.FindAmounts(c.text) {
		lineStart := strings.LastIndexByte(c.text[:a.Start], '\n') + 1
		prefix := c.text[max(lineStart, a.Start-60):a.Start]
		loc := amountLabel.FindStringIndex(prefix)
		if loc == nil {
			continue
		}
		labelStart := a.Start - len(prefix) + loc[0]
		quote := c.text[labelStart:a.End]
		amount := c.text[a.Start:a.End]
		if a.Value == 0 || a.Value > MaxPlausibleAmount {
			c.add(TypeImplausibleAmount, events.SeverityHigh, quote,
				message{fmt.Sprintf("L'importo %s non è plausibile.", amount), "Verificare l'importo con il cliente (cifre mancanti o in eccesso?)."},
				message{fmt.Sprintf("The amount %s is not plausible.", amount), "Check the amount with the client (missing or extra digits?)."})
			continue
		}
		if a.Currency || a.Value < 1000 {
			continue
		}
		lineEnd := len(c.text)
		if k := strings.IndexByte(c.text[a.End:], '\n'); k >= 0 {
			lineEnd = a.End + k
		}
		after := c.text[a.End:min(lineEnd, a.End+15)]
		if currencyWord.MatchString(prefix) || currencyWord.MatchString(after) {
			continue
		}
		c.add(TypeAmountWithoutCurrency, events.SeverityLow, quote,
			message{fmt.Sprintf("L'importo %s è indicato senza valuta.", amount), "Indicare la valuta (EUR) accanto all'importo."},
			message{fmt.Sprintf("The amount %s has no currency.", amount), "State the currency (EUR) next to the amount."})
	}
}

var (
	contraenteKW = regexp.MustCompile(`(?i)\b(contraente|ragione sociale|proponente|policyholder)\b`)
	pivaRE       = regexp.MustCompile(`\b(?:IT)?\d{11}\b`)
	cfRE         = regexp.MustCompile(`(?i)\b[A-Z]{6}[0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]\b`)
	emailRE      = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`)
	phoneRE      = regexp.MustCompile(`(?i)\b(?:tel|telefono|cell|cellulare|phone|mobile)\b|\b(?:\+39\s?)?(?:0\d{1,3}|3\d{2})[\s./-]?\d{5,8}\b`)
)

// missingData reports identifiers and contacts the whole document lacks,
// once, in the first section that talks about the contraente: a request
// without them cannot be quoted, and looking at the whole document avoids
// flagging a section whose data is simply on another page.
func (c *checker) missingData() {
	loc := contraenteKW.FindStringIndex(c.text)
	if loc == nil {
		return
	}
	for _, s := range c.req.Sections {
		if s.Index < c.req.Section.Index && contraenteKW.MatchString(s.Text) {
			return
		}
	}
	all := c.text
	if len(c.req.Sections) > 0 {
		var b strings.Builder
		for _, s := range c.req.Sections {
			b.WriteString(s.Text)
			b.WriteByte('\n')
		}
		all = b.String()
	}
	quote := c.text[loc[0]:loc[1]]
	if !pivaRE.MatchString(all) && !cfRE.MatchString(all) {
		c.add(TypeMissingData, events.SeverityMedium, quote,
			message{"Manca la partita IVA o il codice fiscale del contraente.", "Richiedere partita IVA (imprese) o codice fiscale (persone fisiche) del contraente."},
			message{"The policyholder's VAT number or tax code is missing.", "Ask for the policyholder's VAT number (companies) or tax code (individuals)."})
	}
	if !emailRE.MatchString(all) && !phoneRE.MatchString(all) && c.req.Document.Sender == "" {
		c.add(TypeMissingData, events.SeverityMedium, quote,
			message{"Mancano i recapiti del contraente (e-mail o telefono).", "Richiedere un indirizzo e-mail o un numero di telefono del contraente."},
			message{"The policyholder's contact details (e-mail or phone) are missing.", "Ask for the policyholder's e-mail address or phone number."})
	}
}

var expiredWord = regexp.MustCompile(`(?i)\b(non\s+(?:è\s+|e'\s+|sono\s+|risulta\s+|risultano\s+|is\s+|are\s+)?|not\s+)?(scadut[oaie]|expired)\b`)

func (c *checker) expiredWords() {
	for _, m := range expiredWord.FindAllStringSubmatchIndex(c.text, -1) {
		if m[2] >= 0 { // "non scaduto" says the opposite
			continue
		}
		quote := c.text[max(0, lineStart(c.text, m[4])):m[5]]
		if len(quote) > 80 {
			quote = c.text[m[4]:m[5]]
		}
		c.add(TypeExpiredDocument, events.SeverityMedium, quote,
			message{"Il testo indica un documento o una copertura scaduti.", "Richiedere il documento aggiornato o verificare la continuità della copertura."},
			message{"The text mentions an expired document or cover.", "Request the updated document or check continuity of cover."})
	}
}

func lineStart(text string, i int) int { return strings.LastIndexByte(text[:i], '\n') + 1 }

var (
	// "Firma: ______", "Firma del legale rappresentante ........", or the
	// blank line under "Firma:".
	blankSignature = regexp.MustCompile(`(?i)\b(firma|signature)[^\n:_.]{0,40}:?[ \t]*\n?[ \t]*(_{3,}|\.{4,})`)
	// "Firma:" with nothing after it to the end of the section.
	trailingSignature = regexp.MustCompile(`(?i)\b(firma|signature)[^\n:]{0,40}:\s*$`)
)

func (c *checker) signatures() {
	var quote string
	if m := blankSignature.FindStringIndex(c.text); m != nil {
		quote = c.text[m[0]:m[1]]
	} else if m := trailingSignature.FindStringIndex(c.text); m != nil {
		quote = strings.TrimRight(c.text[m[0]:m[1]], " \t\r\n")
	}
	if quote == "" {
		return
	}
	c.add(TypeUnsignedDeclaration, events.SeverityHigh, quote,
		message{"La dichiarazione non risulta firmata.", "Richiedere il modulo firmato dal contraente o dal legale rappresentante."},
		message{"The declaration does not appear to be signed.", "Request the form signed by the policyholder or legal representative."})
}
