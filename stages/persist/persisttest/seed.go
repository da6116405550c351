// Package persisttest fills a persist.Store with realistic documents for
// benchmarks and tests that need volume: listing and search at 100,000
// documents cannot be measured on the handful a pipeline test produces.
//
// Seed writes rows directly with COPY instead of sending events through
// the persister, because it must insert 100,000 documents in seconds; the
// rows have the shapes the persister writes (document rows with their
// latest run's category and status, and fields), and the triggers of the
// schema maintain everything derived from them (the search text), so
// what a benchmark measures is what production queries meet.
//
// The data is a deterministic function of the tenant and the document's
// position: the same call gives the same rows, and a benchmark can name
// values it knows are there (Sender, a field value of Nth).
package persisttest

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"path"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"prismflow/stages/persist"
)

// Categories are the taxonomy's categories in the proportions seeded:
// fleets are the brokers' daily bread, technological risks rare.
var Categories = []string{"Flotta Auto", "Flotta Auto", "Flotta Auto", "Fabbricato", "Fabbricato",
	"RC Professionale", "RC Professionale", "Rischi Tecnologici", "Altro", "Altro"}

// Companies are the senders' firms; Seed spreads documents over them
// with a long tail, as a broker's clients are.
var Companies = []string{
	"rossi-trasporti", "bianchi-logistica", "verdi-costruzioni", "studio-esposito", "ferrari-impianti",
	"romano-autonoleggi", "colombo-engineering", "ricci-e-figli", "marino-spedizioni", "greco-edilizia",
	"bruno-meccanica", "gallo-farmaceutici", "conti-immobiliare", "deluca-architetti", "mancini-energia",
	"costa-alimentari", "giordano-tessile", "rizzo-elettronica", "lombardi-autotrasporti", "moretti-studio-legale",
}

// Epoch is when the newest seeded document arrived; documents spread
// over the 90 days before it. Fixed, so repeated seeding gives the same
// rows and a cursor taken from them stays meaningful.
var Epoch = time.Date(2025, 6, 30, 18, 0, 0, 0, time.UTC)

// Span is how far back seeded documents go.
const Span = 90 * 24 * time.Hour

// Seed makes sure tenant has at least n seeded documents, inserting the
// missing ones (all n on an empty database) in one transaction with
// COPY. A tenant that already has n documents is left alone, so a
// benchmark can keep its data in a long-lived database and seed once.
func Seed(tb testing.TB, store *persist.Store, tenant string, n int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := seed(ctx, store, tenant, n); err != nil {
		tb.Fatalf("persisttest: seed %d documents of tenant %q: %v", n, tenant, err)
	}
}

func seed(ctx context.Context, store *persist.Store, tenant string, n int) error {
	inserted := false
	err := pgx.BeginFunc(ctx, store.Pool(), func(tx pgx.Tx) error {
		// Two seeders of one tenant at once would both count zero.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('persisttest ' || $1))`, tenant); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM documents WHERE tenant = $1`, tenant).Scan(&have); err != nil {
			return fmt.Errorf("count documents: %w", err)
		}
		if have >= n {
			return nil
		}
		// In arrival order, as the persister writes them: the heap is
		// then ordered by time like a production table's, and a page of
		// the listing reads a few heap pages, not one per row.
		seeded := make([]Document, 0, n-have)
		for i := have; i < n; i++ {
			seeded = append(seeded, Nth(tenant, i))
		}
		slices.SortFunc(seeded, func(a, b Document) int { return a.ReceivedAt.Compare(b.ReceivedAt) })
		var docs, fields [][]any
		for _, d := range seeded {
			docs = append(docs, d.row(tenant))
			for pos, f := range d.Fields {
				fields = append(fields, []any{d.ID, int32(1), int32(pos), f[0], f[1], int32(1), int32(0), int32(-1), int32(-1)})
			}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"documents"}, []string{"id", "tenant", "filename", "content_type",
			"size_bytes", "sha256", "blob", "source", "sender", "subject", "status", "error", "run", "page_count",
			"language", "category", "confidence", "needs_review", "received_at", "updated_at", "done_at"},
			pgx.CopyFromRows(docs)); err != nil {
			return fmt.Errorf("copy documents: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"fields"}, []string{"document", "run", "position", "name", "value",
			"page", "section_index", "span_start", "span_end"}, pgx.CopyFromRows(fields)); err != nil {
			return fmt.Errorf("copy fields: %w", err)
		}
		inserted = true
		return nil
	})
	if err != nil || !inserted {
		return err
	}
	// The search-text triggers rewrote every new document row once: a
	// table of half dead rows is not what production queries meet after
	// autovacuum, and fresh statistics keep the planner from guessing at
	// 100,000 new rows.
	if _, err := store.Pool().Exec(ctx, `VACUUM (ANALYZE) documents, fields`); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	return nil
}

// Document is one seeded document as Seed writes it.
type Document struct {
	ID          string
	Filename    string
	Source      string // upload or imap
	Sender      string
	Subject     string
	Status      string
	Error       string // failed documents only
	Category    string // "" while processing
	Confidence  float64
	NeedsReview bool
	PageCount   int32
	ReceivedAt  time.Time
	// Fields are (name, value) pairs in the classifier's order; only
	// documents past classify have them.
	Fields [][2]string
}

