package classify

import (
	"regexp"
	"strings"

	"prismflow/stages/internal/itparse"
)

// Category-specific fields. They are only looked for in documents of
// their category: "Ing." in a building request's signature is no
// profession to quote, and a fleet's "Totale" is no plant value.
const (
	FieldProfessione      = "professione"
	FieldFatturato        = "fatturato_eur"
	FieldValoreFabbricato = "valore_fabbricato_eur"
	FieldSuperficie       = "superficie_mq"
	FieldAnnoCostruzione  = "anno_costruzione"
	FieldTipoImpianto     = "tipo_impianto"
	FieldValoreImpianto   = "valore_impianto_eur"
)

func (x *extractor) categoryFields() []struct {
	name string
	h    hit
} {
	type nf = struct {
		name string
		h    hit
	}
	var out []nf
	add := func(name string, h hit, ok bool) {
		if ok {
			out = append(out, nf{name, h})
		}
	}
	switch x.category {
	case "RC Professionale":
		// The truth files keep the limit for professional liability
		// only: a fleet's RCA limit or a building's RC limit is a
		// cover detail, not the request's defining amount.
		h, ok := x.massimale()
		add(FieldMassimale, h, ok)
		h, ok = x.professione()
		add(FieldProfessione, h, ok)
		h, ok = x.fatturato()
		add(FieldFatturato, h, ok)
	case "Fabbricato":
		h, ok := x.labelledAmount(valoreFabbricatoLabels)
		add(FieldValoreFabbricato, h, ok)
		h, ok = x.superficie()
		add(FieldSuperficie, h, ok)
		h, ok = x.annoCostruzione()
		add(FieldAnnoCostruzione, h, ok)
	case "Rischi Tecnologici":
		h, ok := x.tipoImpianto()
		add(FieldTipoImpianto, h, ok)
		h, ok = x.labelledAmount(valoreImpiantoLabels)
		add(FieldValoreImpianto, h, ok)
	}
	return out
}

// professions maps the ways a profession is written to the truth files'
// form: lowercase, masculine singular.
var professions = []struct {
	re   *regexp.Regexp
	name string
}{
	{regexp.MustCompile(`(?i)\b(dottor[ei] commercialist[ai]|commercialist[ai]|odcec)\b`), "commercialista"},
	{regexp.MustCompile(`(?i)\b(consulent[ei] del lavoro)\b`), "consulente del lavoro"},
	{regexp.MustCompile(`(?i)\b(perit[oi] industrial[ei])\b`), "perito industriale"},
	{regexp.MustCompile(`(?i)\b(architett[oaie]|arch\.)`), "architetto"},
	{regexp.MustCompile(`(?i)\b(avvocat[oaie]|avv\.)`), "avvocato"},
	{regexp.MustCompile(`(?i)\b(ingegner[ei]|ing\.)`), "ingegnere"},
	{regexp.MustCompile(`(?i)\b(medic[oi]|medica|chirurg[oa]|odontoiatra)\b`), "medico"},
	{regexp.MustCompile(`(?i)\b(geometr[ai]|geom\.)`), "geometra"},
	{regexp.MustCompile(`(?i)\b(notai[oa]?)\b`), "notaio"},
	{regexp.MustCompile(`(?i)\b(psicolog[oa]|psicologi)\b`), "psicologo"},
	{regexp.MustCompile(`(?i)\b(veterinari[oa])\b`), "veterinario"},
	{regexp.MustCompile(`(?i)\b(farmacist[ai])\b`), "farmacista"},
	{regexp.MustCompile(`(?i)\b(agronom[oa])\b`), "agronomo"},
	{regexp.MustCompile(`(?i)\b(geolog[oa])\b`), "geologo"},
}

var professionLabel = regexp.MustCompile(`(?im)^[ \t]*professione[ \t]*:?[ \t]*\n?[ \t\n]*([^\n]+)`)

// professione reads the "Professione" line of a questionnaire, else the
// first profession named in the text (the request's subject or signature).
func (x *extractor) professione() (hit, bool) {
	match := func(i, from, to int) (hit, bool) {
		text := x.secs[i].Text[from:to]
		best, bestAt := -1, len(text)+1
		var loc []int
		for k, p := range professions {
			if l := p.re.FindStringIndex(text); l != nil && l[0] < bestAt {
				best, bestAt, loc = k, l[0], l
			}
		}
		if best < 0 {
			return hit{}, false
		}
		return hit{i, from + loc[0], from + loc[1], professions[best].name}, true
	}
	for i, s := range x.secs {
		if m := professionLabel.FindStringSubmatchIndex(s.Text); m != nil {
			if h, ok := match(i, m[2], m[3]); ok {
				return h, true
			}
		}
	}
	for i, s := range x.secs {
		if h, ok := match(i, 0, len(s.Text)); ok {
			return h, true
		}
	}
	return hit{}, false
}

var (
	turnoverLabel = regexp.MustCompile(`(?i)\b(fatturato|volume d'affari|ricavi)\b`)
	turnoverStop  = regexp.MustCompile(`(?i)\b(massimal[ei]|copertura|retroattivit|franchigia|sinistri)`)
)

