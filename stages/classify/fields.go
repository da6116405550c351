package classify

import (
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"prismflow/schemas/events"
	"prismflow/stages/internal/itparse"
)

// Field names, as in the insurance-dev truth files.
const (
	FieldContraente    = "contraente"
	FieldPartitaIVA    = "partita_iva"
	FieldCodiceFiscale = "codice_fiscale"
	FieldEmail         = "email"
	FieldTelefono      = "telefono"
	FieldIndirizzo     = "indirizzo"
	FieldCitta         = "citta"
	FieldProvincia     = "provincia"
	FieldNumVeicoli    = "num_veicoli"
	FieldTarghe        = "targhe"
	FieldMassimale     = "massimale_eur"
	FieldDecorrenza    = "decorrenza"
)

// location-first categories: their indirizzo is the insured location
// (building, site, plant), not the contraente's seat.
var locationCategories = map[string]bool{"Fabbricato": true, "Rischi Tecnologici": true}

// extractor finds fields in a document's sections. Every finder returns
// the first acceptable match in section order, so the e-mail body (first
// section) wins over attachments that repeat the same data.
type extractor struct {
	doc      events.Document
	secs     []events.Section
	self     []string // lowercase names of the broker itself, never the contraente
	category string
}

// hit is a value found at bytes start:end of section sec.
type hit struct {
	sec        int
	start, end int
	value      string
}

func (x *extractor) field(name string, h hit) events.Field {
	if h.sec < 0 { // from the envelope, not from a section's text
		return events.Field{Name: name, Value: h.value, SectionIndex: -1, Start: -1, End: -1}
	}
	s := x.secs[h.sec]
	return events.Field{
		Name:         name,
		Value:        h.value,
		Page:         pageAt(s, h.start),
		SectionIndex: s.Index,
		Start:        int32(itparse.RuneOffset(s.Text, h.start)),
		End:          int32(itparse.RuneOffset(s.Text, h.end)),
	}
}

// pageAt finds the page of a byte offset in a section by counting the
// form feeds (page breaks) before it. The split stage currently turns a
// page break into a blank line, so a section spanning pages reports its
// first page for every field: the page where the reviewer starts looking,
// never a page the text does not come from.
func pageAt(s events.Section, off int) int32 {
	p := s.PageStart + int32(strings.Count(s.Text[:off], "\f"))
	if s.PageEnd >= s.PageStart && p > s.PageEnd {
		p = s.PageEnd
	}
	return p
}

func (x *extractor) extract() []events.Field {
	var out []events.Field
	add := func(name string, h hit, ok bool) {
		if ok && h.value != "" {
			out = append(out, x.field(name, h))
		}
	}
	c, ok := x.contraente()
	add(FieldContraente, c, ok)
	h, ok := x.partitaIVA()
	add(FieldPartitaIVA, h, ok)
	h, ok = x.codiceFiscale()
	add(FieldCodiceFiscale, h, ok)
	h, ok = x.email()
	add(FieldEmail, h, ok)
	h, ok = x.telefono()
	add(FieldTelefono, h, ok)
	if street, city, prov, ok := x.address(); ok {
		add(FieldIndirizzo, street, true)
		add(FieldCitta, city, true)
		add(FieldProvincia, prov, true)
	}
	plates, platesOK := x.targhe()
	if n, ok := x.numVeicoli(plates, platesOK); ok {
		add(FieldNumVeicoli, n, true)
	}
	add(FieldTarghe, plates, platesOK)
	h, ok = x.decorrenza()
	add(FieldDecorrenza, h, ok)
	for _, f := range x.categoryFields() {
		add(f.name, f.h, true)
	}
	return out
}