// Nth returns the i-th seeded document of tenant: the same every time.
func Nth(tenant string, i int) Document {
	h := fnv.New64a()
	h.Write([]byte(tenant))
	r := rand.New(rand.NewPCG(h.Sum64(), uint64(i)))

	// Arrival times are uniform over Span (what matters to the indexes is
	// that they interleave with other tenants'), in whole microseconds,
	// PostgreSQL's precision.
	at := Epoch.Add(-time.Duration(r.Int64N(int64(Span/time.Microsecond))) * time.Microsecond)
	d := Document{ID: uuidV7(at, r), ReceivedAt: at, PageCount: int32(1 + r.IntN(12))}

	company := Companies[zipf(r, len(Companies))]
	person := []string{"mario", "giulia", "luca", "francesca", "paolo", "sara", "andrea", "chiara"}[r.IntN(8)]
	category := Categories[r.IntN(len(Categories))]
	if r.IntN(3) == 0 {
		d.Source, d.Filename = "upload", fmt.Sprintf("scansione_%05d.pdf", r.IntN(100000))
	} else {
		d.Source = "imap"
		d.Sender = person + "@" + company + ".it"
		d.Filename = []string{"richiesta_preventivo.pdf", "libro_matricola.xlsx", "visura_camerale.pdf",
			"messaggio.eml", "questionario.pdf", "elenco_veicoli.csv"}[r.IntN(6)]
	}
	d.Subject = fmt.Sprintf("%s - %s", []string{"Richiesta preventivo", "Rinnovo polizza", "Integrazione documenti",
		"Sinistro", "Variazione"}[r.IntN(5)], company)

	switch p := r.IntN(100); {
	case p < 8:
		d.Status = persist.StatusProcessing
	case p < 13:
		d.Status = persist.StatusFailed
		d.Error = []string{"extract: MuPDF cannot open the file: encrypted", "classify: deadline exceeded",
			"split: no text on any page"}[r.IntN(3)]
	default:
		d.Status = persist.StatusDone
	}
	if d.Status == persist.StatusDone {
		d.Category = category
		d.Confidence = 0.4 + 0.6*r.Float64()
		d.NeedsReview = d.Confidence < 0.6
		d.Fields = seedFields(r, category)
	}
	return d
}

// seedFields are the fields the classifier would find in a document of
// category: identifiers that a reviewer searches for.
func seedFields(r *rand.Rand, category string) [][2]string {
	f := [][2]string{
		{"partita_iva", fmt.Sprintf("%011d", r.Int64N(1e11))},
		{"codice_fiscale", fmt.Sprintf("RSSMRA%02dA%02dH%03dX", r.IntN(100), r.IntN(70), r.IntN(1000))},
	}
	switch category {
	case "Flotta Auto":
		f = append(f, [2]string{"num_veicoli", fmt.Sprint(2 + r.IntN(200))},
			[2]string{"targa", fmt.Sprintf("%c%c%03d%c%c", 'A'+r.IntN(20), 'A'+r.IntN(20), r.IntN(1000), 'A'+r.IntN(20), 'A'+r.IntN(20))})
	case "Fabbricato":
		f = append(f, [2]string{"superficie_mq", fmt.Sprint(80 + r.IntN(20000))},
			[2]string{"valore_fabbricato_eur", fmt.Sprint(100000 + r.IntN(20000000))})
	case "RC Professionale":
		f = append(f, [2]string{"fatturato_eur", fmt.Sprint(50000 + r.IntN(5000000))},
			[2]string{"massimale_eur", fmt.Sprint([]int{500000, 1000000, 2500000, 5000000}[r.IntN(4)])})
	case "Rischi Tecnologici":
		f = append(f, [2]string{"tipo_impianto", []string{"fotovoltaico", "cogenerazione", "linea di produzione"}[r.IntN(3)]},
			[2]string{"valore_impianto_eur", fmt.Sprint(20000 + r.IntN(3000000))})
	}
	return f
}

// zipf picks 0..n-1 with weight 1/(k+1): a few clients send most.
func zipf(r *rand.Rand, n int) int {
	total := 0.0
	for k := range n {
		total += 1 / float64(k+1)
	}
	x := r.Float64() * total
	for k := range n {
		if x -= 1 / float64(k+1); x < 0 {
			return k
		}
	}
	return n - 1
}

// uuidV7 is the id ingest would have given a document received at at.
func uuidV7(at time.Time, r *rand.Rand) string {
	var u uuid.UUID
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(at.UnixMilli()))
	copy(u[:6], ms[2:])
	binary.BigEndian.PutUint64(u[8:], r.Uint64())
	binary.BigEndian.PutUint16(u[6:], uint16(r.Uint32()))
	u[6] = u[6]&0x0f | 0x70 // version 7
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u.String()
}

func (d Document) row(tenant string) []any {
	var errText, category, language *string
	var confidence *float64
	var needsReview *bool
	var doneAt *time.Time
	if d.Error != "" {
		errText = &d.Error
	}
	lang := "it"
	language = &lang
	if d.Status == persist.StatusDone {
		category, confidence, needsReview = &d.Category, &d.Confidence, &d.NeedsReview
		t := d.ReceivedAt.Add(40 * time.Second)
		doneAt = &t
	}
	return []any{d.ID, tenant, d.Filename, contentTypes[path.Ext(d.Filename)], int64(20000 + int(d.PageCount)*35000),
		fmt.Sprintf("%064x", fnv64(d.ID)), "sha256/" + d.ID, d.Source, d.Sender, d.Subject, d.Status, errText,
		int32(1), d.PageCount, language, category, confidence, needsReview, d.ReceivedAt,
		d.ReceivedAt.Add(40 * time.Second), doneAt}
}

var contentTypes = map[string]string{
	".pdf":  "application/pdf",
	".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	".eml":  "message/rfc822",
	".csv":  "text/csv",
}

func fnv64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}
