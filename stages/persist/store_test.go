package persist

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"prismflow/pipeline"
)

// TestClassify sorts database errors into what the runtime does with
// the record: dead-letter it (permanent), wait for the database
// (unavailable) or retry a few times (transient).
func TestClassify(t *testing.T) {
	// A real refused connection: a port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, refused := pgconn.Connect(context.Background(), "postgres://x@"+addr+"/x?connect_timeout=5")
	if refused == nil {
		t.Fatal("connected to a closed port")
	}

	for _, tc := range []struct {
		name                   string
		err                    error
		permanent, unavailable bool
	}{
		{"connection refused", refused, false, true},
		{"admin shutdown", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, false, true},
		{"starting up", &pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}, false, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, false, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, true, false},
		{"bad encoding", &pgconn.PgError{Code: "22021"}, true, false},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, false, false},
		{"other", errors.New("something else"), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := classify("op", tc.err)
			if got := pipeline.IsPermanent(err); got != tc.permanent {
				t.Errorf("permanent = %v, want %v (%v)", got, tc.permanent, err)
			}
			if got := pipeline.IsUnavailable(err); got != tc.unavailable {
				t.Errorf("unavailable = %v, want %v (%v)", got, tc.unavailable, err)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("%v does not wrap the cause", err)
			}
		})
	}
}