var (
	// A form label for the contraente on a line of its own or followed
	// by ": value". The value may also be on the next non-empty line.
	labelLine = regexp.MustCompile(`(?im)^[ \t]*(?:\d+\.[ \t]*)?(contraente(?:[ \t]*/[ \t]*(?:proprietario|assicurato))?|proprietario e contraente|ragione sociale|denominazione(?: sociale)?|nome e cognome|cognome e nome|proponente|ditta|policyholder)(?:[ \t]*\([^)\n]*\))?[ \t]*(?::[ \t]*([^\n]*?))?[ \t]*$`)
	titles    = regexp.MustCompile(`^(?i:(?:arch|dott\.ssa|dott|dr|avv|ing|geom|rag|prof|sig\.ra|sig|spett\.le|egr|gent\.mo|gent\.ma|gentile|egregio)\.?[ \t]+)`)
	// A company name: capitalised words (with a few connectors) ending in
	// an Italian legal form.
	companyRE = regexp.MustCompile(`([A-ZÀ-Ý][\p{L}'’.&-]*(?:[ \t]+(?:[A-ZÀ-Ý0-9][\p{L}\d'’.&-]*|&|e|di|de|del|della|dei|degli))*?)[ \t]*,?[ \t]+(?i:(s\.?[ \t]?r\.?[ \t]?l\.?(?:[ \t]?s\.?)?|s\.?[ \t]?p\.?[ \t]?a\.?|s\.?[ \t]?n\.?[ \t]?c\.?|s\.?[ \t]?a\.?[ \t]?s\.?))(?:[^\p{L}]|$)`)
)

func (x *extractor) contraente() (hit, bool) {
	for i, s := range x.secs {
		for _, m := range labelLine.FindAllStringSubmatchIndex(s.Text, -1) {
			label := strings.ToLower(s.Text[m[2]:m[3]])
			vs, ve := -1, -1
			if m[4] >= 0 && m[5] > m[4] {
				vs, ve = m[4], m[5]
			} else {
				vs, ve = nextLine(s.Text, m[1])
				if vs < 0 || labelLine.MatchString(s.Text[vs:ve]) {
					continue
				}
			}
			if h, ok := x.cleanName(i, vs, ve, label == "cognome e nome"); ok {
				return h, true
			}
		}
	}
	for i, s := range x.secs {
		for _, m := range companyRE.FindAllStringSubmatchIndex(s.Text, -1) {
			name := s.Text[m[2]:m[3]]
			if t := titles.FindString(name); t != "" {
				m[2] += len(t)
				name = name[len(t):]
			}
			if x.isSelf(name) || name == "" {
				continue
			}
			return hit{i, m[2], m[5], titleIfUpper(name) + " " + legalForm(s.Text[m[4]:m[5]])}, true
		}
	}
	// A private person writing for themself: their name as the e-mail's
	// From shows it, if the text repeats it (a signature).
	if a, err := mail.ParseAddress(x.doc.Sender); err == nil && a.Name != "" {
		name := strings.TrimSpace(titles.ReplaceAllString(a.Name, ""))
		words := strings.Fields(name)
		if len(words) >= 2 && len(words) <= 4 && allCapitalised(words) && !x.isSelf(name) {
			for i, s := range x.secs {
				if k := strings.Index(s.Text, name); k >= 0 {
					return hit{i, k, k + len(name), name}, true
				}
			}
		}
	}
	return hit{}, false
}

// nextLine returns the first non-empty line within three lines after
// byte offset from.
func nextLine(text string, from int) (int, int) {
	pos := from
	for n := 0; n < 4 && pos < len(text); n++ {
		if text[pos] == '\n' {
			pos++
		}
		end := strings.IndexByte(text[pos:], '\n')
		if end < 0 {
			end = len(text) - pos
		}
		line := text[pos : pos+end]
		if t := strings.TrimSpace(line); t != "" {
			lead := len(line) - len(strings.TrimLeft(line, " \t\f"))
			return pos + lead, pos + lead + len(t)
		}
		pos += end
	}
	return -1, -1
}

// cleanName turns a labelled value into a name: drops titles and what
// follows a dash ("- ONLUS", "- P.IVA ..."), swaps "Cognome Nome".
func (x *extractor) cleanName(sec, start, end int, surnameFirst bool) (hit, bool) {
	text := x.secs[sec].Text
	v := text[start:end]
	for _, sep := range []string{" - ", " – ", " — ", ", "} {
		if k := strings.Index(v, sep); k > 0 {
			v = v[:k]
		}
	}
	if t := titles.FindString(v); t != "" {
		start += len(t)
		v = v[len(t):]
	}
	v = strings.TrimRight(v, " \t;:")
	if utf8.RuneCountInString(v) < 3 || utf8.RuneCountInString(v) > 80 || !strings.ContainsFunc(v, unicode.IsLetter) || x.isSelf(v) {
		return hit{}, false
	}
	value := v
	if m := companyRE.FindStringSubmatch(v); m != nil && strings.HasPrefix(v, m[1]) {
		value = titleIfUpper(m[1]) + " " + legalForm(m[2])
	} else if w := strings.Fields(v); surnameFirst && len(w) == 2 {
		value = w[1] + " " + w[0]
	}
	return hit{sec, start, start + len(v), value}, true
}

