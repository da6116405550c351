package pipeline

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"prismflow/connectors/blob"
	"prismflow/schemas/events"
)

func TestBackoffFullJitterWithinCeiling(t *testing.T) {
	r := Retry{Attempts: 5, Initial: 100 * time.Millisecond, Max: time.Second}.withDefaults()
	for _, tc := range []struct {
		n    int
		ceil time.Duration
	}{{1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {4, 800 * time.Millisecond}, {5, time.Second}, {30, time.Second}} {
		var maxSeen time.Duration
		for range 2000 {
			d := r.backoff(tc.n)
			if d < 0 || d > tc.ceil {
				t.Fatalf("backoff(%d) = %v, outside [0, %v]", tc.n, d, tc.ceil)
			}
			maxSeen = max(maxSeen, d)
		}
		// Full jitter uses the whole range, not a fixed delay.
		if maxSeen < tc.ceil/2 {
			t.Errorf("backoff(%d): max of 2000 draws %v, want near %v", tc.n, maxSeen, tc.ceil)
		}
	}
	if d := (Retry{}).withDefaults(); d.Attempts != 5 || d.Initial != 200*time.Millisecond || d.Max != 10*time.Second {
		t.Errorf("defaults %+v", d)
	}
}

func TestTraceparent(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false}, // zero trace id
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false}, // zero span id
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false}, // invalid version
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false}, // upper case
		{"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", false},  // short
		{"", false},
	} {
		if got := validTraceparent(tc.s); got != tc.want {
			t.Errorf("validTraceparent(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
	a, b := newTraceparent(), newTraceparent()
	if !validTraceparent(a) || a == b {
		t.Errorf("newTraceparent: %q, %q", a, b)
	}
}

type mapStore map[string]string

func (m mapStore) Put(_ context.Context, k string, r io.Reader) error {
	b, err := io.ReadAll(r)
	m[k] = string(b)
	return err
}
func (m mapStore) Get(_ context.Context, k string) (io.ReadCloser, error) {
	v, ok := m[k]
	if !ok {
		return nil, blob.ErrNotFound
	}
	return io.NopCloser(strings.NewReader(v)), nil
}
func (m mapStore) Exists(_ context.Context, k string) (bool, error) { _, ok := m[k]; return ok, nil }
func (m mapStore) Ping(context.Context) error                       { return nil }

func TestClaimCheckRoundTripAndDamage(t *testing.T) {
	ctx := context.Background()
	store := mapStore{}
	ev := &events.SectionsSplit{Sections: []events.Section{{Text: "uno"}, {Text: ""}, {Text: "tre"}, {Text: "uno"}}}
	if err := checkOut(ctx, store, "doc1", ev); err != nil {
		t.Fatal(err)
	}
	if len(store) != 2 {
		t.Errorf("%d blobs, want 2 (same text stored once)", len(store))
	}
	for i, s := range ev.Sections {
		if s.Text != "" || (i == 1) != (s.TextRef == "") || (s.TextRef != "" && !strings.HasPrefix(s.TextRef, "claims/doc1/")) {
			t.Errorf("section %d after checkOut: %+v", i, s)
		}
	}
	back := *ev
	back.Sections = append([]events.Section(nil), ev.Sections...)
	if err := checkIn(ctx, store, &back); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"uno", "", "tre", "uno"} {
		if back.Sections[i].Text != want || back.Sections[i].TextRef != "" {
			t.Errorf("section %d after checkIn: %+v", i, back.Sections[i])
		}
	}

	damaged := *ev
	damaged.Sections = append([]events.Section(nil), ev.Sections...)
	store[ev.Sections[2].TextRef] = "tampered"
	if err := checkIn(ctx, store, &damaged); !IsPermanent(err) {
		t.Errorf("damaged blob: err %v, want permanent", err)
	}
	missing := &events.SectionsSplit{Sections: []events.Section{{TextRef: "claims/doc1/nope"}}}
	if err := checkIn(ctx, store, missing); !IsPermanent(err) || !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("missing blob: err %v, want permanent ErrNotFound", err)
	}
}
