package persisttest_test

import (
	"context"
	"testing"

	"prismflow/pipeline/testenv"
	"prismflow/stages/persist"
	"prismflow/stages/persist/persisttest"
)

func TestSeed(t *testing.T) {
	ctx := context.Background()
	store, err := persist.Open(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	persisttest.Seed(t, store, "acme", 1500)
	persisttest.Seed(t, store, "acme", 1000) // has enough: no-op
	persisttest.Seed(t, store, "acme", 2000) // adds the missing 500
	persisttest.Seed(t, store, "globex", 100)

	var total, acme int
	if err := store.Pool().QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE tenant = 'acme') FROM documents`).Scan(&total, &acme); err != nil {
		t.Fatal(err)
	}
	if total != 2100 || acme != 2000 {
		t.Fatalf("%d documents, %d of acme; want 2100, 2000", total, acme)
	}

	// A realistic spread: every status, every category among the done
	// ones, and the whole span of time.
	for _, q := range []persist.ListQuery{
		{Tenant: "acme", Status: persist.StatusProcessing},
		{Tenant: "acme", Status: persist.StatusFailed},
		{Tenant: "acme", Since: persisttest.Epoch.Add(-persisttest.Span), Until: persisttest.Epoch.Add(-persisttest.Span * 9 / 10)},
		{Tenant: "acme", Since: persisttest.Epoch.Add(-persisttest.Span / 10)},
	} {
		if page, _, err := store.ListDocuments(ctx, q); err != nil || len(page) == 0 {
			t.Errorf("%+v: %v, %d documents", q, err, len(page))
		}
	}
	for _, c := range persisttest.Categories {
		page, _, err := store.ListDocuments(ctx, persist.ListQuery{Tenant: "acme", Category: c, Status: persist.StatusDone})
		if err != nil || len(page) == 0 {
			t.Errorf("category %s: %v, %d documents", c, err, len(page))
		}
	}

	// Nth is what was stored, and its fields are searchable (the search
	// text triggers ran on the seeded rows).
	var d persisttest.Document
	for i := 0; len(d.Fields) == 0; i++ {
		d = persisttest.Nth("acme", i)
	}
	got, err := store.Summary(ctx, "acme", d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Category != d.Category || got.Status != d.Status || got.Sender != d.Sender || !got.ReceivedAt.Equal(d.ReceivedAt) {
		t.Errorf("stored %+v\nseeded %+v", got, d)
	}
	page, _, err := store.ListDocuments(ctx, persist.ListQuery{Tenant: "acme", Query: d.Fields[0][1]})
	if err != nil || len(page) == 0 || page[0].ID != d.ID {
		t.Errorf("search for field value %q: %v, %+v", d.Fields[0][1], err, page)
	}
}