func (x *extractor) isSelf(name string) bool {
	l := strings.ToLower(name)
	for _, s := range x.self {
		if s != "" && strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func legalForm(s string) string {
	k := strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) {
			return unicode.ToLower(r)
		}
		return -1
	}, s)
	switch k {
	case "srl":
		return "S.r.l."
	case "srls":
		return "S.r.l.s."
	case "spa":
		return "S.p.A."
	case "snc":
		return "S.n.c."
	case "sas":
		return "S.a.s."
	}
	return s
}

// titleIfUpper rewrites "AUTOTRASPORTI FERRANDI" as "Autotrasporti
// Ferrandi": letterheads shout, the legal name does not.
func titleIfUpper(s string) string {
	if strings.ToUpper(s) != s || strings.ToLower(s) == s {
		return s
	}
	words := strings.Fields(s)
	for i, w := range words {
		r, n := utf8.DecodeRuneInString(w)
		words[i] = string(r) + strings.ToLower(w[n:])
	}
	return strings.Join(words, " ")
}

func allCapitalised(words []string) bool {
	for _, w := range words {
		r, _ := utf8.DecodeRuneInString(w)
		if !unicode.IsUpper(r) || strings.ContainsAny(w, "0123456789@") {
			return false
		}
	}
	return true
}

var (
	pivaRE    = regexp.MustCompile(`\b(?:IT)?(\d{11})\b`)
	pivaLabel = regexp.MustCompile(`(?i)(p\.?[ \t]?iva|partita[ \t]+iva|vat)`)
	cfRE      = regexp.MustCompile(`(?i)\b[a-z0-9]{16}\b`)
)

func (x *extractor) partitaIVA() (hit, bool) {
	for i, s := range x.secs {
		for _, m := range pivaRE.FindAllStringSubmatchIndex(s.Text, -1) {
			v := s.Text[m[2]:m[3]]
			if !ValidPartitaIVA(v) || !pivaLabel.MatchString(s.Text[max(0, m[0]-40):m[0]]) {
				continue
			}
			return hit{i, m[2], m[3], v}, true
		}
	}
	return hit{}, false
}

func (x *extractor) codiceFiscale() (hit, bool) {
	for i, s := range x.secs {
		for _, m := range cfRE.FindAllStringIndex(s.Text, -1) {
			v := strings.ToUpper(s.Text[m[0]:m[1]])
			if ValidCodiceFiscale(v) {
				return hit{i, m[0], m[1], v}, true
			}
		}
	}
	return hit{}, false
}

