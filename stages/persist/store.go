package persist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"prismflow/pipeline"
)

// ErrNotFound is returned for a document that does not exist (or belongs
// to another tenant).
var ErrNotFound = errors.New("document not found")

// ErrInvalidCursor is returned (marked permanent) by ListDocuments for a
// cursor it did not make.
var ErrInvalidCursor = errors.New("invalid cursor")

// Store is prismflow's PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to dsn and brings the schema up to date.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("persist: parse DSN: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("persist: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("persist: connect: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("persist: migrate: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close closes the connections.
func (s *Store) Close() { s.pool.Close() }

// Pool is the connection pool, for packages whose tables persist's
// migrations create but which own their queries (the LLM response cache).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping checks the database is reachable (for /readyz).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("persist: ping: %w", err)
	}
	return nil
}

// classify wraps a database error with context and marks it permanent
// when retrying cannot help because the data itself is refused.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	err = fmt.Errorf("persist: %s: %w", op, err)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23")) {
		return pipeline.Permanent(err)
	}
	if unreachable(err) {
		return pipeline.Unavailable(err)
	}
	return err
}

// unreachable reports whether err says the database is out of reach
// (down, restarting, refusing connections) rather than refusing the
// statement: such a record waits for the database instead of being
// dead-lettered.
func unreachable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P01..57P03: the server is
		// shutting down, crashed or starting up; 53300: too many
		// connections.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" ||
			pgErr.Code == "57P03" || pgErr.Code == "53300"
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// clean makes s storable as PostgreSQL text: valid UTF-8 without NULs.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "")
}
