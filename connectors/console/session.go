package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// sessionCookie names the cookie that carries a browser's session token.
const sessionCookie = "prismflow_session"

// errNoSession is returned for a token that names no live session
// (never issued, signed out, expired, or its API key revoked).
var errNoSession = errors.New("no console session")

// Session is who a signed-in browser is.
type Session struct {
	Tenant string
	// Actor is recorded with the reviewer's decisions, corrections and
	// questions: the API key's tenant and id, as the API records them.
	Actor string
	// KeyID is the API key signed in with; "" when authentication is off.
	KeyID string
	// CSRF is the token every state-changing request must send back.
	CSRF    string
	Expires time.Time
}

// sessions keeps console sessions in PostgreSQL (migration 014), so that
// any process serving the console knows every sign-in and a restart signs
// nobody out. Only the SHA-256 of a token is stored.
type sessions struct {
	pool *pgxpool.Pool
	ttl  time.Duration
}

// newToken returns 32 random bytes, URL-safe.
func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func tokenHash(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// create starts a session and returns its token, for the cookie.
// Expired sessions are swept on the way, so the table stays as small as
// the set of live sign-ins without a background job.
func (s *sessions) create(ctx context.Context, tenant, actor, keyID string) (string, Session, error) {
	token := newToken()
	sess := Session{Tenant: tenant, Actor: actor, KeyID: keyID, CSRF: newToken(), Expires: time.Now().Add(s.ttl)}
	if _, err := s.pool.Exec(ctx, `DELETE FROM console_sessions WHERE expires_at < now()`); err != nil {
		return "", Session{}, fmt.Errorf("console: sweep sessions: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO console_sessions (hash, tenant, actor, key_id, csrf, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, tokenHash(token), tenant, actor, keyID, sess.CSRF, sess.Expires); err != nil {
		return "", Session{}, fmt.Errorf("console: create session: %w", err)
	}
	return token, sess, nil
}

// lookup returns the live session of token. A session whose API key was
// revoked since sign-in ends with the key.
func (s *sessions) lookup(ctx context.Context, token string) (Session, error) {
	var sess Session
	err := s.pool.QueryRow(ctx, `SELECT s.tenant, s.actor, s.key_id, s.csrf, s.expires_at
		FROM console_sessions s LEFT JOIN api_keys k ON k.id = s.key_id
		WHERE s.hash = $1 AND s.expires_at > now() AND (s.key_id = '' OR (k.id IS NOT NULL AND k.revoked_at IS NULL))`,
		tokenHash(token)).Scan(&sess.Tenant, &sess.Actor, &sess.KeyID, &sess.CSRF, &sess.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, errNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("console: read session: %w", err)
	}
	return sess, nil
}

// end deletes the session of token.
func (s *sessions) end(ctx context.Context, token string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM console_sessions WHERE hash = $1`, tokenHash(token)); err != nil {
		return fmt.Errorf("console: end session: %w", err)
	}
	return nil
}

// setCookie hands the browser its session token: HttpOnly so scripts
// cannot read it, SameSite=Strict so no other site's page can make the
// browser send it, Secure when the console is served over TLS.
func setCookie(w http.ResponseWriter, r *http.Request, token string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: token, Path: "/", Expires: expires,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

func clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

// validCSRF compares a sent token with the session's in constant time.
func validCSRF(sess Session, sent string) bool {
	return sent != "" && subtle.ConstantTimeCompare([]byte(sent), []byte(sess.CSRF)) == 1
}