var emailRE = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`)

// email prefers the sender's own address where the text repeats it, then
// the first ordinary (non-PEC, not the broker's) address, then the
// sender's address from the envelope.
func (x *extractor) email() (hit, bool) {
	var sender string
	if a, err := mail.ParseAddress(x.doc.Sender); err == nil {
		sender = strings.ToLower(a.Address)
	}
	var first *hit
	for i, s := range x.secs {
		for _, m := range emailRE.FindAllStringIndex(s.Text, -1) {
			v := strings.ToLower(s.Text[m[0]:m[1]])
			if v == sender {
				return hit{i, m[0], m[1], v}, true
			}
			_, domain, _ := strings.Cut(v, "@")
			if first == nil && !strings.Contains("."+domain, ".pec.") && !strings.HasPrefix(domain, "pec") && !x.isSelf(strings.ReplaceAll(domain, "-", " ")) {
				first = &hit{i, m[0], m[1], v}
			}
		}
	}
	if first != nil {
		return *first, true
	}
	if sender != "" && !x.isSelf(strings.ReplaceAll(sender, "-", " ")) {
		return hit{sec: -1, value: sender}, true
	}
	return hit{}, false
}

var (
	phoneRE    = regexp.MustCompile(`(?:\+39[ .]?)?\b(0\d{1,3}|3\d{2})([ ./-]?)(\d{5,8})\b`)
	phoneLabel = regexp.MustCompile(`(?i)\b(tel|telefono|cell|cellulare|mobile|phone|chiamare|chiamarmi|numero)\b[^\n\d]{0,15}\n?[^\n\d]{0,3}$`)
	notPhone   = regexp.MustCompile(`(?i)(iva|c\.f\.|codice|fattura|iban|conto|n\.|nr\.)[^\n\d]{0,6}$`)
)

// telefono takes labelled numbers first ("Tel. 02 1234567"), then numbers
// written with the usual prefix gap ("347 8821934"); a bare run of digits
// is too often something else (a P.IVA, an invoice number).
func (x *extractor) telefono() (hit, bool) {
	var loose *hit
	for i, s := range x.secs {
		for _, m := range phoneRE.FindAllStringSubmatchIndex(s.Text, -1) {
			if m[1] < len(s.Text) && (s.Text[m[1]] == '/' || s.Text[m[1]] == ',' && m[1]+1 < len(s.Text) && s.Text[m[1]+1] >= '0' && s.Text[m[1]+1] <= '9') {
				continue
			}
			digits := s.Text[m[2]:m[3]] + s.Text[m[6]:m[7]]
			if len(digits) < 6 || len(digits) > 11 || digits[0] == '3' && (len(digits) < 9 || len(digits) > 10) {
				continue
			}
			prefix := s.Text[max(0, m[0]-30):m[0]]
			if phoneLabel.MatchString(prefix) {
				return hit{i, m[0], m[1], digits}, true
			}
			if loose == nil && m[5] > m[4] && !notPhone.MatchString(prefix) {
				loose = &hit{i, m[0], m[1], digits}
			}
		}
	}
	if loose != nil {
		return *loose, true
	}
	return hit{}, false
}

var (
	addressRE = regexp.MustCompile(`\b((?:Via|Viale|V\.le|Corso|C\.so|Piazza|P\.za|Piazzale|Largo|Strada|Contrada|Vicolo|Località|Loc\.|Borgo|Lungomare|Circonvallazione)[ \t]+[\p{L}\d'’. ]+?[ \t]+(?:\d+[A-Za-z]?(?:/\d+[A-Za-z]?)?|snc|s\.n\.c\.))[ \t]*(?:,|-|–)[ \t]*(?:[^,\n]{1,40},[ \t]*)?(\d{5})[ \t]+([\p{L}'’ ]+?)[ \t]*\(([A-Z]{2})\)`)
	// Labels that say an address is the insured location.
	locationLabel = regexp.MustCompile(`(?i)(ubicazione|indirizzo del (?:fabbricato|rischio)|ubicazione del rischio|ubicazione cantiere|sede dell'impianto|insured location|ubicat[oa]|situat[oa])[^\d]{0,40}$`)
)

// address returns the street, city and province of the insured location
// for location-first categories, of the contraente's seat otherwise. Only
// complete addresses (street, number, CAP, city, province sigla) count:
// partial ones are too ambiguous to fill a form with.
func (x *extractor) address() (street, city, prov hit, ok bool) {
	var first []int
	firstSec := -1
	for i, s := range x.secs {
		for _, m := range addressRE.FindAllStringSubmatchIndex(s.Text, -1) {
			if !provinces[s.Text[m[8]:m[9]]] {
				continue
			}
			if locationCategories[x.category] && locationLabel.MatchString(s.Text[max(0, m[0]-60):m[0]]) {
				return x.addrHits(i, m)
			}
			if first == nil {
				first, firstSec = m, i
			}
		}
	}
	if first == nil {
		return hit{}, hit{}, hit{}, false
	}
	return x.addrHits(firstSec, first)
}

func (x *extractor) addrHits(sec int, m []int) (hit, hit, hit, bool) {
	t := x.secs[sec].Text
	return hit{sec, m[2], m[3], strings.Join(strings.Fields(t[m[2]:m[3]]), " ")},
		hit{sec, m[6], m[7], strings.TrimSpace(t[m[6]:m[7]])},
		hit{sec, m[8], m[9], t[m[8]:m[9]]}, true
}

// Italian plates since 1994: two letters, three digits, two letters,
// never I, O, Q or U.
var plateRE = regexp.MustCompile(`\b([A-HJ-NPR-TV-Z]{2})[ ]?(\d{3})[ ]?([A-HJ-NPR-TV-Z]{2})\b`)