// fatturato is the turnover of the last closed year: questionnaires list
// several years in order, so the last amount before the next topic is
// the latest one. Bare years (2025) are not amounts.
func (x *extractor) fatturato() (hit, bool) {
	for i, s := range x.secs {
		for _, l := range turnoverLabel.FindAllStringIndex(s.Text, -1) {
			end := min(len(s.Text), l[1]+300)
			if st := turnoverStop.FindStringIndex(s.Text[l[1]:end]); st != nil {
				end = l[1] + st[0]
			}
			var last *itparse.Amount
			for _, a := range itparse.FindAmounts(s.Text[l[1]:end]) {
				if a.Value < 1000 || isBareYear(s.Text[l[1]+a.Start:l[1]+a.End]) {
					continue
				}
				a := a
				last = &a
			}
			if last != nil {
				return hit{i, l[1] + last.Start, l[1] + last.End, itparse.FormatInt(last.Value)}, true
			}
		}
	}
	return hit{}, false
}

var bareYear = regexp.MustCompile(`^(19|20)\d\d$`)

func isBareYear(s string) bool { return bareYear.MatchString(strings.TrimSpace(s)) }

var (
	valoreFabbricatoLabels = []*regexp.Regexp{
		regexp.MustCompile(`(?i)\bvalore di ricostruzione(?: a nuovo)?\b[^\d]{0,40}$`),
		regexp.MustCompile(`(?i)\b(somma assicurata|valore (?:a nuovo )?del fabbricato)\b[^\d]{0,40}$`),
	}
	valoreImpiantoLabels = []*regexp.Regexp{
		regexp.MustCompile(`(?i)\b(valore (?:a nuovo )?(?:complessivo|totale)|totale)\b[^\d]{0,30}$`),
		regexp.MustCompile(`(?i)\bimporto (?:dei |del )?(?:lavori|contratto|appalto)\b[^\d]{0,40}$`),
		regexp.MustCompile(`(?i)\b(valore a nuovo(?: dell'impianto)?|somma assicurata)\b[^\d]{0,40}$`),
	}
)

// labelledAmount returns the first amount introduced by the first label
// (in priority order) that introduces any.
func (x *extractor) labelledAmount(labels []*regexp.Regexp) (hit, bool) {
	for _, re := range labels {
		for i, s := range x.secs {
			for _, a := range itparse.FindAmounts(s.Text) {
				if a.Value < 1000 || a.Value > 5e9 || isBareYear(s.Text[a.Start:a.End]) {
					continue
				}
				if re.MatchString(s.Text[max(0, a.Start-60):a.Start]) {
					return hit{i, a.Start, a.End, itparse.FormatInt(a.Value)}, true
				}
			}
		}
	}
	return hit{}, false
}

var areaRE = regexp.MustCompile(`(?i)\b(\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?[ \t]*(?:mq|m2|m²|metri quadrati|metri quadri)\b`)
var areaLabel = regexp.MustCompile(`(?i)\bsuperficie\b[^\d]{0,50}$`)

func (x *extractor) superficie() (hit, bool) {
	for i, s := range x.secs {
		for _, m := range areaRE.FindAllStringSubmatchIndex(s.Text, -1) {
			if !areaLabel.MatchString(s.Text[max(0, m[0]-60):m[0]]) {
				continue
			}
			if v, ok := itparse.ParseNumber(s.Text[m[2]:m[3]]); ok && v > 0 {
				return hit{i, m[0], m[1], itparse.FormatInt(v)}, true
			}
		}
	}
	return hit{}, false
}

var yearBuilt = regexp.MustCompile(`(?i)\b(?:anno di costruzione|costruit[oaie] nel|edificat[oaie] nel|realizzat[oaie] nel)\b[ \t:]*\n?[ \t\n]*((?:1[5-9]|20)\d\d)\b`)

func (x *extractor) annoCostruzione() (hit, bool) {
	for i, s := range x.secs {
		if m := yearBuilt.FindStringSubmatchIndex(s.Text); m != nil {
			return hit{i, m[2], m[3], s.Text[m[2]:m[3]]}, true
		}
	}
	return hit{}, false
}

// plantKinds are the values of tipo_impianto and their cues; the kind
// with the most cue hits wins, ties going to the first listed.
var plantKinds = []struct {
	name string
	re   *regexp.Regexp
}{
	{"fotovoltaico", regexp.MustCompile(`(?i)\b(fotovoltaic[oai]|kwp|mwp)\b`)},
	{"car", regexp.MustCompile(`(?i)(\bcontractors? all risks?\b|\bc\.a\.r\.|\bCAR\b)`)},
	{"ear", regexp.MustCompile(`(?i)(\berection all risks?\b|\be\.a\.r\.|\bEAR\b)`)},
	{"guasti_macchine", regexp.MustCompile(`(?i)\b(guast[oi] (?:alle )?macchin[ae]|macchinari)\b`)},
	{"elettronica", regexp.MustCompile(`(?i)\b(elettronic[ahe]|apparecchiature elettroniche)\b`)},
}

func (x *extractor) tipoImpianto() (hit, bool) {
	best, bestN := -1, 0
	for k, p := range plantKinds {
		n := 0
		for _, s := range x.secs {
			n += len(p.re.FindAllStringIndex(s.Text, -1))
		}
		n += len(p.re.FindAllStringIndex(x.doc.Subject, -1))
		if n > bestN {
			best, bestN = k, n
		}
	}
	if best < 0 {
		return hit{}, false
	}
	for i, s := range x.secs {
		if l := plantKinds[best].re.FindStringIndex(s.Text); l != nil {
			return hit{i, l[0], l[1], plantKinds[best].name}, true
		}
	}
	return hit{sec: -1, value: plantKinds[best].name}, true // only the subject names it
}