// targhe lists every distinct plate in the document in order; the span is
// the run of plates in the first section that has any.
func (x *extractor) targhe() (hit, bool) {
	var plates []string
	seen := map[string]bool{}
	h := hit{sec: -1}
	for i, s := range x.secs {
		for _, m := range plateRE.FindAllStringSubmatchIndex(s.Text, -1) {
			p := s.Text[m[2]:m[3]] + s.Text[m[4]:m[5]] + s.Text[m[6]:m[7]]
			if h.sec < 0 {
				h.sec, h.start = i, m[0]
			}
			if h.sec == i {
				h.end = m[1]
			}
			if !seen[p] {
				seen[p] = true
				plates = append(plates, p)
			}
		}
	}
	if len(plates) == 0 {
		return hit{}, false
	}
	h.value = strings.Join(plates, ",")
	return h, true
}

var (
	vehicleCount = regexp.MustCompile(`(?i)\b(\d{1,4}|due|tre|quattro|cinque|sei|sette|otto|nove|dieci|undici|dodici)[ \t]+(?:[\p{L}]+[ \t]+)?(?:veicoli|mezzi|automezzi|autoveicoli|autovetture|vetture)\b`)
	vehicleLabel = regexp.MustCompile(`(?i)\bnumero[ \t]+(?:di[ \t]+|dei[ \t]+)?veicoli[^\d\n]{0,5}\s*(\d{1,4})\b`)
	wordNumbers  = map[string]int{"due": 2, "tre": 3, "quattro": 4, "cinque": 5, "sei": 6, "sette": 7, "otto": 8, "nove": 9, "dieci": 10, "undici": 11, "dodici": 12}
)

// numVeicoli takes the number the client states ("i nostri 8 mezzi",
// "Numero veicoli: 6"), else the count of listed plates. It is only
// reported for documents that list plates or state the number on a form,
// so a passing "3 mezzi" in another kind of request is not a fleet.
func (x *extractor) numVeicoli(plates hit, havePlates bool) (hit, bool) {
	for i, s := range x.secs {
		if m := vehicleLabel.FindStringSubmatchIndex(s.Text); m != nil {
			return hit{i, m[2], m[3], s.Text[m[2]:m[3]]}, true
		}
	}
	if !havePlates {
		return hit{}, false
	}
	for i, s := range x.secs {
		for _, m := range vehicleCount.FindAllStringSubmatchIndex(s.Text, -1) {
			w := strings.ToLower(s.Text[m[2]:m[3]])
			n, err := strconv.Atoi(w)
			if err != nil {
				n = wordNumbers[w]
			}
			if n > 0 {
				return hit{i, m[2], m[3], strconv.Itoa(n)}, true
			}
		}
	}
	return hit{plates.sec, plates.start, plates.end, strconv.Itoa(strings.Count(plates.value, ",") + 1)}, true
}

var massimaleLabel = regexp.MustCompile(`(?i)\bmassimal[ei]\b[^\d]{0,35}$`)

func (x *extractor) massimale() (hit, bool) {
	for i, s := range x.secs {
		for _, a := range itparse.FindAmounts(s.Text) {
			if a.Value < 1000 || a.Value > 5e9 || !massimaleLabel.MatchString(s.Text[max(0, a.Start-50):a.Start]) {
				continue
			}
			return hit{i, a.Start, a.End, itparse.FormatInt(a.Value)}, true
		}
	}
	return hit{}, false
}

func (x *extractor) decorrenza() (hit, bool) {
	for i, s := range x.secs {
		dates := itparse.FindDates(s.Text)
		for k, d := range dates {
			from := max(0, d.Start-50)
			if k > 0 {
				from = max(from, dates[k-1].End)
			}
			if itparse.StartContext(s.Text[from:d.Start]) {
				return hit{i, d.Start, d.End, d.ISO()}, true
			}
		}
	}
	return hit{}, false
}

// provinces are the sigle of the Italian provinces and metropolitan
// cities: a "(UE)" or "(EN)" after a name is a province only if listed.
// Read only after package initialisation.
var provinces = func() map[string]bool {
	m := map[string]bool{}
	for _, p := range strings.Fields(`AG AL AN AO AP AQ AR AT AV BA BG BI BL BN BO BR BS BT BZ CA CB CE CH CL CN CO CR CS CT CZ
		EN FC FE FG FI FM FR GE GO GR IM IS KR LC LE LI LO LT LU MB MC ME MI MN MO MS MT NA NO NU OR PA PC PD PE PG PI PN PO PR
		PT PU PV PZ RA RC RE RG RI RM RN RO SA SI SO SP SR SS SU SV TA TE TN TO TP TR TS TV UD VA VB VC VE VI VR VT VV`) {
		m[p] = true
	}
	return m
}()
